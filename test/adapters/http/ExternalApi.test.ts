import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Directory } from "../../../src/actors/Directory.ts"
import { Status } from "../../../src/adapters/blynk/Command.ts"
import { newToken } from "../../../src/adapters/security/Passwords.ts"
import { accountStream, deviceStream } from "../../../src/domain/Streams.ts"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import * as HistoryQueries from "../../../src/eventstore/HistoryQueries.ts"
import * as PinHistory from "../../../src/eventstore/projections/PinHistory.ts"
import { awaitStream, readStream } from "../../support/awaitLog.ts"
import { backends } from "../../support/backends.ts"
import { Command, isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"
import { clearOfBoundary, DAY_MS } from "../../support/clockBoundary.ts"
import { call, callJson, type HttpAnswer } from "../../support/httpClient.ts"

/** The day's limit and the interval per code the test servers apply to `logEvent` (an hour: never met by chance). */
const EVENTS = { perDay: 3, codeIntervalMs: 3_600_000 }

const button = (pin: number) => ({ id: 100 + pin, type: "BUTTON", pinType: "VIRTUAL", pin, deviceId: 0, x: 0, y: 0 })

const expectError = (answer: HttpAnswer, status: number, message: string) => {
  expect({ status: answer.status, body: answer.text }).toEqual({ status, body: JSON.stringify({ error: { message } }) })
  expect(answer.headers["content-type"]).toBe("application/json")
  expect(answer.headers["access-control-allow-origin"]).toBe("*")
}

/** 200 with the body the endpoint answers: empty, or `OK` from the batch endpoints (spec §2.2 #8, #9). */
const expectOk = (answer: HttpAnswer, body = "") => expect({ status: answer.status, body: answer.text }).toEqual({ status: 200, body })

for (const backend of backends) {
  describe(`Blynk IoT device API (/external/api) on ${backend.name}`, () => {
    let server: RunningServer

    beforeAll(async () => {
      const { storage, release } = await openStorage(backend)
      const running = await startBlynkServer(storage, {}, undefined, { events: EVENTS })
      server = { ...running, close: () => running.close().then(release) }
    })
    afterAll(() => server.close())

    const get = (path: string, options: { tls?: boolean; localAddress?: string } = {}) =>
      call({ port: options.tls ? server.tlsPort : server.plainPort, path, tls: options.tls ?? false, ...options })

    /** A fresh account with dashboard 1 (`widgets`) and device 0; its app stays logged in. */
    const setup = async (widgets: ReadonlyArray<Record<string, unknown>> = []) => {
      const { app, email } = await newAccount(server)
      await createDash(app, { widgets })
      const token = await createDevice(app, 1, 0)
      const account = accountStream(email, "Blynk")
      return { app, token, account, stream: deviceStream(account, 1, 0) }
    }

    const activate = async (app: Awaited<ReturnType<typeof setup>>["app"]) => {
      expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).not.toBe(-1)
    }

    /** Waits until the pin history has taken in everything in `stream` so far. */
    const historyOf = async (stream: string) => {
      const last = (await readStream(server, stream)).at(-1)!
      await server.run(PinHistory.awaitCaughtUp(last.position))
    }

    describe("conventions (spec §2.1)", () => {
      it("no token, an unknown token: JSON errors on every endpoint, on both ports; unknown tokens count towards the address's hardware throttle", async () => {
        const bad = newToken()
        const endpoints = [
          "get?v1", "getAll?", "update?v1=1", "batch/update?v1=1", "update/property?pin=V1&label=x", "logEvent?code=c",
          "data/get?", "isHardwareConnected?"
        ]
        for (const tls of [false, true]) {
          for (const endpoint of endpoints) {
            const [path, query] = endpoint.split("?") as [string, string]
            const sep = query === "" ? "" : "&"
            expectError(await get(`/external/api/${path}?${query}`, { tls }), 400, "No token provided.")
            expectError(await get(`/external/api/${path}?token=${bad}${sep}${query}`, { tls }), 400, "Invalid token.")
          }
          const posted = await call({ port: tls ? server.tlsPort : server.plainPort, tls, path: `/external/api/batch/update?token=${bad}&pin=v1`, method: "POST", body: "[]" })
          expectError(posted, 400, "Invalid token.")
        }
        const address = "127.0.0.23"
        expectError(await get(`/external/api/get?token=${bad}&v1`, { localAddress: address }), 400, "Invalid token.")
        const failures = await readStream(server, throttleStream("hardware", address))
        expect(failures.map((e) => [e.type, e.metadata.remoteAddress])).toEqual([["LoginFailed", address]])
      })

      it("paths in any case and with a trailing slash; unknown endpoints and methods answer 404", async () => {
        const { app, token } = await setup()
        for (const path of ["isHardwareConnected", "ishardwareconnected", "ISHARDWARECONNECTED/", "isHardwareConnected//"]) {
          const answer = await get(`/external/api/${path}?token=${token}`)
          expect({ path, status: answer.status, body: answer.text }).toEqual({ path, status: 200, body: "false" })
        }
        expectOk(await get(`/external/api/update/?token=${token}&V1=1`))
        expectOk(await get(`/external/api/logevent?token=${token}&code=lower`))
        expectOk(await get(`/external/api/logEvent/?token=${token}&code=camel`))
        for (
          const answer of [
            await get(`/external/api/nothing?token=${token}`),
            await get(`/external/api/?token=${token}`),
            await call({ port: server.plainPort, path: `/external/api/get?token=${token}&v1`, method: "POST", body: "[]" }),
            await call({ port: server.plainPort, path: `/external/api/update?token=${token}&v1=1`, method: "PUT", body: "[]" })
          ]
        ) {
          expect({ status: answer.status, length: answer.body.length }).toEqual({ status: 404, length: 0 })
        }
        await app.close()
      })
    })

    describe("get, getAll, isHardwareConnected", () => {
      it("get: one pin bare as stored, several a JSON object by lower-case pin (numbers as numbers), dataStreamId N is V N", async () => {
        const { app, token } = await setup()
        expectOk(await get(`/external/api/batch/update?token=${token}&V1=100.00000&v2=string%20pin&V4=12.0&V4=11&d3=0&A0=1&v5=12345678901234567890`), "OK")
        const one = await get(`/external/api/get?token=${token}&v1`)
        expect({ status: one.status, type: one.headers["content-type"], body: one.text }).toEqual({ status: 200, type: "text/plain", body: "100.00000" })
        expect((await get(`/external/api/get?token=${token}&dataStreamId=2`)).text).toBe("string pin")
        const multi = await get(`/external/api/get?token=${token}&V4`)
        expect({ type: multi.headers["content-type"], body: multi.text }).toEqual({ type: "application/json", body: "[12,11]" })
        const several = await get(`/external/api/get?token=${token}&v1&V2&v4&d3&dataStreamId=5&v1`)
        expect(several.headers["content-type"]).toBe("application/json")
        expect(several.text).toBe(`{"v1":100,"v2":"string pin","v4":[12,11],"d3":0,"v5":"12345678901234567890"}`)
        const all = await get(`/external/api/getAll?token=${token}`)
        expect({ type: all.headers["content-type"], body: all.text }).toEqual({
          type: "application/json",
          body: `{"a0":1,"d3":0,"v1":100,"v2":"string pin","v4":[12,11],"v5":"12345678901234567890"}`
        })
        expectError(await get(`/external/api/get?token=${token}&v9`), 400, "Requested dataStream doesn't exist in the product Home")
        expectError(await get(`/external/api/get?token=${token}&v1&v9`), 400, "Requested dataStream doesn't exist in the product Home")
        for (const pin of ["x1", "v256", "value", "v1x"]) expectError(await get(`/external/api/get?token=${token}&${pin}`), 400, "Wrong pin format.")
        expectError(await get(`/external/api/get?token=${token}`), 400, "Wrong pin format.")
        expectError(await get(`/external/api/get?token=${token}&dataStreamId=abc`), 400, "Wrong dataStreamId format.")
        await app.close()
      })

      it("getAll of a device without values is {}; isHardwareConnected is bare true/false", async () => {
        const { app, token, stream } = await setup()
        expect((await get(`/external/api/getAll?token=${token}`)).text).toBe("{}")
        const offline = await get(`/external/api/isHardwareConnected?token=${token}`)
        expect({ type: offline.headers["content-type"], body: offline.text }).toEqual({ type: "text/plain", body: "false" })
        const device = await connectDevice(server, token)
        expect((await get(`/external/api/isHardwareConnected?token=${token}`, { tls: true })).text).toBe("true")
        await device.close()
        await awaitStream(server, stream, (events) => events.some((e) => e.type === "DeviceDisconnected"))
        expect((await get(`/external/api/isHardwareConnected?token=${token}`)).text).toBe("false")
        await app.close()
      })
    })

    describe("update and batch update", () => {
      it("update in its three forms: stored, sent to the device with id 111 (an offline one or an inactive project is no error), committed with the caller's address before the 200", async () => {
        const { app, token, stream } = await setup()
        expectOk(await get(`/external/api/update?token=${token}&v1=offline`))
        const device = await connectDevice(server, token)
        const forms = [
          { query: "V1=10&V1=15&V1=65", write: ["v", 1, "10", "15", "65"] },
          { query: "pin=V2&value=lon&value=lat", write: ["v", 2, "lon", "lat"] },
          { query: "dataStreamId=3&value=7", write: ["v", 3, "7"] },
          { query: "d8=1", write: ["d", 8, "1"] }
        ] as const
        for (const [index, form] of forms.entries()) {
          const tls = index % 2 === 1
          const localAddress = `127.0.0.${30 + index}`
          const frame = device.next((f) => f._tag === "Message" && f.command === Command.HARDWARE && f.fields[1] === String(form.write[1]))
          const answer = await get(`/external/api/update?token=${token}&${form.query}`, { tls, localAddress })
          const events = await readStream(server, stream)
          expectOk(answer)
          const last = events.at(-1)!
          expect({ type: last.type, data: last.data, actor: last.metadata.actor, remote: last.metadata.remoteAddress }).toEqual({
            type: "PinsWritten",
            data: { _tag: "PinsWritten", dashId: 1, deviceId: 0, source: "http", writes: [form.write] },
            actor: "http",
            remote: localAddress
          })
          expect(last.metadata.session).toMatch(/^external-/)
          expect(await frame).toMatchObject({ id: 111, fields: [`${form.write[0]}w`, ...form.write.slice(1).map(String)] })
        }
        expect((await get(`/external/api/get?token=${token}&v2`)).text).toBe(`["lon","lat"]`)
        await device.close()
        await app.close()
      })

      it("update refuses what it cannot read, and changes nothing", async () => {
        const { app, token, stream } = await setup()
        const cases: ReadonlyArray<readonly [string, string]> = [
          ["", "No pin for update provided."],
          ["x1=5", "Wrong pin format."],
          ["v300=5", "Wrong pin format."],
          ["v1", "No value provided."],
          ["pin=V1", "No value provided."],
          ["pin=Q1&value=1", "Wrong pin format."],
          ["pin=V1&dataStreamId=2&value=1", "Wrong pin format."],
          ["dataStreamId=x&value=1", "Wrong dataStreamId format."],
          ["dataStreamId=256&value=1", "Wrong dataStreamId format."],
          ["v1=1&value=2", "Wrong pin format."]
        ]
        for (const [query, message] of cases) {
          expectError(await get(`/external/api/update?token=${token}&${query}`), 400, message)
          expectError(await get(`/external/api/batch/update?token=${token}&${query}`), 400, message)
        }
        expect((await readStream(server, stream)).filter((e) => e.type === "PinsWritten")).toEqual([])
        await app.close()
      })

      it("GET batch/update: several pins in ONE committed event (one shared time), reaching the connected device and the apps, answered after the commit", async () => {
        const { app, token, stream } = await setup()
        await activate(app)
        const device = await connectDevice(server, token)
        const toDevice = [device.next((f) => f.fields[1] === "5"), device.next((f) => f.fields[1] === "14")]
        const toApp = app.next((f) => f._tag === "Message" && f.command === Command.HARDWARE && f.fields[2] === "14")
        const before = (await readStream(server, stream)).length
        // Read at once: the 200 means committed.
        const answer = await get(`/external/api/batch/update?token=${token}&V5=-73.87&V5=40.84&V14=100.0&v3=-73.87,40.84`, { localAddress: "127.0.0.40" })
        const events = (await readStream(server, stream)).slice(before).filter((e) => e.type === "PinsWritten")
        expectOk(answer, "OK")
        expect(events.map((e) => ({ type: e.type, data: e.data, actor: e.metadata.actor, remote: e.metadata.remoteAddress }))).toEqual([{
          type: "PinsWritten",
          data: {
            _tag: "PinsWritten",
            dashId: 1,
            deviceId: 0,
            source: "http",
            writes: [["v", 5, "-73.87", "40.84"], ["v", 14, "100.0"], ["v", 3, "-73.87,40.84"]]
          },
          actor: "http",
          remote: "127.0.0.40"
        }])
        const frames = await Promise.all(toDevice)
        expect(frames.map((f) => ({ command: f.command, id: f.id, fields: f.fields }))).toEqual([
          { command: Command.HARDWARE, id: 111, fields: ["vw", "5", "-73.87", "40.84"] },
          { command: Command.HARDWARE, id: 111, fields: ["vw", "14", "100.0"] }
        ])
        expect(await toApp).toMatchObject({ id: 111, fields: ["1-0", "vw", "14", "100.0"] })
        await device.close()
        await app.close()
      })

      it("POST batch/update: each point recorded in the history with its own time, one commit; the latest becomes the value the device gets", async () => {
        const { app, token, account, stream } = await setup()
        const device = await connectDevice(server, token)
        const toDevice = device.next(isMessage(Command.HARDWARE))
        const now = Date.now()
        const points = [[now - 3_000, 36.6], [now - 86_400_000 * 2, "text"], [now - 1_000, [32.12, 49.1]], [now - 2_000, true]]
        const answer = await callJson({ port: server.tlsPort, tls: true, path: `/external/api/batch/update?token=${token}&pin=v7`, method: "POST", json: points, localAddress: "127.0.0.41" })
        const events = (await readStream(server, stream)).filter((e) => e.type === "PinsWritten")
        expectOk(answer, "OK")
        expect(events.map((e) => ({ data: e.data, remote: e.metadata.remoteAddress }))).toEqual([{
          data: {
            _tag: "PinsWritten",
            dashId: 1,
            deviceId: 0,
            source: "http",
            writes: [["v", 7, "text"], ["v", 7, "36.6"], ["v", 7, "true"], ["v", 7, "32.12", "49.1"]],
            timestamps: [now - 86_400_000 * 2, now - 3_000, now - 2_000, now - 1_000]
          },
          remote: "127.0.0.41"
        }])
        expect((await toDevice).fields).toEqual(["vw", "7", "32.12", "49.1"])
        expect((await get(`/external/api/get?token=${token}&v7`)).text).toBe("[32.12,49.1]")
        await historyOf(stream)
        const samples = await server.run(HistoryQueries.samples({ accountStream: account, dashId: 1, deviceId: 0, pinType: "v", pin: 7 }, 0, now + 1, 100))
        expect(samples.map((s) => [s.ts, s.value, ...s.more])).toEqual([
          [now - 86_400_000 * 2, "text"],
          [now - 3_000, "36.6"],
          [now - 2_000, "true"],
          [now - 1_000, "32.12", "49.1"]
        ])
        // dataStreamId names the pin too.
        expectOk(await callJson({ port: server.plainPort, path: `/external/api/batch/update?token=${token}&dataStreamId=8`, method: "POST", json: [[now, 1]] }), "OK")
        expect((await get(`/external/api/get?token=${token}&v8`)).text).toBe("1")
        await device.close()
        await app.close()
      })

      it("POST batch/update refuses, changing nothing: another content type, a bad pin, a bad body, more than 10,000 points, points older than a month or in the future", async () => {
        const { app, token, stream } = await setup()
        const post = (query: string, body: string, contentType?: string) =>
          call({ port: server.plainPort, path: `/external/api/batch/update?token=${token}&${query}`, method: "POST", body, ...(contentType === undefined ? {} : { contentType }) })
        const now = Date.now()
        expectError(await post("pin=v1", `[[${now},1]]`, "text/plain"), 400, "Unknown content type.")
        expectError(await post("", `[[${now},1]]`), 400, "Wrong pin format.")
        expectError(await post("pin=x1", `[[${now},1]]`), 400, "Wrong pin format.")
        expectError(await post("dataStreamId=-1", `[[${now},1]]`), 400, "Wrong dataStreamId format.")
        const shape = "The body must be a JSON array of [timestampMs, value] pairs."
        for (const body of [`[[${now},1]`, `{"a":1}`, `[[${now}]]`, `[["${now}",1]]`, `[[${now},null]]`, `[[${now},{}]]`, `[[${now},[]]]`, `[[1.5,1]]`]) {
          expectError(await post("pin=v1", body), 400, shape)
        }
        expectError(await post("pin=v1", "[]"), 400, "No data in batch.")
        const many = JSON.stringify(Array.from({ length: 10_001 }, (_, i) => [now - i, i]))
        expectError(await post("pin=v1", many), 400, "Too much data in batch. Maximum batch size is 10000 points.")
        const old = now - 31 * 86_400_000
        expectError(await post("pin=v1", `[[${now},1],[${old},2]]`), 400, `Timestamp ${old} is too old: points may be at most 30 days old.`)
        const ahead = now + 2 * 3_600_000
        expectError(await post("pin=v1", `[[${ahead},1]]`), 400, `Timestamp ${ahead} is in the future.`)
        expect((await readStream(server, stream)).filter((e) => e.type === "PinsWritten")).toEqual([])
        // Exactly 10,000 are taken, in one commit.
        expectOk(await post("pin=v1", JSON.stringify(Array.from({ length: 10_000 }, (_, i) => [now - i, i]))), "OK")
        const written = (await readStream(server, stream)).filter((e) => e.type === "PinsWritten")
        expect(written.reduce((n, e) => n + (e.data as { writes: Array<unknown> }).writes.length, 0)).toBe(10_000)
        expect(new Set(written.map((e) => e.metadata.session)).size).toBe(1)
        await app.close()
      })
    })

    describe("update/property", () => {
      it("sets properties through the actor (PropertySet, list items kept), to the apps as SET_WIDGET_PROPERTY id 111 while active; no widget or active project needed", async () => {
        const { app, token, stream } = await setup([button(1)])
        expectOk(await get(`/external/api/update/property?token=${token}&pin=V9&label=quiet`))
        await activate(app)
        const seen = [
          app.next((f) => f._tag === "Message" && f.command === Command.SET_WIDGET_PROPERTY && f.id === 111 && f.fields[2] === "label"),
          app.next((f) => f._tag === "Message" && f.command === Command.SET_WIDGET_PROPERTY && f.id === 111 && f.fields[2] === "labels")
        ]
        const answer = await get(`/external/api/update/property?token=${token}&pin=v1&label=${encodeURIComponent("Hello there")}&labels=a&labels=b&labels=c`, { localAddress: "127.0.0.50" })
        const events = (await readStream(server, stream)).filter((e) => e.type === "PropertySet")
        expectOk(answer)
        expect(events.map((e) => ({ data: e.data, actor: e.metadata.actor, remote: e.metadata.remoteAddress }))).toEqual([
          { data: { _tag: "PropertySet", dashId: 1, deviceId: 0, pin: 9, property: "label", value: "quiet" }, actor: "http", remote: "127.0.0.1" },
          { data: { _tag: "PropertySet", dashId: 1, deviceId: 0, pin: 1, property: "label", value: "Hello there" }, actor: "http", remote: "127.0.0.50" },
          { data: { _tag: "PropertySet", dashId: 1, deviceId: 0, pin: 1, property: "labels", value: "a", more: ["b", "c"] }, actor: "http", remote: "127.0.0.50" }
        ])
        expect(new Set(events.slice(1).map((e) => e.position)).size).toBe(2)
        const [label, labels] = await Promise.all(seen)
        expect(label).toMatchObject({ id: 111, fields: ["1-0", "1", "label", "Hello there"] })
        expect(labels).toMatchObject({ id: 111, fields: ["1-0", "1", "labels", "a", "b", "c"] })
        // APP_SYNC gives the list back whole.
        const from = app.received.length
        expect(await app.request(Command.APP_SYNC, nextId(), ["1"])).toBe(Status.OK)
        await app.request(Command.PING, nextId())
        const synced = app.received.slice(from).filter((f) => f._tag === "Message" && f.command === Command.SET_WIDGET_PROPERTY && f.fields[2] === "labels")
        expect(synced.map((f) => f.fields)).toEqual([["1-0", "1", "labels", "a", "b", "c"]])
        await app.close()
      })

      it("refuses a missing or non-virtual pin, an unknown property, a value that does not fit", async () => {
        const { app, token, stream } = await setup()
        const cases: ReadonlyArray<readonly [string, string]> = [
          ["label=x", "Wrong pin format."],
          ["pin=D1&label=x", "Wrong pin format."],
          ["pin=V1", "No properties for update provided."],
          ["pin=V1&label", "No value provided."],
          ["pin=V1&nonsense=1", `Unknown property "nonsense".`],
          ["pin=V1&min=abc", "Value doesn't match the Datastream data type"],
          ["pin=V1&label=ok&color=blue", "Value doesn't match the Datastream data type"],
          ["dataStreamId=z&label=x", "Wrong dataStreamId format."]
        ]
        for (const [query, message] of cases) expectError(await get(`/external/api/update/property?token=${token}&${query}`), 400, message)
        expect((await readStream(server, stream)).filter((e) => e.type === "PropertySet")).toEqual([])
        await app.close()
      })

      it("a device's list property (labels a b) is kept too, its items apart in the log", async () => {
        const { app, token, stream } = await setup([button(2)])
        const device = await connectDevice(server, token)
        device.send(Command.SET_WIDGET_PROPERTY, nextId(), ["2", "labels", "one", "two"])
        const [set] = (await awaitStream(server, stream, (events) => events.some((e) => e.type === "PropertySet"))).filter((e) => e.type === "PropertySet")
        expect(set!.data).toEqual({ _tag: "PropertySet", dashId: 1, deviceId: 0, pin: 2, property: "labels", value: "one", more: ["two"] })
        // Later writes of the device are still committed.
        device.send(Command.HARDWARE, nextId(), ["vw", "2", "after"])
        await awaitStream(server, stream, (events) => events.some((e) => e.type === "PinsWritten"))
        await device.close()
        await app.close()
      })
    })

    describe("logEvent", () => {
      it("an accepted event is an EventLogged in the device's stream, committed with the caller's address before the 200", async () => {
        const { app, token, stream } = await setup()
        const answer = await get(`/external/api/logEvent?token=${token}&code=door_open&description=${encodeURIComponent("Front door")}`, { localAddress: "127.0.0.60" })
        const events = (await readStream(server, stream)).filter((e) => e.type === "EventLogged")
        expectOk(answer)
        expect(events.map((e) => ({ data: e.data, actor: e.metadata.actor, remote: e.metadata.remoteAddress }))).toEqual([
          { data: { _tag: "EventLogged", dashId: 1, deviceId: 0, code: "door_open", description: "Front door" }, actor: "http", remote: "127.0.0.60" }
        ])
        expectOk(await get(`/external/api/logevent?token=${token}&code=no_description`))
        expect((await readStream(server, stream)).at(-1)!.data).toEqual({ _tag: "EventLogged", dashId: 1, deviceId: 0, code: "no_description" })
        await app.close()
      })

      it("no code, a description over 300 characters: 400; the same code again within the interval, or past the day's limit: 429; a refusal is not logged and not counted", async () => {
        // The limit is per UTC day: the whole test in one day (the count starts over at midnight).
        await clearOfBoundary(DAY_MS, 30_000)
        const { app, token, account, stream } = await setup()
        expectError(await get(`/external/api/logEvent?token=${token}`), 400, "Event code is not provided.")
        expectError(await get(`/external/api/logEvent?token=${token}&code=`), 400, "Event code is not provided.")
        expectError(await get(`/external/api/logEvent?token=${token}&code=a&description=${"x".repeat(301)}`), 400, "Description is too long: at most 300 characters.")
        expectOk(await get(`/external/api/logEvent?token=${token}&code=a&description=${"x".repeat(300)}`))
        expectError(await get(`/external/api/logEvent?token=${token}&code=a`), 429, "Too many events with this code: at most one per 3600000 ms.")
        expectOk(await get(`/external/api/logEvent?token=${token}&code=b`))
        expectOk(await get(`/external/api/logEvent?token=${token}&code=c`))
        expectError(await get(`/external/api/logEvent?token=${token}&code=d`), 429, "Event limit reached: at most 3 events per device per day.")
        expect((await readStream(server, stream)).filter((e) => e.type === "EventLogged").map((e) => (e.data as { code: string }).code)).toEqual(["a", "b", "c"])
        // The day's count comes from the log: a fresh actor (as after a restart) refuses too.
        await app.close()
        await server.run(Effect.flatMap(Directory, (directory) => directory.evict(account)))
        expectError(await get(`/external/api/logEvent?token=${token}&code=e`), 429, "Event limit reached: at most 3 events per device per day.")
      })
    })

    describe("data/get (spec §2.4)", () => {
      /** An account whose V1 has raw values 10, 20 (a minute ago) and 30 (now), V2 a text, and one event. */
      const withHistory = async () => {
        const fixture = await setup()
        const { token, stream } = fixture
        const now = Date.now()
        const minute = Math.floor(now / 60_000) * 60_000
        expectOk(await callJson({ port: server.plainPort, path: `/external/api/batch/update?token=${fixture.token}&pin=V1`, method: "POST", json: [[minute - 60_000, 10], [minute - 59_000, 20]] }), "OK")
        expectOk(await get(`/external/api/update?token=${token}&v1=30`))
        expectOk(await get(`/external/api/update?token=${token}&v2=hello,world`))
        expectOk(await get(`/external/api/logEvent?token=${token}&code=alarm&description=${encodeURIComponent("too \"hot\"")}`))
        await historyOf(stream)
        const events = await readStream(server, stream)
        const writeTime = (value: string) =>
          Date.parse(events.find((e) => JSON.stringify(e.data).includes(`"${value}"`))!.metadata.time)
        return { ...fixture, minute, t30: writeTime("30"), tHello: writeTime("hello,world"), tAlarm: writeTime("alarm") }
      }

      const table = async (token: string, query: string) => {
        const answer = await get(`/external/api/data/get?token=${token}&output=JSON&${query}`)
        expect({ status: answer.status, type: answer.headers["content-type"] }).toEqual({ status: 200, type: "application/json" })
        return JSON.parse(answer.text) as { meta: unknown; data: Array<Record<string, unknown>>; rows: number; rows_before_limit_at_least: number }
      }

      it("output=JSON: raw samples of every pin (then the events with sendEvents=true), a pin's rollups by sourceType, times as asked", async () => {
        const { app, token, minute, t30, tHello, tAlarm } = await withHistory()
        const raw = await table(token, "")
        expect(raw).toEqual({
          meta: [{ name: "data_stream_name", type: "String" }, { name: "ts", type: "UInt64" }, { name: "value", type: "String" }],
          data: [
            { data_stream_name: "V1", ts: minute - 60_000, value: 10 },
            { data_stream_name: "V1", ts: minute - 59_000, value: 20 },
            { data_stream_name: "V1", ts: t30, value: 30 },
            { data_stream_name: "V2", ts: tHello, value: "hello,world" }
          ],
          rows: 4,
          rows_before_limit_at_least: 4
        })
        const withEvents = await table(token, "sendEvents=true&pin=v2&format=ISO_SIMPLE")
        const simple = (ts: number) => new Date(ts).toISOString().slice(0, 19).replace("T", " ")
        expect(withEvents.data).toEqual([
          { data_stream_name: "V2", ts: simple(tHello), value: "hello,world", description: "" },
          { data_stream_name: "event", ts: simple(tAlarm), value: "alarm", description: "too \"hot\"" }
        ])
        for (const [source, first] of [["AVG", 15], ["MIN", 10], ["MAX", 20], ["SUM", 30], ["COUNT", 2]] as const) {
          const minutes = await table(token, `granularityType=MINUTE&sourceType=${source}&dataStreamId=1&period=HOUR`)
          expect(minutes.meta).toEqual([{ name: "data_stream_name", type: "String" }, { name: "ts", type: "UInt64" }, { name: "value", type: "Float64" }])
          expect(minutes.data[0]).toEqual({ data_stream_name: "V1", ts: minute - 60_000, value: first })
        }
        const hours = await table(token, "granularityType=HOURLY&sourceType=COUNT&pin=V1&period=DAY&tzName=Asia/Kolkata&format=ISO_US")
        const hourStart = Math.floor(t30 / 3_600_000) * 3_600_000
        const kolkata = new Date(hourStart + 5.5 * 3_600_000)
        const us = `${String(kolkata.getUTCMonth() + 1).padStart(2, "0")}/${String(kolkata.getUTCDate()).padStart(2, "0")}/${String(kolkata.getUTCFullYear()).slice(-2)} ` +
          `${String(kolkata.getUTCHours() % 12 === 0 ? 12 : kolkata.getUTCHours() % 12).padStart(2, "0")}:${String(kolkata.getUTCMinutes()).padStart(2, "0")}:00 ${kolkata.getUTCHours() < 12 ? "AM" : "PM"}`
        expect(hours.data.at(-1)).toEqual({ data_stream_name: "V1", ts: us, value: Math.floor((minute - 60_000) / 3_600_000) === Math.floor(t30 / 3_600_000) ? 3 : 1 })
        await app.close()
      })

      it("FILE (the default): a link under PINLEDGER_PUBLIC_URL to a ZIP a real unzip reads, holding the CSV", async () => {
        const { app, token, minute, t30, tHello, tAlarm } = await withHistory()
        const answer = await get(`/external/api/data/get?token=${token}&sendEvents=true`, { tls: true })
        expect({ status: answer.status, type: answer.headers["content-type"] }).toEqual({ status: 200, type: "application/json" })
        const { link } = JSON.parse(answer.text) as { link: string }
        const match = /^https:\/\/localhost:9443\/(device_data_(\d+)_(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d))\.zip$/.exec(link)
        expect(match).not.toBeNull()
        const file = await get(`/${match![1]}.zip`)
        expect({ status: file.status, type: file.headers["content-type"] }).toEqual({ status: 200, type: "application/zip" })
        const dir = await mkdtemp(join(tmpdir(), "pinledger-zip-"))
        try {
          await writeFile(join(dir, "export.zip"), file.body)
          execFileSync("python3", ["-m", "zipfile", "-e", join(dir, "export.zip"), join(dir, "out")])
          expect(await readdir(join(dir, "out"))).toEqual([`${match![1]}.csv`])
          const csv = await readFile(join(dir, "out", `${match![1]}.csv`), "utf8")
          expect(csv).toBe([
            "data_stream_name,ts,value,description",
            `V1,${minute - 60_000},10,`,
            `V1,${minute - 59_000},20,`,
            `V1,${t30},30,`,
            `V2,${tHello},"hello,world",`,
            `event,${tAlarm},alarm,"too ""hot"""`,
            ""
          ].join("\r\n"))
          expect(execFileSync("unzip", ["-p", join(dir, "export.zip")]).toString("utf8")).toBe(csv)
        } finally {
          await rm(dir, { recursive: true, force: true })
        }
        await app.close()
      })

      it("unknown enum values answer 500 naming the enum, no data 500 `No data`, impossible combinations 400", async () => {
        const { app, token } = await setup()
        const data = (query: string) => get(`/external/api/data/get?token=${token}&${query}`)
        expectError(await data("period=YEAR"), 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.YEAR")
        expectError(await data("granularityType=SECOND"), 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.GraphGranularityType.SECOND")
        expectError(await data("sourceType=MEDIAN"), 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.SourceType.MEDIAN")
        expectError(await data("format=RFC"), 500, "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.DateFormat.RFC")
        expectError(await data(""), 500, "No data")
        expectError(await data("pin=v1&granularityType=DAILY&period=week"), 500, "No data")
        expectError(await data("period=THREE_MONTHS"), 400, "Request with incorrect parameters")
        expectError(await data("tzName=Mars/Olympus"), 400, "Request with incorrect parameters")
        expectError(await data("sendEvents=maybe"), 400, "Request with incorrect parameters")
        expectError(await data("pin=z9"), 400, "Wrong pin format.")
        const missing = await get(`/device_data_1_2024-01-01T00-00-00.zip`)
        expect({ status: missing.status, length: missing.body.length }).toEqual({ status: 404, length: 0 })
        await app.close()
      })
    })
  })
}
