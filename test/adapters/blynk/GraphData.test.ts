import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { inflateSync } from "node:zlib"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { decodeGraphData, encodeGraphData, parseGraphDelete, parseGraphRequest } from "../../../src/adapters/blynk/GraphData.ts"
import { Directory } from "../../../src/actors/Directory.ts"
import { graphWindow, parseGraphPeriod } from "../../../src/domain/Graphs.ts"
import { accountStream } from "../../../src/domain/Streams.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import * as PinHistory from "../../../src/eventstore/projections/PinHistory.ts"
import { BlynkClient, isMessage, type Received } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

let server: RunningServer
let opened: Awaited<ReturnType<typeof openStorage>>

beforeAll(async () => {
  opened = await openStorage()
  server = await startBlynkServer(opened.storage, { messageQuota: 1000 })
})
afterAll(async () => {
  await server.close()
  await opened.release()
})

/** Waits until every write handed to the log is committed and in the pin history (no sleeping). */
const projected = () =>
  server.run(Effect.gen(function*() {
    const directory = yield* Directory
    for (const actor of yield* directory.all) yield* actor.flushed
    const head = yield* Effect.flatMap(EventStore, (store) => store.head)
    yield* PinHistory.awaitCaughtUp(head)
  }))

const eventTypes = (stream: string) =>
  server.run(Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readStream(stream))).pipe(Effect.map((es) => Array.from(es, (e) => e.type))))

/** A data stream as the legacy app sends it. */
const legacyStream = (pin: number, targetId = 0) => ({
  id: pin,
  title: `V${pin}`,
  graphType: "LINE",
  targetId,
  dataStream: { pinType: "VIRTUAL", pin, min: 0, max: 255 },
  functionType: "AVG"
})
const chart = (id: number, dataStreams: ReadonlyArray<unknown>) => ({ id, type: "ENHANCED_GRAPH", x: 0, y: 0, width: 8, height: 4, dataStreams })

const graph = (frame: Received) => {
  if (frame._tag !== "Message") throw new Error(`answered status ${frame.status}`)
  expect(frame.command).toBe(Command.GET_ENHANCED_GRAPH_DATA)
  return decodeGraphData(frame.body)
}

const MIN = 60_000

/** V1's writes 10 and 20 fell in one period (average 15) or, across a period's turn, in two. */
const expectTenAndTwenty = (points: ReadonlyArray<{ value: number }>) => {
  if (points.length === 1) expect(points[0]!.value).toBe(15)
  else expect(points.map((p) => p.value)).toEqual([10, 20])
}

/** An account with a Superchart 5 (V1, V2 and the flat form's V3 of device 0), a chart 6 (V7) and a button; the device wrote V1 10 and 20, V2 "hello", V3 7.5. */
const setup = async () => {
  const owner = await newAccount(server)
  await createDash(owner.app, {
    widgets: [
      chart(5, [legacyStream(1), legacyStream(2), { deviceId: 0, pinType: "VIRTUAL", pin: 3 }]),
      chart(6, [legacyStream(7)]),
      { id: 7, type: "BUTTON", x: 0, y: 0, width: 2, height: 2, deviceId: 0, pinType: "VIRTUAL", pin: 1 }
    ]
  })
  const device = await connectDevice(server, await createDevice(owner.app, 1, 0))
  expect(await owner.app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
  const before = Date.now()
  const forwarded = owner.app.next((f) => isMessage(Command.HARDWARE)(f) && f.fields[2] === "3")
  device.send(Command.HARDWARE, 2, ["vw", "1", "10"])
  device.send(Command.HARDWARE, 3, ["vw", "1", "20"])
  device.send(Command.HARDWARE, 4, ["vw", "2", "hello"])
  device.send(Command.HARDWARE, 5, ["vw", "3", "7.5"])
  // The last write reached the account's actor (it forwards after handing the write to the log).
  await forwarded
  await projected()
  return { ...owner, device, before, after: Date.now() }
}

describe("GET_ENHANCED_GRAPH_DATA and DELETE_ENHANCED_GRAPH_DATA (protocol.md §7.2–§7.3)", () => {
  it("values a device writes come back per data stream, as minute averages and as LIVE samples; an empty chart is NO_DATA", async () => {
    const { app, device, before, after } = await setup()
    const day = graph(await app.ask(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "DAY"]))
    expect(day.dashId).toBe(1)
    expect(day.streams).toHaveLength(3)
    const [v1, v2, v3] = day.streams as [Array<{ value: number; ts: number }>, Array<unknown>, Array<{ value: number; ts: number }>]
    expectTenAndTwenty(v1)
    for (const p of [...v1, ...v3]) {
      expect(p.ts % MIN).toBe(0)
      expect(p.ts).toBeGreaterThanOrEqual(Math.floor(before / MIN) * MIN)
      expect(p.ts).toBeLessThanOrEqual(after)
    }
    expect(v2).toEqual([])
    expect(v3.map((p) => p.value)).toEqual([7.5])

    const live = graph(await app.ask(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "LIVE"]))
    expect(live.streams.map((s) => s.map((p) => p.value))).toEqual([[10, 20], [], [7.5]])
    for (const p of live.streams.flat()) {
      expect(p.ts).toBeGreaterThanOrEqual(before)
      expect(p.ts).toBeLessThanOrEqual(after)
    }
    // Hourly and daily periods read their rollups.
    expect(graph(await app.ask(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "N_WEEK"])).streams[2]!.map((p) => p.value)).toEqual([7.5])
    expectTenAndTwenty(graph(await app.ask(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "WEEK"])).streams[0]!)

    // Nothing a page (a day) back; nothing on a chart whose pin was never written.
    expect(await app.request(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "DAY", "1"])).toBe(Status.NO_DATA)
    expect(await app.request(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "6", "DAY"])).toBe(Status.NO_DATA)
    // Not a chart, no such widget or dashboard, a bad period: ILLEGAL_COMMAND.
    for (const fields of [["1", "7", "DAY"], ["1", "99", "DAY"], ["3", "5", "DAY"], ["1", "5", "FORTNIGHT"], ["1", "5"]]) {
      expect(await app.request(Command.GET_ENHANCED_GRAPH_DATA, nextId(), fields), fields.join(" ")).toBe(Status.ILLEGAL_COMMAND)
    }
    await Promise.all([device.close(), app.close()])
  })

  it("DELETE_ENHANCED_GRAPH_DATA removes one data stream's or the whole chart's history, through the log", async () => {
    const { app, email, device } = await setup()
    expect(await app.request(Command.DELETE_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "0"])).toBe(Status.OK)
    await projected()
    const after = graph(await app.ask(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "LIVE"]))
    expect(after.streams.map((s) => s.map((p) => p.value))).toEqual([[], [], [7.5]])
    expect(await app.request(Command.DELETE_ENHANCED_GRAPH_DATA, nextId(), ["1", "5"])).toBe(Status.OK)
    await projected()
    expect(await app.request(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "LIVE"])).toBe(Status.NO_DATA)
    expect(await app.request(Command.DELETE_ENHANCED_GRAPH_DATA, nextId(), ["1", "99"])).toBe(Status.ILLEGAL_COMMAND)
    expect(await app.request(Command.DELETE_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "7"])).toBe(Status.ILLEGAL_COMMAND)
    const types = await eventTypes(accountStream(email, "Blynk"))
    expect(types.filter((t) => t === "GraphDataDeleted")).toHaveLength(2)
    // New writes make a new history.
    const forwarded = app.next(isMessage(Command.HARDWARE))
    device.send(Command.HARDWARE, 9, ["vw", "1", "3"])
    await forwarded
    await projected()
    expect(graph(await app.ask(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "LIVE"])).streams[0]!.map((p) => p.value)).toEqual([3])
    await Promise.all([device.close(), app.close()])
  })

  it("a shared app reads the graphs of its dashboard only, and may not delete them", async () => {
    const { app, email, device } = await setup()
    await createDash(app, { id: 2, name: "Other", widgets: [chart(5, [legacyStream(1)])] })
    const token = (await app.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])).fields[0]!
    expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    const shared = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
    expect(await shared.request(Command.SHARE_LOGIN, 1, [email, token, "Android", "2.27.0"])).toBe(Status.OK)

    const seen = graph(await shared.ask(Command.GET_ENHANCED_GRAPH_DATA, 2, ["1", "5", "LIVE"]))
    expect(seen.streams.map((s) => s.map((p) => p.value))).toEqual([[10, 20], [], [7.5]])
    expect(await shared.request(Command.GET_ENHANCED_GRAPH_DATA, 3, ["2", "5", "LIVE"])).toBe(Status.NOT_ALLOWED)
    expect(await shared.request(Command.DELETE_ENHANCED_GRAPH_DATA, 4, ["1", "5"])).toBe(Status.NOT_ALLOWED)
    await projected()
    expect(graph(await app.ask(Command.GET_ENHANCED_GRAPH_DATA, nextId(), ["1", "5", "LIVE"])).streams[0]!.map((p) => p.value)).toEqual([10, 20])
    const access = await eventTypes(`access-${accountStream(email, "Blynk").slice("user-".length)}`)
    expect(access.filter((t) => t === "CommandRefused")).toHaveLength(2)
    await Promise.all([shared.close(), device.close(), app.close()])
  })
})

describe("graph request bodies and the binary answer", () => {
  it("parses `dashId[-targetId], widgetId, PERIOD[, page]` and `dashId[-targetId], widgetId[, streamIndex]`", () => {
    expect(parseGraphRequest(["1", "5", "DAY"])).toEqual({ dashId: 1, widgetId: 5, period: parseGraphPeriod("DAY"), page: 0 })
    expect(parseGraphRequest(["1-200000", "5", "n_week", "2"])).toEqual({ dashId: 1, targetId: 200000, widgetId: 5, period: parseGraphPeriod("N_WEEK"), page: 2 })
    for (const bad of [["x", "5", "DAY"], ["1", "5", "DAYS"], ["1", "w", "DAY"], ["1", "5", "DAY", "-1"], ["1-2-3", "5", "DAY"]]) {
      expect(parseGraphRequest(bad)).toBeUndefined()
    }
    expect(parseGraphDelete(["1-3", "5", "1"])).toEqual({ dashId: 1, targetId: 3, widgetId: 5, streamIndex: 1 })
    expect(parseGraphDelete(["1", "5"])).toEqual({ dashId: 1, widgetId: 5 })
    expect(parseGraphDelete(["1", "5", "x"])).toBeUndefined()
  })

  it("encodes zlib int32 dashId, then per stream int32 count and (float64, int64) pairs, big-endian", () => {
    const body = encodeGraphData(7, [[{ value: 1.5, ts: 1_700_000_000_000 }], []])
    expect(decodeGraphData(body)).toEqual({ dashId: 7, streams: [[{ value: 1.5, ts: 1_700_000_000_000 }], []] })
    const raw = inflateSync(body)
    expect(raw.toString("hex")).toBe(
      "00000007" + "00000001" + Buffer.from(new Float64Array([1.5]).buffer).reverse().toString("hex") + "0000018bcfe56800" + "00000000"
    )
  })

  it("a rollup period's window ends with the period holding now; a page goes one window back", () => {
    const day = parseGraphPeriod("DAY")!
    const now = Date.parse("2026-05-01T10:30:15Z")
    expect(graphWindow({ ...day, granularity: "minute" }, 0, now)).toEqual({
      from: Date.parse("2026-04-30T10:31:00Z"),
      to: Date.parse("2026-05-01T10:31:00Z")
    })
    expect(graphWindow({ ...day, granularity: "minute" }, 1, now).to).toBe(Date.parse("2026-04-30T10:31:00Z"))
  })
})
