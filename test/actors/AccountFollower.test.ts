import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as AccountLog from "../../src/actors/AccountLog.ts"
import { Command, Status } from "../../src/adapters/blynk/Command.ts"
import { newToken } from "../../src/adapters/security/Passwords.ts"
import { BlynkClient, isMessage } from "../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../support/blynkFixtures.ts"
import { type RunningServer, startOnFreshStorage } from "../support/blynkServer.ts"

let server: RunningServer

beforeAll(async () => {
  // No idle timeout: only the follower can close the devices here.
  server = await startOnFreshStorage({ hardwareIdleSeconds: 0 })
})
afterAll(() => server.close())

/** What the CLI does from its own process: decide on the stream as read, append, no actor involved. */
const fromCli = (email: string, command: Parameters<typeof AccountLog.execute>[2]) =>
  server.run(AccountLog.execute(email, "Blynk", command, { actor: "cli", time: new Date().toISOString() }))

describe("account follower (issue 4 §3: reprovisioning from the command line)", () => {
  it("a device reprovisioned or deleted by another writer is closed at once; the apps get DEVICE_OFFLINE; the old token is refused", async () => {
    const { app, email } = await newAccount(server)
    await createDash(app)
    const token0 = await createDevice(app, 1, 0)
    const token1 = await createDevice(app, 1, 1)
    const device0 = await connectDevice(server, token0)
    const device1 = await connectDevice(server, token1)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)

    const fresh = newToken()
    const offline = app.next(isMessage(Command.DEVICE_OFFLINE))
    await fromCli(email, () => [{ _tag: "RefreshToken", dashId: 1, deviceId: 0, token: fresh }])
    await device0.closed
    expect((await offline).fields).toEqual(["1-0"])
    const old = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
    expect(await old.request(Command.HARDWARE_LOGIN, 1, [token0])).toBe(Status.INVALID_TOKEN)
    const again = await connectDevice(server, fresh)

    const gone = app.next(isMessage(Command.DEVICE_OFFLINE))
    await fromCli(email, () => [{ _tag: "DeleteDevice", dashId: 1, deviceId: 1 }])
    await device1.closed
    expect((await gone).fields).toEqual(["1-1"])
    // The actor knows: the app's view has device 0 only, online with its new token.
    const devices = JSON.parse((await app.ask(Command.GET_DEVICES, nextId(), ["1"])).fields[0]!)
    expect(devices).toEqual([expect.objectContaining({ id: 0, token: fresh, status: "ONLINE" })])
    await Promise.all([old.close(), again.close(), app.close()])
  })
})
