import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { type RunningServer, startOnFreshStorage } from "../../support/blynkServer.ts"

let server: RunningServer

beforeAll(async () => {
  server = await startOnFreshStorage()
})
afterAll(() => server.close())

/** An account with an active dashboard and devices 0 (A) and 1 (B), both online. */
const twoDevices = async () => {
  const owner = await newAccount(server)
  await createDash(owner.app)
  const tokenA = await createDevice(owner.app, 1, 0)
  const tokenB = await createDevice(owner.app, 1, 1)
  const a = await connectDevice(server, tokenA)
  const b = await connectDevice(server, tokenB)
  expect(await owner.app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
  return { ...owner, a, b, tokenA, tokenB }
}

describe("BRIDGE (protocol.md §2.4, issue 4 §4)", () => {
  it("init with a token of the account, then a write reaches the target and counts as the target's own", async () => {
    const { app, a, b, tokenB } = await twoDevices()
    const b2 = await connectDevice(server, tokenB)
    expect(await a.request(Command.BRIDGE, 10, ["64", "i", tokenB])).toBe(Status.OK)
    // Re-initialising the same pin is fine.
    expect(await a.request(Command.BRIDGE, 11, ["64", "i", tokenB])).toBe(Status.OK)

    const atB = b.next(isMessage(Command.BRIDGE))
    const atB2 = b2.next(isMessage(Command.BRIDGE))
    const atApp = app.next(isMessage(Command.HARDWARE))
    a.send(Command.BRIDGE, 12, ["64", "vw", "5", "99"])
    expect(await atB).toMatchObject({ id: 12, fields: ["vw", "5", "99"] })
    expect(await atB2).toMatchObject({ id: 12, fields: ["vw", "5", "99"] })
    expect(await atApp).toMatchObject({ id: 12, fields: ["1-1", "vw", "5", "99"] })
    // Stored as B's value: B's sync returns it.
    const synced = b.next(isMessage(Command.HARDWARE))
    b.send(Command.HARDWARE_SYNC, 13, ["vr", "5"])
    expect((await synced).fields).toEqual(["vw", "5", "99"])
    await Promise.all([app.close(), a.close(), b.close(), b2.close()])
  })

  it("refuses what it must: no init, a foreign or malformed token, a bad pin, an offline target, a refreshed token", async () => {
    const { app, a, b, tokenB } = await twoDevices()
    const stranger = await newAccount(server)
    await createDash(stranger.app)
    const foreign = await createDevice(stranger.app, 1, 0)

    expect(await a.request(Command.BRIDGE, 20, ["1", "vw", "1", "1"])).toBe(Status.NOT_ALLOWED)
    expect(await a.request(Command.BRIDGE, 21, ["1", "i", foreign])).toBe(Status.NOT_ALLOWED)
    expect(await a.request(Command.BRIDGE, 22, ["1", "i", "short"])).toBe(Status.NOT_ALLOWED)
    expect(await a.request(Command.BRIDGE, 23, ["1", "i"])).toBe(Status.ILLEGAL_COMMAND)
    expect(await a.request(Command.BRIDGE, 24, ["1", "i", tokenB])).toBe(Status.OK)
    expect(await a.request(Command.BRIDGE, 25, ["1", "vw", "256", "1"])).toBe(Status.ILLEGAL_COMMAND)

    // The target offline: DEVICE_NOT_IN_NETWORK, and the value still stored as B's.
    const offline = app.next(isMessage(Command.DEVICE_OFFLINE))
    await b.close()
    expect((await offline).fields).toEqual(["1-1"])
    expect(await a.request(Command.BRIDGE, 26, ["1", "vw", "7", "on"])).toBe(Status.DEVICE_NOT_IN_NETWORK)
    const b2 = await connectDevice(server, tokenB)
    const synced = b2.next(isMessage(Command.HARDWARE))
    b2.send(Command.HARDWARE_SYNC, 27, ["vr", "7"])
    expect((await synced).fields).toEqual(["vw", "7", "on"])

    // B reprovisioned: the bridge made with the old token opens nothing any more.
    const refreshed = await app.ask(Command.REFRESH_TOKEN, nextId(), ["1", "1"])
    expect(refreshed._tag).toBe("Message")
    await b2.closed
    expect(await a.request(Command.BRIDGE, 28, ["1", "vw", "7", "off"])).toBe(Status.NOT_ALLOWED)
    await Promise.all([app.close(), a.close(), stranger.app.close()])
  })
})
