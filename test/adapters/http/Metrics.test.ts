import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { request as httpsRequest } from "node:https"
import { WebSocket } from "ws"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { encodeHardware, fromFields } from "../../../src/adapters/blynk/Frame.ts"
import { Directory } from "../../../src/actors/Directory.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import * as SubscriberLag from "../../../src/eventstore/SubscriberLag.ts"
import { origin } from "../../../src/eventstore/Subscription.ts"
import { BlynkClient, isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

// ---- a small validator of the Prometheus text exposition format (version 0.0.4) ----

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

interface Family {
  readonly name: string
  readonly type: string
  readonly help: string
  readonly samples: Array<Sample>
}

const metricName = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const labelName = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const types = new Set(["counter", "gauge", "histogram", "summary", "untyped"])

const parseValue = (text: string, line: string): number => {
  if (text === "NaN") return Number.NaN
  if (text === "+Inf") return Infinity
  if (text === "-Inf") return -Infinity
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value ${JSON.stringify(text)} in: ${line}`)
  return Number(text)
}

/** `{a="x",b="y\"z"}` from `at` (the opening brace): the labels and where they end. */
const parseLabels = (line: string, at: number): { labels: Record<string, string>; end: number } => {
  const labels: Record<string, string> = {}
  let i = at + 1
  while (line[i] !== "}") {
    const eq = line.indexOf("=", i)
    if (eq < 0) throw new Error(`no = in labels: ${line}`)
    const name = line.slice(i, eq)
    if (!labelName.test(name)) throw new Error(`bad label name ${JSON.stringify(name)}: ${line}`)
    if (name in labels) throw new Error(`label ${name} twice: ${line}`)
    if (line[eq + 1] !== "\"") throw new Error(`label value not quoted: ${line}`)
    let value = ""
    let j = eq + 2
    for (;; j++) {
      const c = line[j]
      if (c === undefined) throw new Error(`unterminated label value: ${line}`)
      if (c === "\"") break
      if (c === "\\") {
        const next = line[++j]
        if (next === "n") value += "\n"
        else if (next === "\\" || next === "\"") value += next
        else throw new Error(`bad escape \\${next}: ${line}`)
      } else value += c
    }
    labels[name] = value
    i = j + 1
    if (line[i] === ",") i++
    else if (line[i] !== "}") throw new Error(`expected , or } after a label: ${line}`)
  }
  return { labels, end: i + 1 }
}

/** The family a sample belongs to: its name, or its name without the suffixes its family's type adds. */
const familyOf = (name: string, families: Map<string, Family>) => {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    const base = name.slice(0, -suffix.length)
    const type = name.endsWith(suffix) ? families.get(base)?.type : undefined
    if (type === "histogram" || (type === "summary" && suffix !== "_bucket")) return base
  }
  return name
}

/**
 * Parses and checks an exposition: HELP and TYPE at most once per family and before its samples,
 * a family's samples together, valid names, labels and values, no series twice, counters not
 * negative, histogram buckets cumulative up to `+Inf` = `_count`, summaries with their quantiles.
 */
const parseExposition = (text: string): Map<string, Family> => {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("the exposition does not end with a newline")
  const families = new Map<string, Family>()
  const series = new Set<string>()
  let current: string | undefined
  const family = (name: string) => {
    let f = families.get(name)
    if (f === undefined) families.set(name, f = { name, type: "untyped", help: "", samples: [] })
    return f
  }
  for (const line of text.split("\n").slice(0, -1)) {
    if (line.trim() === "") continue
    if (line.startsWith("#")) {
      const [, keyword, name, ...rest] = line.split(" ")
      if (keyword !== "HELP" && keyword !== "TYPE") continue
      if (name === undefined || !metricName.test(name)) throw new Error(`bad metric name in: ${line}`)
      const f = family(name)
      if (f.samples.length > 0) throw new Error(`${keyword} after samples of ${name}`)
      if (keyword === "TYPE") {
        if (f.type !== "untyped") throw new Error(`TYPE twice for ${name}`)
        if (!types.has(rest.join(" "))) throw new Error(`bad type in: ${line}`)
        ;(f as { type: string }).type = rest.join(" ")
      } else {
        if (f.help !== "") throw new Error(`HELP twice for ${name}`)
        ;(f as { help: string }).help = rest.join(" ")
      }
      current = name
      continue
    }
    const brace = line.indexOf("{")
    const space = line.indexOf(" ")
    const nameEnd = brace >= 0 && brace < space ? brace : space
    const name = line.slice(0, nameEnd)
    if (!metricName.test(name)) throw new Error(`bad sample name in: ${line}`)
    const { labels, end } = nameEnd === brace ? parseLabels(line, brace) : { labels: {}, end: nameEnd }
    const [valueText, timestamp, ...extra] = line.slice(end).trim().split(/\s+/)
    if (valueText === undefined || extra.length > 0 || (timestamp !== undefined && !/^-?\d+$/.test(timestamp))) {
      throw new Error(`bad sample: ${line}`)
    }
    const base = familyOf(name, families)
    if (current !== base && families.get(base)?.samples.length) throw new Error(`samples of ${base} are not together`)
    current = base
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (series.has(key)) throw new Error(`series twice: ${line}`)
    series.add(key)
    const value = parseValue(valueText, line)
    const f = family(base)
    if (f.type === "counter" && !(value >= 0)) throw new Error(`negative counter: ${line}`)
    f.samples.push({ name, labels, value })
  }
  for (const f of families.values()) {
    if (f.type === "histogram") checkHistogram(f)
    if (f.type === "summary") {
      const count = f.samples.filter((s) => s.name === `${f.name}_count`)
      const sum = f.samples.filter((s) => s.name === `${f.name}_sum`)
      if (count.length === 0 || count.length !== sum.length) throw new Error(`summary ${f.name} without _sum and _count`)
      for (const s of f.samples.filter((s) => s.name === f.name)) {
        const q = Number(s.labels["quantile"])
        if (!(q >= 0 && q <= 1)) throw new Error(`summary ${f.name}: bad quantile ${s.labels["quantile"]}`)
      }
    }
  }
  return families
}

const checkHistogram = (f: Family) => {
  const seriesKey = (s: Sample) => JSON.stringify(Object.entries(s.labels).filter(([k]) => k !== "le").sort())
  const groups = new Map<string, Array<Sample>>()
  for (const s of f.samples) groups.set(seriesKey(s), [...(groups.get(seriesKey(s)) ?? []), s])
  for (const samples of groups.values()) {
    const buckets = samples.filter((s) => s.name === `${f.name}_bucket`)
    const count = samples.find((s) => s.name === `${f.name}_count`)
    if (samples.find((s) => s.name === `${f.name}_sum`) === undefined || count === undefined) {
      throw new Error(`histogram ${f.name} without _sum or _count`)
    }
    let previous = { le: -Infinity, n: 0 }
    for (const b of buckets) {
      const le = parseValue(b.labels["le"] ?? "", `${f.name} le`)
      if (!(le > previous.le) || b.value < previous.n) throw new Error(`histogram ${f.name}: buckets not cumulative at le=${b.labels["le"]}`)
      previous = { le, n: b.value }
    }
    if (previous.le !== Infinity || previous.n !== count.value) throw new Error(`histogram ${f.name}: +Inf bucket missing or not _count`)
  }
}

describe("the Prometheus validator", () => {
  it("accepts a well-formed exposition and refuses broken ones", () => {
    const good = [
      "# HELP a_total A counter",
      "# TYPE a_total counter",
      "a_total{kind=\"x\\\"y\"} 3",
      "# TYPE h histogram",
      "h_bucket{le=\"1\"} 1",
      "h_bucket{le=\"+Inf\"} 2",
      "h_sum 5.5",
      "h_count 2",
      ""
    ].join("\n")
    expect(parseExposition(good).get("a_total")?.samples[0]).toEqual({ name: "a_total", labels: { kind: "x\"y" }, value: 3 })
    expect(() => parseExposition(good.replace("h_count 2", "h_count 3"))).toThrow(/\+Inf/)
    expect(() => parseExposition(good.replace("a_total{kind", "a_total{1kind"))).toThrow(/label name/)
    expect(() => parseExposition(`${good}# TYPE a_total counter\n`)).toThrow(/after samples|TYPE twice/)
    expect(() => parseExposition(good.replace(" 3\n", " -3\n"))).toThrow(/negative/)
    expect(() => parseExposition("x 1\ny 2\nx{a=\"b\"} 3\n")).toThrow(/not together/)
  })
})

// ---- the route on a running server ----

let server: RunningServer
let opened: Awaited<ReturnType<typeof openStorage>>

beforeAll(async () => {
  opened = await openStorage()
  // Two failures block an address: the throttle's counters can be moved from one spare address.
  server = await startBlynkServer(opened.storage, {}, { maxFailures: 2, windowMs: 600_000, blockMs: 600_000 })
})
afterAll(async () => {
  await server.close()
  await opened.release()
})

const httpsGet = (port: number, path: string) =>
  new Promise<{ status: number | undefined; contentType: string | undefined; body: string }>((resolve, reject) => {
    const request = httpsRequest({ host: "127.0.0.1", port, path, rejectUnauthorized: false, agent: false }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode, contentType: response.headers["content-type"], body }))
    })
    request.on("error", reject)
    request.end()
  })

/** Waits until every running actor's pending device-log appends are committed. */
const flushed = Effect.gen(function*() {
  for (const actor of yield* (yield* Directory).all) yield* actor.flushed
})

/** GET /metrics on the plain port, checked as an exposition. */
const scrape = async () => {
  const response = await fetch(`http://127.0.0.1:${server.plainPort}/metrics`)
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
  return parseExposition(await response.text())
}

/** The value of one series (0 when absent: a counter not yet moved). */
const value = (families: Map<string, Family>, name: string, labels: Record<string, string> = {}) => {
  const base = familyOf(name, families)
  const sample = families.get(base)?.samples.find((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) &&
    Object.keys(s.labels).length === Object.keys(labels).length
  )
  return sample?.value ?? 0
}

const families: ReadonlyArray<readonly [string, string]> = [
  ["pinledger_connections", "gauge"],
  ["pinledger_websocket_connections", "gauge"],
  ["pinledger_messages_received_total", "counter"],
  ["pinledger_messages_sent_total", "counter"],
  ["pinledger_messages_not_sent_total", "counter"],
  ["pinledger_messages_over_quota_total", "counter"],
  ["pinledger_eventstore_commit_seconds", "histogram"],
  ["pinledger_eventstore_batch_appends", "histogram"],
  ["pinledger_eventstore_head_position", "gauge"],
  ["pinledger_eventstore_up", "gauge"],
  ["pinledger_subscriber_lag_events", "gauge"],
  ["pinledger_login_failures_total", "counter"],
  ["pinledger_login_blocks_total", "counter"],
  ["pinledger_login_refused_blocked_total", "counter"],
  ["pinledger_process_resident_memory_bytes", "gauge"],
  ["pinledger_process_heap_used_bytes", "gauge"],
  ["pinledger_process_cpu_seconds_total", "counter"],
  ["pinledger_process_start_time_seconds", "gauge"],
  ["pinledger_event_loop_delay_seconds", "summary"]
]

describe("GET /metrics", () => {
  it("answers on both ports in the Prometheus text format, with every family, HELP and TYPE", async () => {
    const plain = await scrape()
    for (const [name, type] of families) {
      expect(plain.get(name)?.type, name).toBe(type)
      expect(plain.get(name)?.help, name).not.toBe("")
    }
    expect([...plain.keys()].every((name) => name.startsWith("pinledger_"))).toBe(true)
    for (const kind of ["hardware", "app", "shared_app"]) {
      expect(plain.get("pinledger_connections")?.samples.some((s) => s.labels["kind"] === kind)).toBe(true)
    }
    expect(value(plain, "pinledger_eventstore_up")).toBe(1)
    expect(value(plain, "pinledger_process_resident_memory_bytes")).toBeGreaterThan(0)

    const secure = await httpsGet(server.tlsPort, "/metrics")
    expect(secure.status).toBe(200)
    expect(secure.contentType).toMatch(/^text\/plain; version=0\.0\.4/)
    expect([...parseExposition(secure.body).keys()]).toEqual(expect.arrayContaining(families.map(([name]) => name)))
  })

  it("counts a device that connects and writes, and the app that receives the write", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.DEVICE_NOT_IN_NETWORK)
    const before = await scrape()

    const device = await connectDevice(server, token)
    await app.next(isMessage(Command.HARDWARE_CONNECTED))
    const forwarded = app.next(isMessage(Command.HARDWARE))
    device.send(Command.HARDWARE, 2, ["vw", "1", "42"])
    expect((await forwarded).fields).toEqual(["1-0", "vw", "1", "42"])
    await server.run(flushed)
    const during = await scrape()

    const delta = (name: string, labels: Record<string, string> = {}) => value(during, name, labels) - value(before, name, labels)
    expect(delta("pinledger_connections", { kind: "hardware" })).toBe(1)
    // The login and the write came in; the login's OK went out.
    expect(delta("pinledger_messages_received_total", { kind: "hardware" })).toBeGreaterThanOrEqual(2)
    expect(delta("pinledger_messages_sent_total", { kind: "hardware" })).toBeGreaterThanOrEqual(1)
    // HARDWARE_CONNECTED and the forwarded write went out to the app.
    expect(delta("pinledger_messages_sent_total", { kind: "app" })).toBeGreaterThanOrEqual(2)
    // The device's connect was appended (a commit of at least one append), so the head moved.
    expect(delta("pinledger_eventstore_commit_seconds_count")).toBeGreaterThanOrEqual(1)
    expect(delta("pinledger_eventstore_batch_appends_sum")).toBeGreaterThanOrEqual(delta("pinledger_eventstore_batch_appends_count"))
    expect(delta("pinledger_eventstore_head_position")).toBeGreaterThanOrEqual(1)
    const lag = value(during, "pinledger_subscriber_lag_events", { subscriber: "account-follower" })
    expect(lag).toBeGreaterThanOrEqual(0)
    expect(lag).toBeLessThanOrEqual(value(during, "pinledger_eventstore_head_position"))

    // The app hears of the device's disconnect after its session has counted itself closed.
    const offline = app.next(isMessage(Command.DEVICE_OFFLINE))
    await device.close()
    await offline
    const after = await scrape()
    expect(value(after, "pinledger_connections", { kind: "hardware" })).toBe(value(before, "pinledger_connections", { kind: "hardware" }))
    await app.close()
  })

  it("counts shared apps apart from apps, and WebSocket connections", async () => {
    const owner = await newAccount(server)
    await createDash(owner.app)
    const got = await owner.app.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])
    expect(await owner.app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    const before = await scrape()

    const shared = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
    expect(await shared.request(Command.SHARE_LOGIN, 1, [owner.email, got.fields[0]!, "Android", "2.27.0"])).toBe(Status.OK)
    const ws = new WebSocket(`ws://127.0.0.1:${server.plainPort}/websockets`)
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve())
      ws.once("error", reject)
    })
    const during = await scrape()
    const delta = (name: string, labels: Record<string, string>) => value(during, name, labels) - value(before, name, labels)
    expect(delta("pinledger_connections", { kind: "shared_app" })).toBe(1)
    expect(delta("pinledger_connections", { kind: "app" })).toBe(0)
    expect(delta("pinledger_messages_received_total", { kind: "shared_app" })).toBe(0)
    expect(delta("pinledger_messages_received_total", { kind: "app" })).toBeGreaterThanOrEqual(1)
    expect(delta("pinledger_websocket_connections", { kind: "hardware" })).toBe(1)
    expect(delta("pinledger_connections", { kind: "hardware" })).toBe(1)

    // A shared app's own frames count as the shared app's.
    expect(await shared.request(Command.PING, 2)).toBe(Status.OK)
    const later = await scrape()
    expect(value(later, "pinledger_messages_received_total", { kind: "shared_app" }) - value(during, "pinledger_messages_received_total", { kind: "shared_app" })).toBe(1)
    expect(value(later, "pinledger_messages_sent_total", { kind: "shared_app" }) - value(during, "pinledger_messages_sent_total", { kind: "shared_app" })).toBe(1)

    const closed = new Promise((resolve) => ws.once("close", resolve))
    ws.close()
    await closed
    await shared.close()
    await owner.app.close()
  })

  it("counts failed logins, blocks and logins refused while blocked", async () => {
    const before = await scrape()
    const address = "127.0.0.9"
    const device = await BlynkClient.connect({ port: server.plainPort, framing: "hardware", localAddress: address })
    for (let i = 1; i <= 3; i++) expect(await device.request(Command.HARDWARE_LOGIN, i, ["x".repeat(32)])).toBe(Status.INVALID_TOKEN)
    const after = await scrape()
    const delta = (name: string) => value(after, name, { kind: "hardware" }) - value(before, name, { kind: "hardware" })
    expect(delta("pinledger_login_failures_total")).toBe(2)
    expect(delta("pinledger_login_blocks_total")).toBe(1)
    expect(delta("pinledger_login_refused_blocked_total")).toBe(1)
    expect(value(after, "pinledger_login_failures_total", { kind: "login" })).toBe(value(before, "pinledger_login_failures_total", { kind: "login" }))
    await device.close()
  })
})

describe("subscriber lag", () => {
  it("is the number of events after a position, and 0 at the log's last event", async () => {
    const { lagFromStart, lagAtEnd, count } = await server.run(Effect.gen(function*() {
      yield* flushed
      const store = yield* EventStore
      yield* store.append("metrics-lag-test", "any", [{ type: "Ping", schemaVersion: 1, data: {} }], { time: new Date().toISOString() })
      const events = Array.from(yield* Stream.runCollect(store.readAll()))
      const last = events.at(-1)!
      return {
        lagFromStart: yield* SubscriberLag.lagOf(origin),
        lagAtEnd: yield* SubscriberLag.lagOf({ txId: last.txId, position: last.position }),
        count: events.length
      }
    }))
    expect(lagFromStart).toBe(count)
    expect(lagAtEnd).toBe(0)
  })
})
