import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { gunzipSync } from "node:zlib"
import * as QRCode from "qrcode"
import * as PinHistory from "../../../src/eventstore/projections/PinHistory.ts"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import { cloneLink } from "../../../src/adapters/http/LegacyApi.ts"
import { MAX_BODY_BYTES } from "../../../src/adapters/http/LegacyHttp.ts"
import { newToken } from "../../../src/adapters/security/Passwords.ts"
import { accountStream, deviceStream, outboxStream } from "../../../src/domain/Streams.ts"
import { awaitStream, readStream } from "../../support/awaitLog.ts"
import { Command, isMessage } from "../../support/BlynkClient.ts"
import { Status } from "../../../src/adapters/blynk/Command.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { backends } from "../../support/backends.ts"
import { type RunningServer, startOnFreshStorage } from "../../support/blynkServer.ts"
import { call, callJson } from "../../support/httpClient.ts"

/** The server of the backend whose suite runs (the suites run one after the other). */
let server: RunningServer

const button = (pin: number) => ({ id: 100 + pin, type: "BUTTON", pinType: "VIRTUAL", pin, deviceId: 0, x: 0, y: 0 })

/** A fresh account with dashboard 1 (`widgets`) and device 0; its app stays logged in. */
const setup = async (widgets: ReadonlyArray<Record<string, unknown>> = []) => {
  const { app, email } = await newAccount(server)
  await createDash(app, { widgets })
  const token = await createDevice(app, 1, 0)
  const account = accountStream(email, "Blynk")
  return { app, email, token, account, device: deviceStream(account, 1, 0) }
}

const activate = async (app: Awaited<ReturnType<typeof setup>>["app"]) => {
  await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])
}

const get = (path: string, tls = false) => call({ port: tls ? server.tlsPort : server.plainPort, path, tls })

const expect400 = (answer: Awaited<ReturnType<typeof call>>, text: string) => {
  expect({ status: answer.status, text: answer.text }).toEqual({ status: 400, text })
  expect(answer.headers["content-type"]).toMatch(/^text\/plain/)
  expect(answer.headers["access-control-allow-origin"]).toBe("*")
}

const routing = () =>
  describe("legacy HTTP API: routing, tokens, bodies (protocol.md §5)", () => {
    it("unmatched paths and methods answer 404 with an empty body, with Access-Control-Allow-Origin", async () => {
      const { app, token } = await setup()
      for (
        const answer of [
          await get("/no/such/path/here"),
          await get(`/${token}/nothing`),
          await call({ port: server.plainPort, path: `/${token}/get/V1`, method: "POST" }),
          await call({ port: server.plainPort, path: `/${token}/notify`, method: "GET" })
        ]
      ) {
        expect(answer.status).toBe(404)
        expect(answer.body.length).toBe(0)
        expect(answer.headers["access-control-allow-origin"]).toBe("*")
      }
      await app.close()
    })

    it("an unknown token answers 400 `Invalid token.` on every device route, on both ports", async () => {
      const bad = newToken()
      for (const tls of [false, true]) {
        const port = tls ? server.tlsPort : server.plainPort
        const answers = [
          await get(`/${bad}/get/V1`, tls),
          await get(`/${bad}/update/V1?value=1`, tls),
          await get(`/${bad}/update/V1?label=x`, tls),
          await callJson({ port, tls, path: `/${bad}/update/V1`, method: "PUT", json: ["1"] }),
          await callJson({ port, tls, path: `/${bad}/pin/V1`, method: "PUT", json: ["1"] }),
          await callJson({ port, tls, path: `/${bad}/extra/pin/V1`, method: "PUT", json: [{ timestamp: 1, value: "1" }] }),
          await get(`/${bad}/isHardwareConnected`, tls),
          await get(`/${bad}/isAppConnected`, tls),
          await get(`/${bad}/project`, tls),
          await get(`/${bad}/rtc`, tls),
          await get(`/${bad}/qr`, tls),
          await callJson({ port, tls, path: `/${bad}/notify`, method: "POST", json: { body: "hi" } }),
          await callJson({ port, tls, path: `/${bad}/email`, method: "POST", json: { to: "a@b.c", subj: "s", title: "t" } })
        ]
        for (const answer of answers) expect400(answer, "Invalid token.")
      }
    })

    it("a path token that cannot be a token (a NUL in it, a wrong length) is an unknown token, counted by the throttle; such a clone code is not found", async () => {
      const localAddress = "127.0.0.11"
      const paths = [`/%00${"a".repeat(31)}/get/V1`, `/abc%00/update/V1?value=1`, `/x/isHardwareConnected`, `/%00/data/V1`]
      for (const path of paths) expect400(await call({ port: server.plainPort, path, localAddress }), "Invalid token.")
      const failures = await readStream(server, throttleStream("hardware", localAddress))
      expect(failures.map((e) => e.type)).toEqual(paths.map(() => "LoginFailed"))
      const clone = await get(`/abc%00/clone`)
      expect({ status: clone.status, text: clone.text }).toEqual({ status: 500, text: "Requested QR not found." })
    })

    it("JSON bodies: another content type and unparsable bodies answer the legacy 500 texts; over 524,288 bytes 413", async () => {
      const { app, token } = await setup()
      const port = server.plainPort
      const wrongType = await call({ port, path: `/${token}/update/V1`, method: "PUT", body: `["1"]`, contentType: "text/plain" })
      expect({ status: wrongType.status, text: wrongType.text }).toEqual({
        status: 500,
        text: "Unexpected content type. Expecting application/json."
      })
      const broken = await call({ port, path: `/${token}/update/V1`, method: "PUT", body: `["1",` })
      expect({ status: broken.status, text: broken.text }).toEqual({ status: 500, text: `Error parsing body param. ["1",` })
      const notArray = await call({ port, path: `/${token}/pin/V1`, method: "PUT", body: `{"a":1}` })
      expect({ status: notArray.status, text: notArray.text }).toEqual({ status: 500, text: `Error parsing body param. {"a":1}` })
      const badItem = await callJson({ port, path: `/${token}/extra/pin/V1`, method: "PUT", json: [{ value: "1" }] })
      expect(badItem.status).toBe(500)
      expect(badItem.text).toBe(`Error parsing body param. [{"value":"1"}]`)
      const large = JSON.stringify(["x".repeat(MAX_BODY_BYTES)])
      expect((await call({ port, path: `/${token}/update/V1`, method: "PUT", body: large })).status).toBe(413)
      expect((await call({ port, path: `/${token}/update/V1`, method: "PUT", body: large, chunked: true })).status).toBe(413)
      // Just under the limit is taken.
      const fits = JSON.stringify(["y".repeat(MAX_BODY_BYTES - 10)])
      expect((await call({ port, path: `/${token}/update/V1`, method: "PUT", body: fits, chunked: true })).status).toBe(200)
      await app.close()
    })
  })

const pins = () =>
  describe("legacy HTTP API: pins", () => {
    it("GET get: a widget's pin without a value is [], stored values come back as strings, unknown pins and bad formats answer 400", async () => {
      const { app, token } = await setup([button(2)])
      const empty = await get(`/${token}/get/V2`)
      expect({ status: empty.status, type: empty.headers["content-type"], body: empty.text }).toEqual({
        status: 200,
        type: "application/json",
        body: "[]"
      })
      expect400(await get(`/${token}/get/V9`), "Requested pin doesn't exist in the app.")
      for (const pin of ["X1", "V256", "V", "1", "V1x"]) expect400(await get(`/${token}/get/${pin}`), "Wrong pin format.")
      const written = await get(`/${token}/update/v9?value=a&value=b`)
      expect({ status: written.status, length: written.body.length }).toEqual({ status: 200, length: 0 })
      expect((await get(`/${token}/get/V9`)).text).toBe(`["a","b"]`)
      // A value holding NULs is several values (and the log can hold it).
      expect((await get(`/${token}/update/D3?value=${encodeURIComponent("1\u00002")}`)).status).toBe(200)
      expect((await get(`/${token}/get/d3`)).text).toBe(`["1","2"]`)
      await app.close()
    })

    it("GET update: no value and no property is `Wrong request format.`, a bad pin `Wrong pin format.`", async () => {
      const { app, token } = await setup()
      expect400(await get(`/${token}/update/V1`), "Wrong request format.")
      expect400(await get(`/${token}/update/V1?other=1`), "Wrong request format.")
      expect400(await get(`/${token}/update/Q1?value=1`), "Wrong pin format.")
      const port = server.plainPort
      expect400(await callJson({ port, path: `/${token}/update/V1`, method: "PUT", json: [] }), "No pin for update provided.")
      expect400(await callJson({ port, path: `/${token}/extra/pin/V1`, method: "PUT", json: [] }), "No pin for update provided.")
      expect400(await callJson({ port, path: `/${token}/pin/V300`, method: "PUT", json: ["1"] }), "Wrong pin format.")
      await app.close()
    })

    it("a write reaches the connected device (id 111) and the apps of the active project, and is committed with actor http and the caller's address before the 200", async () => {
      const { app, token, device: stream } = await setup()
      const device = await connectDevice(server, token)
      await activate(app)
      for (const [index, tls] of [false, true].entries()) {
        const value = `42-${index}`
        const toDevice = device.next((f) => f._tag === "Message" && f.command === Command.HARDWARE && f.fields.includes(value))
        const toApp = app.next((f) => f._tag === "Message" && f.command === Command.HARDWARE && f.fields.includes(value))
        const localAddress = tls ? "127.0.0.6" : "127.0.0.5"
        const answer = await callJson({
          port: tls ? server.tlsPort : server.plainPort,
          tls,
          localAddress,
          path: `/${token}/update/V4`,
          method: "PUT",
          json: [value]
        })
        // Read at once: the 200 means committed.
        const events = await readStream(server, stream)
        expect(answer.status).toBe(200)
        expect(answer.body.length).toBe(0)
        expect(answer.headers["access-control-allow-origin"]).toBe("*")
        const written = events.filter((e) => e.type === "PinsWritten" && JSON.stringify(e.data).includes(value))
        expect(written.map((e) => ({ data: e.data, actor: e.metadata.actor, remote: e.metadata.remoteAddress }))).toEqual([{
          data: { _tag: "PinsWritten", dashId: 1, deviceId: 0, source: "http", writes: [["v", 4, value]] },
          actor: "http",
          remote: localAddress
        }])
        expect(await toDevice).toMatchObject({ id: 111, fields: ["vw", "4", value] })
        expect(await toApp).toMatchObject({ id: 111, fields: ["1-0", "vw", "4", value] })
      }
      // The legacy alias, and a device on the TLS port too.
      const twin = await connectDevice(server, token, true)
      const toTwin = twin.next((f) => f._tag === "Message" && f.fields.includes("alias"))
      expect((await callJson({ port: server.plainPort, path: `/${token}/pin/V5`, method: "PUT", json: ["alias", 7] })).status).toBe(200)
      expect(await toTwin).toMatchObject({ id: 111, command: Command.HARDWARE, fields: ["vw", "5", "alias", "7"] })
      expect((await get(`/${token}/get/V5`)).text).toBe(`["alias","7"]`)
      for (const c of [device, twin, app]) await c.close()
    })

    it("while the project is inactive, a write is stored and reaches the device, but no app", async () => {
      const { app, token } = await setup()
      const device = await connectDevice(server, token)
      const toDevice = device.next(isMessage(Command.HARDWARE))
      expect((await get(`/${token}/update/V1?value=quiet`)).status).toBe(200)
      expect((await toDevice).fields).toEqual(["vw", "1", "quiet"])
      // Anything sent to the app before the 200 arrives before the answer to this ping.
      await app.request(Command.PING, nextId())
      expect(app.received.filter((f) => f._tag === "Message" && f.fields.includes("quiet"))).toEqual([])
      expect((await get(`/${token}/get/V1`)).text).toBe(`["quiet"]`)
      await device.close()
      await app.close()
    })

    it("PUT extra/pin records every value with its timestamp; the first becomes current and is what the device gets", async () => {
      const { app, token, device: stream } = await setup()
      const device = await connectDevice(server, token)
      const toDevice = device.next(isMessage(Command.HARDWARE))
      const answer = await callJson({
        port: server.plainPort,
        path: `/${token}/extra/pin/V6`,
        method: "PUT",
        json: [{ timestamp: 1_700_000_000_000, value: "first" }, { timestamp: 1_600_000_000_000, value: 2.5 }]
      })
      const events = await readStream(server, stream)
      expect(answer.status).toBe(200)
      const timed = events.filter((e) => e.type === "PinsWritten" && e.metadata.actor === "http")
      expect(timed.map((e) => e.data)).toEqual([{
        _tag: "PinsWritten",
        dashId: 1,
        deviceId: 0,
        source: "http",
        writes: [["v", 6, "2.5"], ["v", 6, "first"]],
        timestamps: [1_600_000_000_000, 1_700_000_000_000]
      }])
      expect((await toDevice).fields).toEqual(["vw", "6", "first"])
      expect((await get(`/${token}/get/V6`)).text).toBe(`["first"]`)
      await device.close()
      await app.close()
    })

    it("GET update with a property: checked as the legacy server does, sent to the apps as SET_WIDGET_PROPERTY id 111, committed", async () => {
      const { app, token, device: stream } = await setup([button(8)])
      expect400(await get(`/${token}/update/V8?label=Hi`), "Project is not active.")
      await activate(app)
      expect400(await get(`/${token}/update/V7?label=Hi`), "No widget for SetWidgetProperty command.")
      expect400(await get(`/${token}/update/V8?min=abc`), "Error setting widget property.")
      expect400(await get(`/${token}/update/V8?label`), "No properties for update provided.")
      const seen = app.next(isMessage(Command.SET_WIDGET_PROPERTY))
      const answer = await get(`/${token}/update/V8?label=${encodeURIComponent("Hello there")}`)
      const events = await readStream(server, stream)
      expect(answer.status).toBe(200)
      expect(await seen).toMatchObject({ id: 111, fields: ["1-0", "8", "label", "Hello there"] })
      const set = events.filter((e) => e.type === "PropertySet")
      expect(set.map((e) => ({ data: e.data, actor: e.metadata.actor }))).toEqual([{
        data: { _tag: "PropertySet", dashId: 1, deviceId: 0, pin: 8, property: "label", value: "Hello there" },
        actor: "http"
      }])
      await app.close()
    })
  })

const status = () =>
  describe("legacy HTTP API: status, project, rtc, qr, clone", () => {
    it("isHardwareConnected follows the device; isAppConnected needs an app and an active project", async () => {
      const { app, token, device: stream } = await setup()
      expect((await get(`/${token}/isHardwareConnected`)).text).toBe("false")
      const device = await connectDevice(server, token)
      const online = await get(`/${token}/isHardwareConnected`)
      expect({ status: online.status, type: online.headers["content-type"], body: online.text }).toEqual({
        status: 200,
        type: "application/json",
        body: "true"
      })
      expect((await get(`/${token}/isAppConnected`)).text).toBe("false")
      await activate(app)
      expect((await get(`/${token}/isAppConnected`)).text).toBe("true")
      expect(await app.request(Command.DEACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
      expect((await get(`/${token}/isAppConnected`)).text).toBe("false")
      await device.close()
      // The actor has let the device go once its disconnection is in the log.
      await awaitStream(server, stream, (events) => events.some((e) => e.type === "DeviceDisconnected"))
      expect((await get(`/${token}/isHardwareConnected`)).text).toBe("false")
      await app.close()
    })

    it("GET project is the restrictive view: values in, device tokens, share token and push tokens out", async () => {
      const notification = { id: 30, type: "NOTIFICATION", androidTokens: { phone: "secret-push-token" } }
      const { app, token } = await setup([button(3), notification])
      await app.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])
      expect((await get(`/${token}/update/V3?value=1`)).status).toBe(200)
      const answer = await get(`/${token}/project`)
      expect(answer.status).toBe(200)
      expect(answer.headers["content-type"]).toBe("application/json")
      const dash = JSON.parse(answer.text)
      expect(dash).toMatchObject({ id: 1, name: "Home", devices: [{ id: 0, name: "device 0", status: "OFFLINE" }] })
      expect(dash.widgets).toContainEqual({ ...button(3), value: "1" })
      expect(answer.text).not.toContain(token)
      expect(answer.text).not.toContain("secret-push-token")
      expect(dash).not.toHaveProperty("sharedToken")
      await app.close()
    })

    it("GET rtc: the RTC widget's zone as epoch seconds in an array; without one, 400", async () => {
      const plain = await setup()
      expect400(await get(`/${plain.token}/rtc`), "Requested rtc not exists in app.")
      await plain.app.close()
      const { app, token } = await setup([{ id: 20, type: "RTC", tzName: "Etc/GMT-2" }])
      const before = Math.floor(Date.now() / 1000)
      const answer = await get(`/${token}/rtc`)
      const after = Math.ceil(Date.now() / 1000)
      expect(answer.status).toBe(200)
      const [seconds] = JSON.parse(answer.text) as [number]
      // Etc/GMT-2 is two hours ahead of UTC.
      expect(seconds).toBeGreaterThanOrEqual(before + 7200)
      expect(seconds).toBeLessThanOrEqual(after + 7200)
      await app.close()
    })

    it("GET qr issues a clone code through the decider and returns its link as a PNG; GET /{code}/clone returns the layout", async () => {
      const { app, token, account } = await setup([button(1)])
      expect((await get(`/${token}/update/V1?value=on`)).status).toBe(200)
      const answer = await get(`/${token}/qr`, true)
      expect(answer.status).toBe(200)
      expect(answer.headers["content-type"]).toBe("image/png")
      const issued = (await readStream(server, account)).filter((e) => e.type === "CloneCodeIssued")
      expect(issued.map((e) => e.metadata.actor)).toEqual(["http"])
      const code = (issued[0]!.data as { code: string }).code
      expect(code).toMatch(/^[A-Za-z0-9_-]{32}$/)
      const expected = await QRCode.toBuffer(cloneLink("https://localhost:9443", code), { type: "png" })
      expect(answer.body.equals(expected)).toBe(true)
      expect(cloneLink("https://localhost:9443", code)).toBe(`blynk://token/clone/${code}?server=localhost&port=9443`)

      const cloned = await get(`/${code}/clone`)
      expect(cloned.status).toBe(200)
      expect(cloned.headers["content-type"]).toBe("application/json")
      const layout = JSON.parse(cloned.text)
      expect(layout).toMatchObject({ id: 1, name: "Home" })
      expect(cloned.text).not.toContain(token)
      expect(cloned.text).not.toContain(`"on"`)
      const missing = await get(`/${newToken()}/clone`)
      expect({ status: missing.status, text: missing.text }).toEqual({ status: 500, text: "Requested QR not found." })
      await app.close()
    })
  })

const data = () =>
  describe("legacy HTTP API: data", () => {
    it("GET data redirects (301) to the pin's minute history as gzip CSV, then served under that name", async () => {
      const { app, email, token, device: stream } = await setup()
      expect400(await get(`/${token}/data/V1`), "No data.")
      expect400(await get(`/${token}/data/W1`), "Wrong pin format.")
      const minute = Math.floor(Date.now() / 60_000) * 60_000
      const written = await callJson({
        port: server.plainPort,
        path: `/${token}/extra/pin/V1`,
        method: "PUT",
        json: [{ timestamp: minute - 60_000, value: "20" }, { timestamp: minute - 180_000, value: "10" }, { timestamp: minute - 180_000 + 1, value: "11" }]
      })
      expect(written.status).toBe(200)
      const last = (await readStream(server, stream)).at(-1)!
      await server.run(PinHistory.awaitCaughtUp(last.position))
      const answer = await get(`/${token}/data/V1`, true)
      expect(answer.status).toBe(301)
      const location = answer.headers["location"] ?? ""
      // The name as the legacy server wrote it: the e-mail's `@` as it is.
      expect(location).toMatch(new RegExp(`^/${email.replace(/[.+]/g, "\\$&")}_1_0_v1_\\d+\\.csv\\.gz$`))
      const file = await get(location, true)
      expect(file.status).toBe(200)
      expect(file.headers["content-type"]).toBe("application/gzip")
      expect(gunzipSync(file.body).toString("utf8")).toBe(`10.5,${minute - 180_000},0\n20.0,${minute - 60_000},0\n`)
      const unknown = await get(`/no-such-export.csv.gz`)
      expect({ status: unknown.status, length: unknown.body.length }).toEqual({ status: 404, length: 0 })
      await app.close()
    })
  })

const notifications = () =>
  describe("legacy HTTP API: notifications", () => {
    it("POST notify: checked in the legacy order, then committed to the outbox with actor http", async () => {
      const port = server.plainPort
      const notify = (token: string, json: unknown) => callJson({ port, path: `/${token}/notify`, method: "POST", json })
      const bare = await setup()
      expect400(await notify(bare.token, { body: "" }), "Body is empty or larger than 255 chars.")
      expect400(await notify(bare.token, { body: "x".repeat(256) }), "Body is empty or larger than 255 chars.")
      expect400(await notify(bare.token, {}), "Body is empty or larger than 255 chars.")
      expect400(await notify(bare.token, { body: "hi" }), "Project is not active.")
      await activate(bare.app)
      expect400(await notify(bare.token, { body: "hi" }), "No notification widget.")
      await bare.app.close()

      const unset = await setup([{ id: 30, type: "NOTIFICATION" }])
      await activate(unset.app)
      expect400(await notify(unset.token, { body: "hi" }), "Notification widget not initialized.")
      await unset.app.close()

      const { app, token, account } = await setup([{ id: 30, type: "NOTIFICATION", androidTokens: { phone: "t" } }])
      await activate(app)
      const answer = await callJson({ port, path: `/${token}/notify`, method: "POST", json: { body: "door open" }, localAddress: "127.0.0.7" })
      const events = await readStream(server, outboxStream(account))
      expect(answer.status).toBe(200)
      expect(events.map((e) => ({ type: e.type, actor: e.metadata.actor, remote: e.metadata.remoteAddress }))).toEqual([
        { type: "NotificationRequested", actor: "http", remote: "127.0.0.7" }
      ])
      expect(events[0]!.data).toMatchObject({ kind: "push", dashId: 1, deviceId: 0, body: "door open" })
      await app.close()
    })

    it("POST email: project active, a Mail widget, `to` and `subj` required; `title` is the text", async () => {
      const port = server.plainPort
      const email = (token: string, json: unknown) => callJson({ port, path: `/${token}/email`, method: "POST", json })
      const mail = { to: "someone@example.com", subj: "Hello", title: "The text" }
      const bare = await setup()
      expect400(await email(bare.token, mail), "Project is not active.")
      await activate(bare.app)
      expect400(await email(bare.token, mail), "No email widget.")
      await bare.app.close()

      const { app, token, account } = await setup([{ id: 40, type: "EMAIL" }])
      await activate(app)
      const wrong = "Email body is wrong. Missing or empty fields 'to', 'subj'."
      expect400(await email(token, { subj: "Hello" }), wrong)
      expect400(await email(token, { to: "someone@example.com", subj: "" }), wrong)
      expect400(await email(token, { to: "not an address", subj: "Hello" }), wrong)
      const answer = await email(token, mail)
      const events = await readStream(server, outboxStream(account))
      expect(answer.status).toBe(200)
      expect(events.map((e) => ({ type: e.type, actor: e.metadata.actor }))).toEqual([{ type: "NotificationRequested", actor: "http" }])
      expect(events[0]!.data).toMatchObject({ kind: "email", to: "someone@example.com", subject: "Hello", body: "The text" })
      await app.close()
    })
  })

for (const backend of backends) {
  describe(`on ${backend.name}`, () => {
    beforeAll(async () => {
      server = await startOnFreshStorage({}, backend)
    })
    afterAll(() => server.close())
    routing()
    pins()
    status()
    data()
    notifications()
  })
}
