/**
 * Reprovisioning a device's token from the app (protocol.md §3.4) end to end: a real server
 * process, an npm `blynk-library` device and the owner's raw TLS app client.
 *
 * REFRESH_TOKEN (9) `dashId\0deviceId` answers a REFRESH_TOKEN frame with the new 32-character
 * token and closes the device's sockets at once. What blynk-library 0.5.4 then does
 * (node_modules/blynk-library/blynk.js): on the socket's 'end' it emits 'disconnect' and 5 s later
 * connects again with the token it was made with; an INVALID_TOKEN (9) answer to that login makes
 * it emit 'error' "INVALID_TOKEN", emit 'disconnect' and clear its reconnect timer: it stops.
 *
 * `npx pinledger device reprovision` while the server runs is in cliReprovision.test.ts.
 */
import { describe, expect, it } from "vitest"
import { Command } from "../../src/adapters/blynk/Command.ts"
import { bodyFields } from "../../src/adapters/blynk/Frame.ts"
import { connectDevice, nextEvent } from "./support/blynkLibrary.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "reprovision@e2e.test", password: "reprovision-secret" }

const { server, devices, opened, activeApp } = e2eSuite({
  provision: ({ provision }) => provision(account, { provisioned: "reprovisioned" })
})

describe("REFRESH_TOKEN from the app (npm blynk-library device)", () => {
  it("disconnects the device on the old token, which is then refused and stops; a device on the new token works; the app hears DEVICE_OFFLINE", async () => {
    const srv = server()
    const { dashId, deviceId, token: oldToken } = devices().provisioned
    const target = `${dashId}-${deviceId}`

    const old = opened.device(await connectDevice(oldToken, { kind: "tcp", port: srv.httpPort }))
    const owner = await activeApp(account, dashId, "owner")

    // Set up before the refresh: the close comes right after it.
    const disconnected = nextEvent(old, "disconnect", ["error"])
    const id = owner.send(Command.REFRESH_TOKEN, [String(dashId), String(deviceId)])
    const answer = await owner.waitFor((f) => f.id === id && (f._tag === "Response" || f.command === Command.REFRESH_TOKEN))
    expect(answer._tag).toBe("Message")
    const newToken = answer._tag === "Message" ? bodyFields(answer.body)[0]! : ""
    expect(newToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(newToken).not.toBe(oldToken)

    await disconnected
    const offline = await owner.waitFor((f) => f._tag === "Message" && f.command === Command.DEVICE_OFFLINE)
    expect(offline._tag === "Message" && bodyFields(offline.body)).toEqual([target])
    expect(offline.id).toBe(0)

    // The library comes back by itself with the old token; the server refuses it and it stops.
    const [reason] = await nextEvent(old, "error", ["connect"])
    expect(reason).toBe("INVALID_TOKEN")
    expect(old.blynk.timerConn ?? null).toBeNull()
    expect(old.events.filter((e) => e === "connect")).toEqual(["connect"])

    // A new device on the new token logs in and exchanges writes with the owner.
    const fresh = opened.device(await connectDevice(newToken, { kind: "tcp", port: srv.httpPort }))
    const connected = await owner.waitFor((f) => f._tag === "Message" && f.command === Command.HARDWARE_CONNECTED)
    expect(connected._tag === "Message" && bodyFields(connected.body)).toEqual([target])
    const received = fresh.nextWrite(5)
    owner.virtualWrite(dashId, deviceId, 5, "to-new-token")
    expect(await received).toEqual(["to-new-token"])
    fresh.blynk.virtualWrite(6, "from-new-token")
    const forwarded = await owner.nextHardware()
    expect(forwarded.fields).toEqual([target, "vw", "6", "from-new-token"])
  })
})
