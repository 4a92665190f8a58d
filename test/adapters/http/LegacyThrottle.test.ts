import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { newToken } from "../../../src/adapters/security/Passwords.ts"
import { readStream } from "../../support/awaitLog.ts"
import { BlynkClient } from "../../support/BlynkClient.ts"
import { createDash, createDevice, newAccount } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"
import { call } from "../../support/httpClient.ts"

let server: RunningServer
let release: () => Promise<void>

beforeAll(async () => {
  const opened = await openStorage()
  release = opened.release
  server = await startBlynkServer(opened.storage, {}, { maxFailures: 3, windowMs: 600_000, blockMs: 600_000 })
})
afterAll(async () => {
  await server.close()
  await release()
})

describe("legacy HTTP API: invalid tokens and the hardware throttle", () => {
  it("invalid tokens count towards the address's hardware throttle; a blocked address is refused even with a valid token, other addresses are not", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const blocked = "127.0.0.9"
    const from = (localAddress: string, path: string, tls = false) =>
      call({ port: tls ? server.tlsPort : server.plainPort, path, localAddress, tls })

    // Before: the valid token works from that address.
    expect((await from(blocked, `/${token}/isHardwareConnected`)).text).toBe("false")
    for (let i = 0; i < 3; i++) {
      const answer = await from(blocked, `/${newToken()}/get/V1`, i === 2)
      expect({ status: answer.status, text: answer.text }).toEqual({ status: 400, text: "Invalid token." })
    }
    const events = await readStream(server, throttleStream("hardware", blocked))
    expect(events.map((e) => e.type)).toEqual(["LoginFailed", "LoginFailed", "LoginFailed", "AddressBlocked"])
    expect(events.every((e) => e.metadata.actor === "http" && e.metadata.remoteAddress === blocked)).toBe(true)

    const refused = await from(blocked, `/${token}/isHardwareConnected`)
    expect({ status: refused.status, text: refused.text }).toEqual({ status: 400, text: "Invalid token." })
    const write = await from(blocked, `/${token}/update/V1?value=1`, true)
    expect({ status: write.status, text: write.text }).toEqual({ status: 400, text: "Invalid token." })
    // The same throttle as hardware logins: a device from that address is refused too.
    const device = await BlynkClient.connect({ port: server.plainPort, framing: "hardware", localAddress: blocked })
    expect(await device.request(Command.HARDWARE_LOGIN, 1, [token])).toBe(Status.INVALID_TOKEN)
    await device.close()

    const other = await from("127.0.0.10", `/${token}/update/V1?value=1`)
    expect(other.status).toBe(200)
    // Refusals while blocked are not looked up, and not counted again.
    expect((await readStream(server, throttleStream("hardware", blocked))).length).toBe(4)
    await app.close()
  })
})
