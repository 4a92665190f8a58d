import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { inflateSync } from "node:zlib"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { accessStream, accountStream } from "../../../src/domain/Streams.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import { Directory } from "../../../src/actors/Directory.ts"
import { BlynkClient, isMessage, type Received } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, loginApp, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

let server: RunningServer
let opened: Awaited<ReturnType<typeof openStorage>>

beforeAll(async () => {
  opened = await openStorage()
  server = await startBlynkServer(opened.storage)
})
afterAll(async () => {
  await server.close()
  await opened.release()
})

/** The zlib JSON body of a LOAD_PROFILE_GZIPPED / GET_PROJECT_BY_CLONE_CODE answer. */
const inflated = (frame: Received) => {
  if (frame._tag !== "Message") throw new Error(`answered status ${frame.status}`)
  return JSON.parse(inflateSync(frame.body).toString())
}

const shareLogin = async (email: string, token: string) => {
  const app = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
  const status = await app.request(Command.SHARE_LOGIN, 1, [email, token, "Android", "2.27.0"])
  return { app, status }
}

/** Owner with an active, shared dashboard 1 (a button on V1 of device 0), its device online. */
const sharedSetup = async () => {
  const owner = await newAccount(server)
  await createDash(owner.app, {
    widgets: [{ id: 7, type: "BUTTON", x: 0, y: 0, width: 2, height: 2, deviceId: 0, pinType: "VIRTUAL", pin: 1 }]
  })
  const deviceToken = await createDevice(owner.app, 1, 0)
  const device = await connectDevice(server, deviceToken)
  expect(await owner.app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
  const got = await owner.app.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])
  expect(got._tag).toBe("Message")
  const shareToken = got.fields[0]!
  expect(shareToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
  return { ...owner, device, deviceToken, shareToken }
}

const eventTypes = (stream: string) =>
  server.run(Effect.gen(function*() {
    const directory = yield* Directory
    for (const actor of yield* directory.all) yield* actor.flushed
    const store = yield* EventStore
    const events = yield* Stream.runCollect(store.readStream(stream))
    return Array.from(events, (e) => e.type)
  }))

describe("sharing (protocol.md §4.2, issue 4 §1)", () => {
  it("a share token opens the dashboard only while sharing is on; the shared app controls pins and sees no tokens", async () => {
    const { app, email, device, shareToken } = await sharedSetup()
    // The same token again, no new grant.
    const again = await app.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])
    expect(again.fields[0]).toBe(shareToken)
    expect(await app.request(Command.GET_SHARE_TOKEN, nextId(), ["x"])).toBe(Status.NOT_ALLOWED)

    const refused = await shareLogin(email, shareToken)
    expect(refused.status).toBe(Status.NOT_ALLOWED)
    expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    expect((await shareLogin("someone-else@example.com", shareToken)).status).toBe(Status.NOT_ALLOWED)
    expect((await shareLogin(email, "y".repeat(32))).status).toBe(Status.NOT_ALLOWED)
    const { app: shared, status } = await shareLogin(email, shareToken)
    expect(status).toBe(Status.OK)

    // It writes a pin: the device gets it, the owner's app gets the APP_SYNC forward.
    const atDevice = device.next(isMessage(Command.HARDWARE))
    const atOwner = app.next(isMessage(Command.APP_SYNC))
    shared.send(Command.HARDWARE, 50, ["1", "vw", "1", "1"])
    expect((await atDevice).fields).toEqual(["vw", "1", "1"])
    expect((await atOwner).fields).toEqual(["1", "vw", "1", "1"])
    // The device writes: the shared app sees it.
    const atShared = shared.next(isMessage(Command.HARDWARE))
    device.send(Command.HARDWARE, 9, ["vw", "2", "42"])
    expect((await atShared).fields).toEqual(["1-0", "vw", "2", "42"])

    // Its views carry no device token and no share token.
    const devices = await shared.ask(Command.GET_DEVICES, 51, ["1"])
    expect(JSON.parse(devices.fields[0]!)).toEqual([expect.objectContaining({ id: 0, status: "ONLINE" })])
    expect(JSON.parse(devices.fields[0]!)[0]).not.toHaveProperty("token")
    const profile = await shared.ask(Command.LOAD_PROFILE_GZIPPED, 52, [])
    const json = inflated(profile)
    expect(json.dashBoards).toHaveLength(1)
    expect(json.dashBoards[0]).not.toHaveProperty("sharedToken")
    expect(json.dashBoards[0].devices[0]).not.toHaveProperty("token")
    expect(json.dashBoards[0].widgets[0].value).toBe("1")
    // The owner's view has them.
    const own = inflated(await app.ask(Command.LOAD_PROFILE_GZIPPED, nextId(), ["1"]))
    expect(own.sharedToken).toBe(shareToken)
    expect(own.devices[0].token).toMatch(/^[A-Za-z0-9_-]{32}$/)

    await shared.close()
    await device.close()
    await app.close()
  })

  it("every layout or account command from a shared app is refused and recorded; its writes reach only its dashboard", async () => {
    const { app, email, device, shareToken } = await sharedSetup()
    await createDash(app, { id: 2, name: "Other" })
    const otherToken = await createDevice(app, 2, 0)
    const other = await connectDevice(server, otherToken)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["2"])).toBe(Status.OK)
    expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    const { app: shared } = await shareLogin(email, shareToken)

    const refused = [
      [Command.CREATE_DASH, [JSON.stringify({ id: 9, name: "mine" })]],
      [Command.DELETE_DASH, ["1"]],
      [Command.CREATE_DEVICE, ["1", JSON.stringify({ id: 5, name: "x", boardType: "ESP32" })]],
      [Command.REFRESH_TOKEN, ["1", "0"]],
      [Command.GET_SHARE_TOKEN, ["1"]],
      [Command.REFRESH_SHARE_TOKEN, ["1"]],
      [Command.SHARING, ["1", "off"]],
      [Command.GET_CLONE_CODE, ["1"]],
      [Command.ACTIVATE_DASHBOARD, ["1"]],
      [Command.UPDATE_PROJECT_SETTINGS, ["1", "{}"]],
      [Command.MOBILE_GET_DEVICE, ["1", "0"]],
      [Command.GET_DEVICES, ["2"]],
      [Command.LOAD_PROFILE_GZIPPED, ["2"]],
      [Command.APP_SYNC, ["2"]]
    ] as const
    for (const [command, fields] of refused) {
      expect(await shared.request(command, 60 + command, fields), `command ${command}`).toBe(Status.NOT_ALLOWED)
    }
    // A write aimed at the other dashboard is refused and reaches no device.
    expect(await shared.request(Command.HARDWARE, 90, ["2", "vw", "1", "5"])).toBe(Status.NOT_ALLOWED)
    // Nothing changed: the owner still has dashboards 1 and 2, device 0 with its token online.
    const profile = inflated(await app.ask(Command.LOAD_PROFILE_GZIPPED, nextId(), []))
    expect(profile.dashBoards.map((d: { id: number }) => d.id)).toEqual([1, 2])
    expect(profile.dashBoards[0].sharedToken).toBe(shareToken)
    expect(await device.request(Command.PING, 3)).toBe(Status.OK)
    // The other dashboard's device got nothing: its next frame is the answer to its own ping.
    expect(await other.request(Command.PING, 4)).toBe(Status.OK)
    expect(other.received.filter(isMessage(Command.HARDWARE))).toEqual([])

    const types = await eventTypes(accessStream(accountStream(email, "Blynk")))
    expect(types.filter((t) => t === "SharedLogin")).toHaveLength(1)
    expect(types.filter((t) => t === "CommandRefused")).toHaveLength(refused.length + 1)
    await Promise.all([shared.close(), device.close(), other.close(), app.close()])
  })

  it("refreshing the share token closes the shared sessions with NOT_ALLOWED; the device carries on; the old token is refused, also after a restart", async () => {
    const { app, email, hash, device, shareToken } = await sharedSetup()
    expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    const first = await shareLogin(email, shareToken)
    const second = await shareLogin(email, shareToken)
    expect([first.status, second.status]).toEqual([Status.OK, Status.OK])

    const refreshId = nextId()
    const answer = await app.ask(Command.REFRESH_SHARE_TOKEN, refreshId, ["1"])
    const fresh = answer.fields[0]!
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(fresh).not.toBe(shareToken)
    for (const { app: shared } of [first, second]) {
      await shared.closed
      expect(shared.received.at(-1)).toMatchObject({ _tag: "Response", id: refreshId, status: Status.NOT_ALLOWED })
    }
    // The device keeps working for the owner.
    const atDevice = device.next(isMessage(Command.HARDWARE))
    app.send(Command.HARDWARE, 77, ["1", "vw", "1", "0"])
    expect((await atDevice).fields).toEqual(["vw", "1", "0"])

    expect((await shareLogin(email, shareToken)).status).toBe(Status.NOT_ALLOWED)
    const withNew = await shareLogin(email, fresh)
    expect(withNew.status).toBe(Status.OK)
    await Promise.all([withNew.app.close(), device.close(), app.close()])

    const types = await eventTypes(accountStream(email, "Blynk"))
    expect(types).toEqual(expect.arrayContaining(["ShareGranted", "SharingSwitched", "ShareRevoked"]))
    const access = await eventTypes(accessStream(accountStream(email, "Blynk")))
    expect(access).toContain("SharedSessionsClosed")

    // A restart: the revocation holds, the new token still opens the dashboard.
    await server.close()
    server = await startBlynkServer(opened.storage)
    expect((await shareLogin(email, shareToken)).status).toBe(Status.NOT_ALLOWED)
    const afterRestart = await shareLogin(email, fresh)
    expect(afterRestart.status).toBe(Status.OK)
    await afterRestart.app.close()
    await (await loginApp(server, email, hash)).close()
  })

  it("SHARING off keeps the shared app but refuses its writes; deleting the dashboard closes it and voids the token", async () => {
    const { app, email, hash, device, shareToken } = await sharedSetup()
    const second = await loginApp(server, email, hash)
    expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    const { app: shared } = await shareLogin(email, shareToken)
    const told = second.next(isMessage(Command.SHARING))
    const sharedTold = shared.next(isMessage(Command.SHARING))
    expect(await app.request(Command.SHARING, nextId(), ["1", "off"])).toBe(Status.OK)
    expect((await told).fields).toEqual(["1", "off"])
    expect((await sharedTold).fields).toEqual(["1", "off"])
    expect(await shared.request(Command.HARDWARE, 20, ["1", "vw", "1", "1"])).toBe(Status.NOT_ALLOWED)
    expect(shared.isClosed).toBe(false)
    expect((await shareLogin(email, shareToken)).status).toBe(Status.NOT_ALLOWED)

    expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    expect(await app.request(Command.DELETE_DASH, nextId(), ["1"])).toBe(Status.OK)
    await shared.closed
    await device.closed
    expect((await shareLogin(email, shareToken)).status).toBe(Status.NOT_ALLOWED)
    await Promise.all([second.close(), app.close()])
  })
})

describe("cloning (protocol.md §4.3, issue 4 §2)", () => {
  it("a clone code gives the layout without values or tokens; with `new` another account gets a copy with fresh device tokens", async () => {
    const { app, device, deviceToken } = await sharedSetup()
    device.send(Command.HARDWARE, 5, ["vw", "1", "1"])
    expect(await device.request(Command.PING, 6)).toBe(Status.OK)
    expect(await app.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)
    const code = (await app.ask(Command.GET_CLONE_CODE, nextId(), ["1"])).fields[0]!
    expect(code).toMatch(/^[A-Za-z0-9_-]{32}$/)

    const layout = inflated(await app.ask(Command.GET_PROJECT_BY_CLONE_CODE, nextId(), [code]))
    expect(layout).toMatchObject({ id: 1, name: "Home", isShared: false, widgets: [{ id: 7, type: "BUTTON", pin: 1 }], devices: [{ id: 0 }] })
    expect(layout).not.toHaveProperty("sharedToken")
    expect(layout.widgets[0]).not.toHaveProperty("value")
    expect(layout.devices[0]).not.toHaveProperty("token")
    expect(JSON.stringify(layout)).not.toContain(deviceToken)

    const other = await newAccount(server)
    await createDash(other.app, { id: 4, name: "Mine" })
    const created = await other.app.ask(Command.GET_PROJECT_BY_CLONE_CODE, nextId(), [code, "new"])
    const copy = inflated(created)
    expect(copy).toMatchObject({ id: 5, name: "Home", isShared: false, isActive: false })
    expect(copy.devices[0].token).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(copy.devices[0].token).not.toBe(deviceToken)
    expect(copy).not.toHaveProperty("sharedToken")
    // The copy's device token works; the original's is untouched.
    const copyDevice = await connectDevice(server, copy.devices[0].token)
    const devices = JSON.parse((await other.app.ask(Command.GET_DEVICES, nextId(), ["5"])).fields[0]!)
    expect(devices).toEqual([expect.objectContaining({ id: 0, status: "ONLINE" })])
    expect(await other.app.request(Command.GET_PROJECT_BY_CLONE_CODE, nextId(), ["z".repeat(32)])).toBe(Status.SERVER_ERROR)
    await Promise.all([copyDevice.close(), device.close(), app.close(), other.app.close()])
  })
})
