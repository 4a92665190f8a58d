import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import { executeOnAccount } from "../../../src/adapters/accounts/AccountOps.ts"
import { Status } from "../../../src/adapters/blynk/Command.ts"
import { OwnerApi } from "../../../src/adapters/http/OwnerApi.ts"
import { mailedToken } from "../../../src/adapters/security/MailedToken.ts"
import { clientPasswordHash, hashPassword } from "../../../src/adapters/security/Passwords.ts"
import { accessStream, accountStream, deviceStream } from "../../../src/domain/Streams.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import * as PinHistory from "../../../src/eventstore/projections/PinHistory.ts"
import { awaitStream, readStream } from "../../support/awaitLog.ts"
import { backends } from "../../support/backends.ts"
import { BlynkClient, Command, isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"
import { call, type HttpAnswer } from "../../support/httpClient.ts"
import { shiftedClock } from "../../support/shiftedClock.ts"

const MAX_FAILURES = 3
const SESSION_MINUTES = 60

interface ApiCall {
  readonly path: string
  readonly method?: string
  readonly json?: unknown
  readonly body?: string
  readonly token?: string
  readonly basic?: readonly [string, string]
  /** The caller's address: any 127.x.y.z. */
  readonly from?: string
  readonly tls?: boolean
}

interface ApiAnswer extends HttpAnswer {
  /** The parsed JSON answer, checked field by field. */
  readonly json: any
}

const authorization = (c: ApiCall): Record<string, string> =>
  c.token !== undefined
    ? { authorization: `Bearer ${c.token}` }
    : c.basic !== undefined
    ? { authorization: `Basic ${Buffer.from(`${c.basic[0]}:${c.basic[1]}`).toString("base64")}` }
    : {}

describe.each(backends.map((b) => [b.name, b] as const))("owner HTTP API (%s)", (_, backend) => {
  let server: RunningServer
  let release: () => Promise<void>
  const time = shiftedClock()

  beforeAll(async () => {
    const opened = await openStorage(backend)
    release = opened.release
    server = await startBlynkServer(
      opened.storage,
      {},
      { maxFailures: MAX_FAILURES, windowMs: 600_000, blockMs: 600_000 },
      {},
      { clock: time.clock, apiSessionMinutes: SESSION_MINUTES }
    )
  })
  afterAll(async () => {
    await server.close()
    await release()
  })

  const api = async (c: ApiCall): Promise<ApiAnswer> => {
    const body = c.body ?? (c.json === undefined ? undefined : JSON.stringify(c.json))
    const answer = await call({
      port: c.tls ? server.tlsPort : server.plainPort,
      tls: c.tls ?? false,
      path: `/api/v1${c.path}`,
      method: c.method ?? "GET",
      headers: authorization(c),
      ...(body === undefined ? {} : { body }),
      ...(c.from === undefined ? {} : { localAddress: c.from })
    })
    const isJson = /json/.test(String(answer.headers["content-type"])) && answer.text !== ""
    return { ...answer, json: isJson ? JSON.parse(answer.text) : undefined }
  }

  let addresses = 20
  /** A loopback address no other test uses, so that throttle counts do not meet. */
  const freshAddress = () => `127.0.${backend.name === "pglite" ? 1 : 2}.${++addresses}`

  /** A fresh account with dashboard 1 and device 0, its app logged in, and an API session. */
  const setup = async (options: { readonly widgets?: ReadonlyArray<Record<string, unknown>> } = {}) => {
    const { app, email, hash } = await newAccount(server, "secret")
    await createDash(app, { widgets: options.widgets ?? [] })
    const deviceToken = await createDevice(app, 1, 0, "kitchen")
    const from = freshAddress()
    const login = await api({ method: "POST", path: "/login", json: { email, password: "secret" }, from })
    expect(login.status).toBe(200)
    const account = accountStream(email, "Blynk")
    return { app, email, hash, deviceToken, token: login.json.token as string, from, account, device: deviceStream(account, 1, 0) }
  }

  const expectError = (answer: ApiAnswer, status: number, tag: string, message?: RegExp) => {
    expect({ status: answer.status, tag: answer.json?._tag }).toEqual({ status, tag })
    expect(answer.headers["content-type"]).toMatch(/^application\/json/)
    expect(typeof answer.json.message).toBe("string")
    if (message !== undefined) expect(answer.json.message).toMatch(message)
  }

  describe("logging in", () => {
    it("a login opens a bearer session and is an OwnerLoggedIn event with the caller's address; the app's login is one too", async () => {
      const { app, email, token, from, account } = await setup()
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      const devices = await api({ path: "/devices", token, from })
      expect(devices.status).toBe(200)
      const access = await awaitStream(server, accessStream(account), (events) => events.some((e) => e.type === "OwnerLoggedIn" && (e.data as { via: string }).via === "api"))
      const logins = access.filter((e) => e.type === "OwnerLoggedIn")
      expect(logins.map((e) => (e.data as { via: string }).via)).toEqual(["app", "api"])
      expect(logins[1]!.data).toMatchObject({ via: "api", remote: from })
      expect(logins[1]!.metadata).toMatchObject({ actor: `api:${email}`, remoteAddress: from })
      expect(logins[1]!.metadata.session).toMatch(/^api-/)
      await app.close()
    })

    it("wrong passwords and unknown accounts answer 401 and count; a blocked address gets 429 before any check, right password or not; other addresses log in", async () => {
      const { app, email } = await setup()
      const blocked = freshAddress()
      const wrong = [
        await api({ method: "POST", path: "/login", json: { email, password: "guess" }, from: blocked }),
        await api({ method: "POST", path: "/login", json: { email: `nobody-${email}`, password: "secret" }, from: blocked }),
        await api({ path: "/devices", basic: [email, "guess again"], from: blocked })
      ]
      for (const answer of wrong) expectError(answer, 401, "Unauthenticated", /wrong e-mail, app name or password/)
      const events = await readStream(server, throttleStream("login", blocked))
      expect(events.map((e) => e.type)).toEqual(["LoginFailed", "LoginFailed", "LoginFailed", "AddressBlocked"])
      expect(events[0]!.metadata).toMatchObject({ actor: `api:${email}`, remoteAddress: blocked })

      expectError(await api({ method: "POST", path: "/login", json: { email, password: "secret" }, from: blocked }), 429, "TooManyFailures")
      expectError(await api({ path: "/devices", basic: [email, "secret"], from: blocked, tls: true }), 429, "TooManyFailures")
      // The same throttle as the app's logins.
      const blockedApp = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true, localAddress: blocked })
      expect(await blockedApp.request(Command.LOGIN, 1, [email, clientPasswordHash(email, "secret"), "Android", "2.27.0", "Blynk"])).toBe(Status.NOT_ALLOWED)
      await blockedApp.close()
      // Refused while blocked: nothing more was counted.
      expect((await readStream(server, throttleStream("login", blocked))).length).toBe(4)
      expect((await api({ method: "POST", path: "/login", json: { email, password: "secret" }, from: freshAddress() })).status).toBe(200)
      await app.close()
    })

    it("HTTP Basic works on every request and checks the password once: one OwnerLoggedIn for many requests", async () => {
      const { app, email, account } = await setup()
      const from = freshAddress()
      for (let i = 0; i < 3; i++) {
        const answer = await api({ path: "/devices", basic: [email.toUpperCase(), "secret"], from, tls: i === 1 })
        expect(answer.status).toBe(200)
        expect(answer.json.map((d: { name: string }) => d.name)).toEqual(["kitchen"])
      }
      const logins = (await readStream(server, accessStream(account))).filter((e) => e.type === "OwnerLoggedIn" && e.metadata.remoteAddress === from)
      expect(logins).toHaveLength(1)
      await app.close()
    })

    it("no credentials, a made-up token, a share token and a logged-out session get 401; nothing is counted for tokens", async () => {
      const { app, email, token, from } = await setup()
      expectError(await api({ path: "/devices", from }), 401, "Unauthenticated", /log in first/)
      expectError(await api({ path: "/devices", token: "x".repeat(43), from }), 401, "Unauthenticated", /session is over/)
      const shareToken = (await app.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])).fields[0]!
      expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
      expectError(await api({ path: "/devices", token: shareToken, from }), 401, "Unauthenticated")
      expect((await readStream(server, throttleStream("login", from))).length).toBe(0)
      // A share token is no password either (that one counts).
      expectError(await api({ path: "/devices", basic: [email, shareToken], from }), 401, "Unauthenticated")
      expect((await api({ method: "POST", path: "/logout", token, from })).status).toBe(204)
      expectError(await api({ path: "/devices", token, from }), 401, "Unauthenticated", /session is over/)
      await app.close()
    })

    it("a session ends when it expires, and sessions and remembered Basic checks end when the password changes", async () => {
      const { app, email, token, from, account } = await setup()
      const second = (await api({ method: "POST", path: "/login", json: { email, password: "secret" }, from })).json.token as string
      expect((await api({ path: "/devices", basic: [email, "secret"], from })).status).toBe(200)
      time.advance(SESSION_MINUTES * 60_000)
      try {
        expectError(await api({ path: "/devices", token, from }), 401, "Unauthenticated", /session is over/)
      } finally {
        time.reset()
      }
      expect((await api({ path: "/devices", token: second, from })).status).toBe(200)

      // A password reset through the account's decider, as RESET_PASSWORD does.
      const reset = mailedToken()
      const passwordHash = await Effect.runPromise(hashPassword(clientPasswordHash(email, "new secret")))
      await server.run(executeOnAccount(account, () => [
        { _tag: "RequestPasswordReset", tokenDigest: reset.digest, expiresAt: Date.now() + 60_000 },
        { _tag: "ResetPassword", tokenDigest: reset.digest, now: Date.now(), passwordHash }
      ], { time: new Date().toISOString() }))
      expectError(await api({ path: "/devices", token: second, from }), 401, "Unauthenticated", /session is over/)
      expectError(await api({ path: "/devices", basic: [email, "secret"], from }), 401, "Unauthenticated", /wrong/)
      expect((await api({ path: "/devices", basic: [email, "new secret"], from })).status).toBe(200)
      await app.close()
    })
  })

  describe("devices", () => {
    it("lists the account's devices with their tokens and whether they are online; one device; unknown ones are 404, bad ids 400", async () => {
      const { app, token, deviceToken, from } = await setup()
      await createDash(app, { id: 2, name: "Garden" })
      const pump = await createDevice(app, 2, 7, "pump")
      const device = await connectDevice(server, deviceToken)
      const list = await api({ path: "/devices", token, from })
      expect(list.json).toEqual([
        { dashId: 1, dashboard: "Home", id: 0, name: "kitchen", boardType: "ESP32", token: deviceToken, online: true },
        { dashId: 2, dashboard: "Garden", id: 7, name: "pump", boardType: "ESP32", token: pump, online: false }
      ])
      expect((await api({ path: "/dashboards/2/devices/7", token, from })).json).toMatchObject({ name: "pump", token: pump })
      expectError(await api({ path: "/dashboards/3/devices/0", token, from }), 404, "NotFound", /no dashboard 3/)
      expectError(await api({ path: "/dashboards/1/devices/1", token, from }), 404, "NotFound", /no device 1 in dashboard 1/)
      expectError(await api({ path: "/dashboards/x/devices/0", token, from }), 400, "BadInput", /dashId must be a whole number/)
      expectError(await api({ path: "/dashboards/1/devices/-1", token, from }), 400, "BadInput", /deviceId/)
      await Promise.all([device.close(), app.close()])
    })

    it("reprovisioning gives a new token through the decider: the device is closed, the old token refused, the event carries the caller's address", async () => {
      const { app, email, token, deviceToken, from, account } = await setup()
      const device = await connectDevice(server, deviceToken)
      const answer = await api({ method: "POST", path: "/dashboards/1/devices/0/reprovision", token, from })
      expect(answer.status).toBe(200)
      expect(answer.json.token).toMatch(/^[A-Za-z0-9_-]{32}$/)
      expect(answer.json.token).not.toBe(deviceToken)
      await device.closed
      const again = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
      expect(await again.request(Command.HARDWARE_LOGIN, 1, [deviceToken])).toBe(Status.INVALID_TOKEN)
      await again.close()
      await (await connectDevice(server, answer.json.token)).close()
      const refreshed = (await readStream(server, account)).filter((e) => e.type === "DeviceTokenRefreshed")
      expect(refreshed).toHaveLength(1)
      expect(refreshed[0]!.metadata).toMatchObject({ actor: `api:${email}`, remoteAddress: from })
      expectError(await api({ method: "POST", path: "/dashboards/1/devices/5/reprovision", token, from }), 404, "NotFound")
      await app.close()
    })
  })

  describe("pin values", () => {
    it("a write reaches the connected device (id 111) and the apps of the active project, and is committed with the caller's address before the answer", async () => {
      const { app, email, token, deviceToken, from, device: stream } = await setup()
      const device = await connectDevice(server, deviceToken)
      expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
      const atDevice = device.next(isMessage(Command.HARDWARE))
      const atApp = app.next((f) => isMessage(Command.HARDWARE)(f) && f.fields.includes("42"))
      const answer = await api({ method: "PUT", path: "/dashboards/1/devices/0/pins/v1", json: { values: [42] }, token, from, tls: true })
      expect({ status: answer.status, json: answer.json }).toEqual({ status: 200, json: { pin: "V1", values: ["42"] } })
      // Committed before the answer: the event is there now, without waiting.
      const events = (await readStream(server, stream)).filter((e) => e.type === "PinsWritten")
      expect(events.at(-1)!.data).toMatchObject({ source: "http", writes: [["v", 1, "42"]] })
      expect(events.at(-1)!.metadata).toMatchObject({ actor: `api:${email}`, remoteAddress: from })
      expect(events.at(-1)!.metadata.session).toMatch(/^api-/)
      const frame = await atDevice
      expect({ id: frame.id, fields: frame.fields }).toEqual({ id: 111, fields: ["vw", "1", "42"] })
      expect((await atApp).fields).toEqual(["1-0", "vw", "1", "42"])
      expect((await api({ path: "/dashboards/1/devices/0/pins/V1", token, from })).json).toEqual({ pin: "V1", values: ["42"] })
      await Promise.all([device.close(), app.close()])
    })

    it("several pins in one request are one commit, all or none; reads list every pin of the device", async () => {
      const { app, token, deviceToken, from, device: stream } = await setup()
      const device = await connectDevice(server, deviceToken)
      const before = (await awaitStream(server, stream, (events) => events.some((e) => e.type === "DeviceConnected"))).length
      const writes = [
        { pin: "V2", values: ["a", "b"] },
        { pin: "d3", values: [true] },
        { pin: "A0", values: [1.5] }
      ]
      const answer = await api({ method: "POST", path: "/dashboards/1/devices/0/pins", json: { writes }, token, from })
      expect(answer.json).toEqual([{ pin: "V2", values: ["a", "b"] }, { pin: "D3", values: ["true"] }, { pin: "A0", values: ["1.5"] }])
      const appended = (await readStream(server, stream)).slice(before).filter((e) => e.type === "PinsWritten")
      expect(appended).toHaveLength(1)
      expect(appended[0]!.data).toMatchObject({ writes: [["v", 2, "a", "b"], ["d", 3, "true"], ["a", 0, "1.5"]] })
      await device.next((f) => isMessage(Command.HARDWARE)(f) && f.fields[0] === "aw", 0)
      expect(device.received.filter(isMessage(Command.HARDWARE)).map((f) => f.fields)).toEqual([["vw", "2", "a", "b"], ["dw", "3", "true"], ["aw", "0", "1.5"]])
      expect((await api({ path: "/dashboards/1/devices/0/pins", token, from })).json).toEqual([
        { pin: "V2", values: ["a", "b"] },
        { pin: "D3", values: ["true"] },
        { pin: "A0", values: ["1.5"] }
      ])

      // One bad pin: nothing is written.
      const bad = await api({ method: "POST", path: "/dashboards/1/devices/0/pins", json: { writes: [{ pin: "V4", values: [1] }, { pin: "V256", values: [2] }] }, token, from })
      expectError(bad, 400, "BadInput", /writes\[1\]: pin must be V0–V255/)
      expectError(await api({ method: "PUT", path: "/dashboards/1/devices/0/pins/X1", json: { values: [1] }, token, from }), 400, "BadInput", /pin must be/)
      expectError(await api({ method: "PUT", path: "/dashboards/1/devices/0/pins/V1", json: { values: [] }, token, from }), 400, "BadInput", /payload/)
      expectError(await api({ method: "PUT", path: "/dashboards/1/devices/0/pins/V1", json: { values: [{}] }, token, from }), 400, "BadInput")
      expectError(await api({ method: "PUT", path: "/dashboards/9/devices/0/pins/V1", json: { values: [1] }, token, from }), 404, "NotFound")
      expectError(await api({ path: "/dashboards/1/devices/0/pins/V9", token, from }), 404, "NotFound", /V9 of device 0 in dashboard 1 has no value/)
      expect((await readStream(server, stream)).length).toBe(before + 1)
      await Promise.all([device.close(), app.close()])
    })

    it("bodies that are not JSON, of the wrong shape or too large are refused with a JSON message; the server carries on", async () => {
      const { app, token, from } = await setup()
      const path = "/dashboards/1/devices/0/pins/V1"
      expectError(await api({ method: "PUT", path, body: "{\"values\": [1", token, from }), 400, "BadInput", /JSON/)
      expectError(await api({ method: "PUT", path, json: { value: 1 }, token, from }), 400, "BadInput", /values/)
      expectError(await api({ method: "POST", path: "/login", json: { email: 1 }, from }), 400, "BadInput", /email/)
      expectError(await api({ method: "PUT", path, json: { values: ["x".repeat(600_000)] }, token, from }), 413, "PayloadTooLarge")
      // Unknown paths and methods under /api/v1 are a JSON 404 too.
      expectError(await api({ path: "/nothing", token, from }), 404, "NotFound", /no route GET \/api\/v1\/nothing/)
      expectError(await api({ method: "DELETE", path: "/devices", token, from }), 404, "NotFound", /no route DELETE/)
      expect((await api({ method: "PUT", path, json: { values: ["fine"] }, token, from })).status).toBe(200)
      await app.close()
    })
  })

  describe("history", () => {
    const HOUR = 3_600_000
    const MINUTE = 60_000

    it("raw samples and minute, hour and day rollups of known writes, over a range, with a limit and the next page", async () => {
      const { app, token, deviceToken, from } = await setup()
      const base = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR
      const points = [
        { timestamp: base + 70 * 1000, value: "5" },
        { timestamp: base + 10 * 1000, value: "1" },
        { timestamp: base + 20 * 1000, value: "3" },
        { timestamp: base + HOUR + 100, value: "7" },
        { timestamp: base + HOUR + 200, value: "on" }
      ]
      // The legacy API writes values with their own times (PUT extra/pin).
      const written = await call({ port: server.plainPort, path: `/${deviceToken}/extra/pin/V5`, method: "PUT", body: JSON.stringify(points) })
      expect(written.status).toBe(200)
      await server.run(Effect.flatMap(Effect.flatMap(EventStore, (store) => store.head), PinHistory.awaitCaughtUp))
      const history = (query: string) => api({ path: `/dashboards/1/devices/0/pins/V5/history?${query}`, token, from })

      const raw = await history(`from=${base}&to=${base + 2 * HOUR}`)
      expect(raw.json).toMatchObject({ pin: "V5", rollup: "raw", from: base, to: base + 2 * HOUR, next: null })
      expect(raw.json.points.map((p: { ts: number; values: Array<string>; number: number | null }) => [p.ts - base, p.values, p.number])).toEqual([
        [10_000, ["1"], 1],
        [20_000, ["3"], 3],
        [70_000, ["5"], 5],
        [HOUR + 100, ["7"], 7],
        [HOUR + 200, ["on"], null]
      ])
      expect(raw.json.points[0].time).toBe(new Date(base + 10_000).toISOString())

      const paged = await history(`from=${base}&to=${base + 2 * HOUR}&limit=2`)
      expect(paged.json.points.map((p: { values: Array<string> }) => p.values[0])).toEqual(["1", "3"])
      expect(paged.json.next).toBe(base + 70_000)
      const rest = await history(`from=${paged.json.next}&to=${base + 2 * HOUR}&limit=2`)
      expect(rest.json.points.map((p: { values: Array<string> }) => p.values[0])).toEqual(["5", "7"])

      const minutes = await history(`rollup=minute&from=${new Date(base).toISOString()}&to=${new Date(base + 2 * HOUR).toISOString()}`)
      expect(minutes.json.points.map((p: { ts: number }) => ({ ...p, ts: p.ts - base, time: undefined }))).toEqual([
        { ts: 0, avg: 2, min: 1, max: 3, count: 2, time: undefined },
        { ts: MINUTE, avg: 5, min: 5, max: 5, count: 1, time: undefined },
        { ts: HOUR, avg: 7, min: 7, max: 7, count: 1, time: undefined }
      ])
      const hours = await history(`rollup=hour&from=${base}&to=${base + 2 * HOUR}`)
      expect(hours.json.points.map((p: { ts: number; avg: number; count: number }) => [p.ts - base, p.avg, p.count])).toEqual([[0, 3, 3], [HOUR, 7, 1]])
      // The range: only the second hour.
      const second = await history(`rollup=hour&from=${base + HOUR}&to=${base + 2 * HOUR}`)
      expect(second.json.points.map((p: { ts: number }) => p.ts - base)).toEqual([HOUR])
      const limited = await history(`rollup=minute&from=${base}&to=${base + 2 * HOUR}&limit=1`)
      expect({ n: limited.json.points.length, next: limited.json.next - base }).toEqual({ n: 1, next: MINUTE })

      // Days: the numeric values grouped by their UTC day.
      const DAY = 24 * HOUR
      const byDay = new Map<number, Array<number>>()
      for (const p of points.filter((p) => p.value !== "on")) {
        const day = Math.floor(p.timestamp / DAY) * DAY
        byDay.set(day, [...(byDay.get(day) ?? []), Number(p.value)])
      }
      const days = await history(`rollup=day&from=${base - DAY}&to=${base + DAY}`)
      expect(days.json.points.map((p: { ts: number; min: number; max: number; count: number }) => [p.ts, p.min, p.max, p.count])).toEqual(
        [...byDay].sort(([a], [b]) => a - b).map(([day, values]) => [day, Math.min(...values), Math.max(...values), values.length])
      )

      // The default window: the last day of raw values.
      expect((await history("")).json.points).toHaveLength(5)
      expectError(await history("rollup=week"), 400, "BadInput", /rollup must be one of raw, minute, hour, day/)
      expectError(await history(`from=${base}&to=${base}`), 400, "BadInput", /from .* must be before to/)
      expectError(await history("from=yesterday"), 400, "BadInput", /from must be an ISO 8601 date/)
      expectError(await history("limit=0"), 400, "BadInput", /limit must be a whole number from 1 to 10000/)
      expectError(await history("limit=1&limit=2"), 400, "BadInput", /query/)
      await app.close()
    })
  })

  describe("shares and audit", () => {
    it("a share revoked through the API kicks the shared app, and the audit finds the revocation with the caller's address", async () => {
      const { app, email, token, from } = await setup()
      expect((await api({ path: "/dashboards/1/share", token, from })).json).toEqual({ dashId: 1, dashboard: "Home", sharing: false, token: null })
      const made = await api({ method: "POST", path: "/dashboards/1/share/token", token, from })
      const shareToken = made.json.token as string
      expect(shareToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
      // Asking again gives the same token.
      expect((await api({ method: "POST", path: "/dashboards/1/share/token", token, from })).json.token).toBe(shareToken)
      const on = await api({ method: "PUT", path: "/dashboards/1/share", json: { enabled: true }, token, from })
      expect(on.json).toEqual({ dashId: 1, dashboard: "Home", sharing: true, token: shareToken })
      expect((await api({ path: "/shares", token, from })).json).toEqual([on.json])

      const shared = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
      expect(await shared.request(Command.SHARE_LOGIN, 1, [email, shareToken, "Android", "2.27.0"])).toBe(Status.OK)
      const revoked = await api({ method: "POST", path: "/dashboards/1/share/revoke", token, from })
      expect(revoked.status).toBe(200)
      expect(revoked.json.token).not.toBe(shareToken)
      await shared.closed
      expect(shared.received.at(-1)).toMatchObject({ _tag: "Response", status: Status.NOT_ALLOWED })
      const again = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
      expect(await again.request(Command.SHARE_LOGIN, 1, [email, shareToken, "Android", "2.27.0"])).toBe(Status.NOT_ALLOWED)
      await again.close()

      const audit = await api({ path: `/audit?type=ShareRevoked&since=${new Date(Date.now() - 60_000).toISOString()}`, token, from })
      expect(audit.status).toBe(200)
      expect(audit.json.entries).toHaveLength(1)
      expect(audit.json.entries[0]).toMatchObject({ type: "ShareRevoked", actor: `api:${email}`, remoteAddress: from, data: { dashId: 1 } })
      expect(audit.json.next).toBeNull()
      // The closing of the shared session is the caller's doing too (recorded after the commit,
      // in the account's access stream: looked for until it is there, boundedly).
      let closedBy: Array<unknown> = []
      for (let attempt = 0; attempt < 300 && closedBy.length === 0; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, 20))
        closedBy = (await api({ path: "/audit?type=SharedSessionsClosed", token, from })).json.entries
      }
      expect(closedBy).toMatchObject([{ actor: `api:${email}`, remoteAddress: from, data: { dashId: 1, sessions: 1 } }])
      // Secrets are masked as the CLI shows them.
      const granted = await api({ path: "/audit?type=ShareGranted", token, from })
      expect(granted.json.entries.map((e: { data: { token: string } }) => e.data.token)).toEqual(["***", "***"])
      await app.close()
    })

    it("audit pages with `next`, filters by address and device, refuses bad values, and shows only the caller's account", async () => {
      const { app, email, token, from } = await setup()
      const other = await setup()
      await api({ method: "PUT", path: "/dashboards/1/devices/0/pins/V1", json: { values: [1] }, token, from })
      const all: Array<{ position: number; type: string }> = []
      let after: number | null = null
      do {
        const page: ApiAnswer = await api({ path: `/audit?limit=2${after === null ? "" : `&after=${after}`}`, token, from })
        expect(page.json.entries.length).toBeLessThanOrEqual(2)
        all.push(...page.json.entries)
        after = page.json.next
      } while (after !== null)
      expect(all.map((e) => e.type)).toEqual(expect.arrayContaining(["AccountRegistered", "DashboardCreated", "DeviceCreated", "OwnerLoggedIn", "PinsWritten"]))
      expect([...all.map((e) => e.position)].sort((a, b) => a - b)).toEqual(all.map((e) => e.position))
      const whole = await api({ path: "/audit?limit=1000", token, from })
      expect(whole.json.entries.map((e: { position: number }) => e.position)).toEqual(all.map((e) => e.position))
      // None of the other account's.
      const otherStreams = new Set([other.account, other.device, accessStream(other.account)])
      expect(whole.json.entries.some((e: { stream: string }) => otherStreams.has(e.stream))).toBe(false)

      const byAddress = await api({ path: `/audit?address=${from}`, token, from })
      expect(byAddress.json.entries.map((e: { type: string }) => e.type)).toEqual(["OwnerLoggedIn", "PinsWritten"])
      const byDevice = await api({ path: "/audit?dash=1&device=0&type=PinsWritten,DeviceCreated", token, from })
      expect(byDevice.json.entries.map((e: { type: string }) => e.type)).toEqual(["DeviceCreated", "PinsWritten"])
      expect(byDevice.json.entries[1]).toMatchObject({ actor: `api:${email}`, remoteAddress: from })

      expectError(await api({ path: "/audit?dash=1", token, from }), 400, "BadInput", /dash and device/)
      expectError(await api({ path: "/audit?device=0", token, from }), 400, "BadInput", /dash and device/)
      expectError(await api({ path: "/audit?address=%20", token, from }), 400, "BadInput", /address is empty/)
      expectError(await api({ path: "/audit?limit=5000", token, from }), 400, "BadInput", /limit must be a whole number from 1 to 1000/)
      expectError(await api({ path: "/audit?since=2026-13-45", token, from }), 400, "BadInput", /since/)
      expectError(await api({ path: "/audit?type=Drop%20Table", token, from }), 400, "BadInput", /type/)
      expectError(await api({ path: "/audit?since=2026-02-01&until=2026-01-01", token, from }), 400, "BadInput", /since must be before until/)
      await Promise.all([app.close(), other.app.close()])
    })

    it("another account's dashboards and devices do not exist for the caller", async () => {
      const owner = await setup()
      const stranger = await setup()
      await owner.app.request(Command.CREATE_DASH, nextId(), [JSON.stringify({ id: 5, name: "Private" })])
      const as = (path: string, method = "GET", json?: unknown) => api({ path, method, json, token: stranger.token, from: stranger.from })
      expectError(await as("/dashboards/5/devices/0"), 404, "NotFound")
      expectError(await as("/dashboards/5/share"), 404, "NotFound")
      expectError(await as("/dashboards/5/share/revoke", "POST"), 404, "NotFound")
      expectError(await as("/dashboards/5/devices/0/pins/V1", "PUT", { values: [1] }), 404, "NotFound")
      // The stranger's own dashboard 1 is the stranger's: its token, not the owner's.
      expect((await as("/dashboards/1/devices/0")).json.token).toBe(stranger.deviceToken)
      const tokens = (await as("/devices")).json.map((d: { token: string }) => d.token)
      expect(tokens).not.toContain(owner.deviceToken)
      await Promise.all([owner.app.close(), stranger.app.close()])
    })
  })

  describe("OpenAPI", () => {
    it("GET /api/v1/openapi.json is the API's OpenAPI document, naming every path, on both ports, without a login", async () => {
      for (const tls of [false, true]) {
        const answer = await call({ port: tls ? server.tlsPort : server.plainPort, tls, path: "/api/v1/openapi.json" })
        expect(answer.status).toBe(200)
        expect(answer.headers["content-type"]).toMatch(/^application\/json/)
        const document = JSON.parse(answer.text)
        expect(document.openapi).toMatch(/^3\./)
        expect(document.info.title).toBe("Pinledger owner API")
        const declared = Object.values(OwnerApi.groups).flatMap((group) =>
          Object.values(group.endpoints).map((e) => [e.path.replace(/:(\w+)/g, "{$1}"), e.method.toLowerCase()] as const)
        )
        expect(declared.length).toBe(16)
        for (const [path, method] of declared) expect(document.paths[path]?.[method], `${method} ${path}`).toBeDefined()
        expect(Object.keys(document.components.securitySchemes).sort()).toEqual(["basic", "bearer"])
      }
    })
  })
})
