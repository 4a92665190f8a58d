import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { inflateSync } from "node:zlib"
import { Directory } from "../../../src/actors/Directory.ts"
import type { UserView } from "../../../src/actors/UserActor.ts"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { encodeHardware, message } from "../../../src/adapters/blynk/Frame.ts"
import { accountStream } from "../../../src/domain/Streams.ts"
import * as AccountLog from "../../../src/actors/AccountLog.ts"
import { newToken } from "../../../src/adapters/security/Passwords.ts"
import { BlynkClient, isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, loginApp, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { type RunningServer, startOnFreshStorage } from "../../support/blynkServer.ts"

let server: RunningServer

beforeAll(async () => {
  // Low enough for the flood test to reach, high enough that a test's burst of app commands
  // within one connection's first second stays under it.
  server = await startOnFreshStorage({ messageQuota: 60 })
})
afterAll(() => server.close())

const HW = (...fields: Array<string>) => fields

describe("hardware protocol (protocol.md §3.2, §2.2, §2.3)", () => {
  it("an unknown token answers INVALID_TOKEN and keeps the socket; the right one then logs in; a second login answers 4", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const device = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
    expect(await device.request(Command.HARDWARE_LOGIN, 1, ["x".repeat(32)])).toBe(Status.INVALID_TOKEN)
    expect(await device.request(Command.HARDWARE_LOGIN, 1, ["short"])).toBe(Status.INVALID_TOKEN)
    expect(await device.request(Command.LOGIN, 1, [token])).toBe(Status.OK)
    expect(await device.request(Command.HARDWARE_LOGIN, 2, [token])).toBe(Status.USER_ALREADY_REGISTERED)
    expect(await device.request(Command.PING, 3)).toBe(Status.OK)
    expect(await device.request(Command.BLYNK_INTERNAL, 4, HW("ver", "0.5.4", "h-beat", "10", "buff-in", "1024"))).toBe(Status.OK)
    expect(device.isClosed).toBe(false)
    await device.close()
    await app.close()
  })

  it("a device the CLI created while the account's actor runs can log in at once", async () => {
    const { app, email } = await newAccount(server)
    await createDash(app)
    const token = newToken()
    await server.run(AccountLog.execute(email, "Blynk", () => [
      { _tag: "CreateDevice", dashId: 1, deviceId: 3, name: "from cli", boardType: "ESP32", token }
    ], { actor: "cli", time: new Date().toISOString() }))
    const device = await connectDevice(server, token)
    // The actor caught up: the app's next command sees the device too.
    const devices = await app.ask(Command.GET_DEVICES, nextId(), ["1"])
    expect(JSON.parse(devices.fields[0]!)).toMatchObject([{ id: 3, name: "from cli", status: "ONLINE" }])
    await device.close()
    await app.close()
  })

  it("a frame before login closes the connection", async () => {
    const device = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
    device.send(Command.PING, 1)
    await device.closed
    expect(device.received).toEqual([])
  })

  it("a command code of 100 or more closes only that connection", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const bad = await connectDevice(server, token)
    const good = await connectDevice(server, token)
    bad.sendRaw(Buffer.from([100, 0, 9, 0, 0]))
    await bad.closed
    expect(await good.request(Command.PING, 7)).toBe(Status.OK)
    await good.close()
    await app.close()
  })

  it("forwards device writes to the apps while the dashboard is active, and app writes to every socket of the device", async () => {
    const { app, email, hash } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const device = await connectDevice(server, token)
    const twin = await connectDevice(server, token, true)
    // Inactive: the write is stored, nobody is told.
    device.send(Command.HARDWARE, 5, HW("vw", "1", "before"))
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    const other = await loginApp(server, email, hash)
    const seen = app.next((f) => f.command === Command.HARDWARE)
    const seenByOther = other.next((f) => f.command === Command.HARDWARE)
    device.send(Command.HARDWARE, 6, HW("vw", "1", "42"))
    const forwarded = await seen
    expect(forwarded.id).toBe(6)
    expect(forwarded.fields).toEqual(["1-0", "vw", "1", "42"])
    expect((await seenByOther).fields).toEqual(["1-0", "vw", "1", "42"])
    // Only as the activation's app sync (id 1111), never as a forward.
    expect(app.received.filter((f) => f.command === Command.HARDWARE && f.fields.includes("before"))).toEqual([])

    const toDevice = device.next(isMessage(Command.HARDWARE))
    const toTwin = twin.next(isMessage(Command.HARDWARE))
    const synced = other.next(isMessage(Command.APP_SYNC))
    app.send(Command.HARDWARE, 9, HW("1-0", "dw", "13", "1"))
    expect((await toDevice).fields).toEqual(["dw", "13", "1"])
    expect((await toTwin).id).toBe(9)
    expect((await synced).fields).toEqual(["1-0", "dw", "13", "1"])
    for (const c of [device, twin, app, other]) await c.close()
  })

  it("tells apps when a device connects and goes offline; an app write to an offline device answers 7", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.DEVICE_NOT_IN_NETWORK)
    const connected = app.next(isMessage(Command.HARDWARE_CONNECTED))
    const device = await connectDevice(server, token)
    expect((await connected).fields).toEqual(["1-0"])
    const offline = app.next(isMessage(Command.DEVICE_OFFLINE))
    await device.close()
    expect(await offline).toMatchObject({ id: 0, fields: ["1-0"] })
    expect(await app.request(Command.HARDWARE, 77, HW("1-0", "vw", "3", "x"))).toBe(Status.DEVICE_NOT_IN_NETWORK)
    await app.close()
  })

  it("HARDWARE_SYNC returns stored values, all or the pins asked for; bad writes answer ILLEGAL_COMMAND", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const device = await connectDevice(server, token)
    device.send(Command.HARDWARE, 2, HW("vw", "1", "a", "b"))
    device.send(Command.HARDWARE, 3, HW("aw", "4", "512"))
    expect(await device.request(Command.HARDWARE, 4, HW("vw", "256", "1"))).toBe(Status.ILLEGAL_COMMAND)
    expect(await device.request(Command.HARDWARE, 5, HW("xw", "1", "1"))).toBe(Status.ILLEGAL_COMMAND)
    const one = device.next(isMessage(Command.HARDWARE))
    device.send(Command.HARDWARE_SYNC, 6, HW("vr", "1"))
    expect(await one).toMatchObject({ id: 6, fields: ["vw", "1", "a", "b"] })
    const from = device.received.length
    device.send(Command.HARDWARE_SYNC, 7)
    await device.next((f) => f.id === 7 && f.fields[0] === "aw", from)
    await device.next((f) => f.id === 7 && f.fields[0] === "vw", from)
    await device.close()
    await app.close()
  })

  it("keeps frames larger than the device's buff-in from it", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const device = await connectDevice(server, token)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    app.send(Command.HARDWARE, 10, HW("1-0", "vw", "1", "x".repeat(300)))
    app.send(Command.HARDWARE, 11, HW("1-0", "vw", "1", "small"))
    const got = await device.next(isMessage(Command.HARDWARE))
    expect(got.id).toBe(11)
    expect(await device.request(Command.BLYNK_INTERNAL, 12, HW("ver", "1", "buff-in", "1024"))).toBe(Status.OK)
    app.send(Command.HARDWARE, 13, HW("1-0", "vw", "1", "y".repeat(300)))
    expect((await device.next(isMessage(Command.HARDWARE), device.received.length)).id).toBe(13)
    await device.close()
    await app.close()
  })

  it("meters each connection: past the quota frames are dropped, one QUOTA_LIMIT is sent, the socket stays open", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const device = await connectDevice(server, token)
    const limited = device.next((f) => f._tag === "Response" && f.status === Status.QUOTA_LIMIT)
    // 60/s quota: ping at ~1,000/s until the meter's first completed second is over the limit.
    let id = 100
    const timer = setInterval(() => {
      for (let i = 0; i < 5; i++) device.send(Command.PING, ++id)
    }, 5)
    const quota = await limited.finally(() => clearInterval(timer))
    expect(quota.id).toBeGreaterThan(100)
    expect(device.isClosed).toBe(false)
    const quotaFrames = device.received.filter((f) => f._tag === "Response" && f.status === Status.QUOTA_LIMIT)
    expect(quotaFrames).toHaveLength(1)
    await device.close()
    await app.close()
  })
})

describe("app protocol (protocol.md §2.1, §3.3, §3.6)", () => {
  it("refuses a wrong password (5) and an unknown account (3) and keeps the socket", async () => {
    const { app, email } = await newAccount(server)
    const other = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
    expect(await other.request(Command.LOGIN, 1, [email, "wrong", "Android", "2.27.0"])).toBe(Status.USER_NOT_AUTHENTICATED)
    expect(await other.request(Command.LOGIN, 2, ["nobody@example.com", "x"])).toBe(Status.USER_NOT_REGISTERED)
    expect(await other.request(Command.REGISTER, 3, [email, "x", "Blynk"])).toBe(Status.USER_ALREADY_REGISTERED)
    expect(other.isClosed).toBe(false)
    await other.close()
    await app.close()
  })

  it("a command before login closes the connection", async () => {
    const app = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
    app.send(Command.GET_DEVICES, 1, ["1"])
    await app.closed
  })

  it("manages dashboards, devices, widgets and tags, and gives the profile back zlib-compressed", async () => {
    const { app } = await newAccount(server)
    await createDash(app, { name: "Garden", theme: "Blynk", widgets: [{ id: 7, type: "BUTTON", pinType: "DIGITAL", pin: 5, x: 0, y: 0 }] })
    expect(await app.request(Command.CREATE_DASH, nextId(), [JSON.stringify({ id: 1, name: "again" })])).toBe(Status.NOT_ALLOWED)
    const token = await createDevice(app, 1, 0, "pump")
    expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/)
    await createDevice(app, 1, 1, "valve")
    expect(await app.request(Command.UPDATE_DEVICE, nextId(), ["1", JSON.stringify({ id: 1, name: "valve 2" })])).toBe(Status.OK)
    expect(await app.request(Command.UPDATE_DEVICE, nextId(), ["1", JSON.stringify({ id: 9, name: "x" })])).toBe(Status.ILLEGAL_COMMAND_BODY)
    const gauge = { id: 8, type: "GAUGE", pinType: "VIRTUAL", pin: 3, width: 2, height: 1 }
    expect(await app.request(Command.CREATE_WIDGET, nextId(), ["1", JSON.stringify(gauge)])).toBe(Status.OK)
    expect(await app.request(Command.CREATE_WIDGET, nextId(), ["1", JSON.stringify(gauge)])).toBe(Status.NOT_ALLOWED)
    expect(await app.request(Command.CREATE_WIDGET, nextId(), ["1", JSON.stringify({ ...gauge, id: 9, width: 0 })])).toBe(Status.NOT_ALLOWED)
    expect(await app.request(Command.UPDATE_WIDGET, nextId(), ["1", JSON.stringify({ ...gauge, label: "speed" })])).toBe(Status.OK)
    expect(await app.request(Command.UPDATE_WIDGET, nextId(), ["1", JSON.stringify({ ...gauge, type: "LED" })])).toBe(Status.ILLEGAL_COMMAND)
    expect(await app.request(Command.CREATE_WIDGET, nextId(), ["1", "{not json"])).toBe(Status.ILLEGAL_COMMAND_BODY)
    expect(await app.request(Command.CREATE_TAG, nextId(), ["1", JSON.stringify({ id: 100000, name: "all", deviceIds: [0, 1] })])).toBe(Status.OK)
    const tags = await app.ask(Command.GET_TAGS, nextId(), ["1"])
    expect(JSON.parse(tags.fields[0]!)).toEqual([{ id: 100000, name: "all", deviceIds: [0, 1] }])
    const widget = await app.ask(Command.GET_WIDGET, nextId(), ["1", "8"])
    expect(JSON.parse(widget.fields[0]!)).toMatchObject({ id: 8, label: "speed" })
    const devices = await app.ask(Command.GET_DEVICES, nextId(), ["1"])
    expect(JSON.parse(devices.fields[0]!).map((d: { name: string }) => d.name)).toEqual(["pump", "valve 2"])
    const one = await app.ask(Command.MOBILE_GET_DEVICE, nextId(), ["1", "0"])
    expect(JSON.parse(one.fields[0]!)).toMatchObject({ id: 0, name: "pump", token, status: "OFFLINE" })
    expect(await app.request(Command.UPDATE_PROJECT_SETTINGS, nextId(), ["1", JSON.stringify({ name: "Yard", keepScreenOn: true })])).toBe(Status.OK)
    const energy = await app.ask(Command.GET_ENERGY, nextId(), [])
    expect(Number(energy.fields[0])).toBeGreaterThan(100_000)

    const profile = await app.ask(Command.LOAD_PROFILE_GZIPPED, nextId(), [])
    const json = JSON.parse(inflateSync(profile._tag === "Message" ? profile.body : new Uint8Array()).toString("utf8"))
    expect(json.dashBoards).toHaveLength(1)
    expect(json.dashBoards[0]).toMatchObject({ id: 1, name: "Yard", theme: "Blynk", keepScreenOn: true })
    expect(json.dashBoards[0].widgets.map((w: { id: number }) => w.id)).toEqual([7, 8])
    expect(json.dashBoards[0].devices.map((d: { token: string }) => d.token)).toContain(token)

    expect(await app.request(Command.DELETE_WIDGET, nextId(), ["1", "8"])).toBe(Status.OK)
    expect(await app.request(Command.DELETE_WIDGET, nextId(), ["1", "8"])).toBe(Status.ILLEGAL_COMMAND)
    expect(await app.request(Command.DELETE_TAG, nextId(), ["1", "100000"])).toBe(Status.OK)
    expect(await app.request(Command.DELETE_DASH, nextId(), ["1"])).toBe(Status.OK)
    expect(await app.request(Command.DELETE_DASH, nextId(), ["1"])).toBe(Status.ILLEGAL_COMMAND)
    await app.close()
  })

  it("deleting a device closes its sockets and its token is refused from then on", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const device = await connectDevice(server, token)
    expect(await app.request(Command.DELETE_DEVICE, nextId(), ["1", "0"])).toBe(Status.OK)
    await device.closed
    const again = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
    expect(await again.request(Command.HARDWARE_LOGIN, 1, [token])).toBe(Status.INVALID_TOKEN)
    await again.close()
    await app.close()
  })

  it("a device deleted and made again starts without the old values, also after the actor restarts", async () => {
    const { app, email } = await newAccount(server)
    await createDash(app)
    const first = await connectDevice(server, await createDevice(app, 1, 0))
    for (let pin = 0; pin < 5; pin++) first.send(Command.HARDWARE, 10 + pin, ["vw", String(pin), "old"])
    expect(await app.request(Command.DELETE_DEVICE, nextId(), ["1", "0"])).toBe(Status.OK)
    await first.closed
    const again = await connectDevice(server, await createDevice(app, 1, 0))
    again.send(Command.HARDWARE, 29, ["vw", "99", "sentinel"])
    // Answers come in the order the pins are listed, so once V99's is in, any for V0-V4 would be too.
    const empty = async () => {
      const from = again.received.length
      again.send(Command.HARDWARE_SYNC, 30, ["vr", "0", "1", "2", "3", "4", "99"])
      await again.next((f) => f.id === 30 && f.fields[1] === "99", from)
      return again.received.slice(from).filter((f) => f.command === Command.HARDWARE && f.fields[1] !== "99")
    }
    expect(await empty()).toEqual([])
    await server.run(Effect.gen(function*() {
      const actor = yield* (yield* Directory).actor(accountStream(email, "Blynk"))
      yield* actor.ref.kill
    }))
    expect(await empty()).toEqual([])
    await again.close()
    await app.close()
  })

  it("REFRESH_TOKEN answers the new token, closes the device's sockets (apps hear DEVICE_OFFLINE) and refuses the old token", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const old = await createDevice(app, 1, 0)
    const device = await connectDevice(server, old)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    const offline = app.next(isMessage(Command.DEVICE_OFFLINE))
    const answer = await app.ask(Command.REFRESH_TOKEN, 60, ["1", "0"])
    const renewed = answer.fields[0]!
    expect(renewed).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(renewed).not.toBe(old)
    await device.closed
    expect((await offline).fields).toEqual(["1-0"])
    const stale = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
    expect(await stale.request(Command.HARDWARE_LOGIN, 1, [old])).toBe(Status.INVALID_TOKEN)
    expect(await stale.request(Command.HARDWARE_LOGIN, 1, [renewed])).toBe(Status.OK)
    expect(await app.request(Command.REFRESH_TOKEN, 61, ["1", "9"])).toBe(Status.ILLEGAL_COMMAND_BODY)
    const devices = await app.ask(Command.GET_DEVICES, nextId(), ["1"])
    expect(JSON.parse(devices.fields[0]!)[0].token).toBe(renewed)
    await stale.close()
    await app.close()
  })

  it("ACTIVATE sends pm to the device, ACTIVATE to the other apps, and the stored values to every app (id 1111)", async () => {
    const { app, email, hash } = await newAccount(server)
    await createDash(app, { widgets: [{ id: 1, type: "BUTTON", pinType: "DIGITAL", pin: 13 }, { id: 2, type: "LED", pinType: "DIGITAL", pin: 2 }] })
    const token = await createDevice(app, 1, 0)
    const device = await connectDevice(server, token)
    device.send(Command.HARDWARE, 2, HW("vw", "5", "hello"))
    expect(await device.request(Command.PING, 3)).toBe(Status.OK)
    const other = await loginApp(server, email, hash)
    const pm = device.next((f) => f.command === Command.HARDWARE && f.fields[0] === "pm")
    const forwarded = other.next(isMessage(Command.ACTIVATE_DASHBOARD))
    const sync = app.next((f) => f.command === Command.APP_SYNC && f.id === 1111)
    const otherSync = other.next((f) => f.command === Command.APP_SYNC && f.id === 1111)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, 50, ["1"])).toBe(Status.OK)
    expect((await pm)).toMatchObject({ id: 1, fields: ["pm", "13", "out", "2", "in"] })
    expect((await forwarded).fields).toEqual(["1"])
    expect((await sync).fields).toEqual(["1-0", "vw", "5", "hello"])
    expect((await otherSync).fields).toEqual(["1-0", "vw", "5", "hello"])
    const deactivated = other.next(isMessage(Command.DEACTIVATE_DASHBOARD))
    expect(await app.request(Command.DEACTIVATE_DASHBOARD, 51, ["1"])).toBe(Status.OK)
    expect((await deactivated).fields).toEqual(["1"])
    const appSync = app.next((f) => f.command === Command.APP_SYNC && f.id === 1111, app.received.length)
    expect(await app.request(Command.APP_SYNC, 52, ["1"])).toBe(Status.OK)
    expect((await appSync).fields).toEqual(["1-0", "vw", "5", "hello"])
    for (const c of [device, app, other]) await c.close()
  })

  it("app writes to a tag reach all its devices; to a device selector, the device it shows (vu)", async () => {
    const { app } = await newAccount(server)
    await createDash(app, { widgets: [{ id: 200000, type: "DEVICE_SELECTOR" }] })
    const zero = await connectDevice(server, await createDevice(app, 1, 0))
    const one = await connectDevice(server, await createDevice(app, 1, 1))
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    expect(await app.request(Command.CREATE_TAG, nextId(), ["1", JSON.stringify({ id: 100000, name: "both", deviceIds: [0, 1] })])).toBe(Status.OK)
    const a = zero.next(isMessage(Command.HARDWARE))
    const b = one.next(isMessage(Command.HARDWARE))
    app.send(Command.HARDWARE, 20, ["1-100000", "vw", "1", "tagged"])
    expect((await a).fields).toEqual(["vw", "1", "tagged"])
    expect((await b).fields).toEqual(["vw", "1", "tagged"])
    app.send(Command.HARDWARE, 21, ["1", "vu", "200000", "1"])
    const selected = one.next((f) => f.command === Command.HARDWARE && f.id === 22)
    app.send(Command.HARDWARE, 22, ["1-200000", "vw", "2", "chosen"])
    expect((await selected).fields).toEqual(["vw", "2", "chosen"])
    // Device 0 got nothing from it: its next frame is the answer to its own ping.
    expect(await zero.request(Command.PING, 23)).toBe(Status.OK)
    expect(zero.received.filter((f) => f.id === 22)).toEqual([])
    expect(await app.request(Command.HARDWARE, 24, ["1", "vu", "200000", "9"])).toBe(Status.ILLEGAL_COMMAND)
    for (const c of [zero, one, app]) await c.close()
  })

  it("devices of an active project with isAppConnectedOn hear acon and adis (id 7777)", async () => {
    const { app, email, hash } = await newAccount(server)
    await createDash(app, { isAppConnectedOn: true })
    const device = await connectDevice(server, await createDevice(app, 1, 0))
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    const acon = device.next((f) => f.command === Command.BLYNK_INTERNAL && f.fields[0] === "acon")
    const other = await loginApp(server, email, hash)
    expect((await acon).id).toBe(7777)
    const adis = device.next((f) => f.command === Command.BLYNK_INTERNAL && f.fields[0] === "adis")
    await other.close()
    expect((await adis).id).toBe(7777)
    await device.close()
    await app.close()
  })

  it("LOGOUT answers OK and closes", async () => {
    const { app } = await newAccount(server)
    expect(await app.request(Command.LOGOUT, 5)).toBe(Status.OK)
    await app.closed
  })
})

describe("supervision", () => {
  it("a killed user actor comes back with its state; other accounts' devices carry on meanwhile", async () => {
    const first = await newAccount(server)
    await createDash(first.app)
    const token = await createDevice(first.app, 1, 0)
    const second = await newAccount(server)
    await createDash(second.app)
    const otherToken = await createDevice(second.app, 1, 0)
    const device = await connectDevice(server, token)
    const bystander = await connectDevice(server, otherToken)
    expect(await first.app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    device.send(Command.HARDWARE, 2, HW("vw", "1", "kept"))
    expect(await device.request(Command.PING, 3)).toBe(Status.OK)

    const restarts = await server.run(Effect.gen(function*() {
      const actor = yield* (yield* Directory).actor(accountStream(first.email, "Blynk"))
      yield* actor.ref.kill
      // Answered by the new worker, so the restart has been counted.
      yield* actor.ref.ask<UserView, never>((reply) => ({ _tag: "Read", reply }))
      return yield* actor.ref.restarts
    }))
    expect(restarts).toBe(1)
    expect(await bystander.request(Command.PING, 4)).toBe(Status.OK)
    // Rebuilt from the log: the dashboard is still active, the value still there, sessions still known.
    const forwarded = first.app.next((f) => f.command === Command.HARDWARE && f.fields[3] === "after")
    device.send(Command.HARDWARE, 5, HW("vw", "1", "after"))
    expect((await forwarded).fields).toEqual(["1-0", "vw", "1", "after"])
    const synced = device.next((f) => f.command === Command.HARDWARE && f.id === 6)
    device.send(Command.HARDWARE_SYNC, 6, HW("vr", "1"))
    expect((await synced).fields).toEqual(["vw", "1", "after"])
    for (const c of [device, bystander, first.app, second.app]) await c.close()
  })

  it("a frame encoded by the codec goes through unchanged (worked example of protocol.md §1.5)", () => {
    expect(Buffer.from(encodeHardware(message(20, 2, new TextEncoder().encode("vw\u00001\u0000100"))) as Buffer).toString("hex"))
      .toBe("140002000876770031003130 30".replace(" ", ""))
  })
})
