/**
 * npm `blynk-library` 0.5.4 (the JavaScript device library) against a real server process.
 *
 * What the client does on the wire (node_modules/blynk-library/blynk.js, blynk-node.js):
 * - Connectors: `TcpClient({ addr, port })` (plain, family 4, setNoDelay) and
 *   `SslClient({ addr, port, ca, servername })`; SslClient connects with rejectUnauthorized:false
 *   but then silently stops unless `sock.authorized`, i.e. it does verify the chain against `ca`
 *   (a Buffer, or a list of file paths; default: its bundled blynk-cloud certificate) and the
 *   name (`servername`, default `addr`). Here: addr `localhost`, the server's cert.pem as CA.
 * - Login: HARDWARE_LOGIN (29), id 1, body = the 32-character token, right after the socket
 *   (or the TLS handshake) is up: bytes `1D 00 01 00 20` + token, what the TLS port sniffs for.
 * - It accepts RSP id 1 status 200 or 4 (ALREADY_REGISTERED) as logged in; on 9 it stops for good.
 *   Then it starts pinging (PING 6, empty body) every `heartbeat` ms (10 000 by default), sends
 *   BLYNK_INTERNAL (17) `ver\00.5.4\0buff-in\04096\0dev\0js` (no h-beat) and emits 'connect'.
 *   It ignores every other RSP. Ids count up from 1 per connection (login 1, INTERNAL 2, …).
 * - virtualWrite(pin, v) sends HARDWARE (20) `vw\0pin\0v`; syncVirtual(pin) HARDWARE_SYNC (16)
 *   `vr\0pin`; syncAll() HARDWARE_SYNC with an empty body.
 * - Incoming HARDWARE/BRIDGE `vw pin values…` emits 'write'(values) on `new blynk.VirtualPin(pin)`.
 *   Any frame with msg id 0 makes it disconnect; a body over 4096 bytes too. It reads the socket
 *   as 'binary' (latin1) strings, so the tests use ASCII values.
 * - On 'end' it reconnects after 5 s (and every 10 s until a login succeeds).
 */
import { describe, expect, it } from "vitest"
import type { TLSSocket } from "node:tls"
import { Command } from "../../src/adapters/blynk/Command.ts"
import { bodyFields } from "../../src/adapters/blynk/Frame.ts"
import { AppClient } from "./support/appClient.ts"
import { connectDevice, type Device } from "./support/blynkLibrary.ts"
import type { ProvisionedDevice } from "./support/server.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "library@e2e.test", password: "library-secret" }

const { server, devices, opened, activeApp } = e2eSuite({
  provision: ({ provision }) => provision(account, { tcp: "library-tcp", tls: "library-tls", presence: "library-presence" })
})

/** The device writes V4 and the app gets it; the app writes V5 and the device gets it. */
const roundTrip = async (device: Device, provisioned: ProvisionedDevice, app: AppClient, tag: string) => {
  const { dashId, deviceId } = provisioned
  device.blynk.virtualWrite(4, `from-${tag}-device`)
  const forwarded = await app.nextHardware()
  expect(forwarded.fields).toEqual([`${dashId}-${deviceId}`, "vw", "4", `from-${tag}-device`])
  expect(forwarded.id).not.toBe(0)

  const received = device.nextWrite(5)
  app.virtualWrite(dashId, deviceId, 5, `from-${tag}-app`)
  expect(await received).toEqual([`from-${tag}-app`])

  // Several values in one write travel as separate fields both ways.
  device.blynk.virtualWrite(6, ["1", "2", "3"])
  expect((await app.nextHardware()).fields).toEqual([`${dashId}-${deviceId}`, "vw", "6", "1", "2", "3"])
}

describe("blynk-library (npm, device)", () => {
  it("logs in over plain TCP, its write reaches the app and the app's write reaches it", async () => {
    const srv = server()
    const { tcp } = devices()
    const device = opened.device(await connectDevice(tcp.token, { kind: "tcp", port: srv.httpPort }))
    const app = await activeApp(account, tcp.dashId)
    await roundTrip(device, tcp, app, "tcp")
  })

  it("logs in over TLS, verifying the server's certificate, and exchanges writes with the app", async () => {
    const srv = server()
    const { tls } = devices()
    const device = opened.device(await connectDevice(tls.token, { kind: "tls", port: srv.httpsPort, ca: srv.ca }))
    // The library only goes on to log in once the chain and the name `localhost` checked out.
    expect((device.blynk.conn.sock as TLSSocket | null)?.authorized).toBe(true)
    const app = await activeApp(account, tls.dashId)
    await roundTrip(device, tls, app, "tls")
  })

  it("is announced to a logged-in app: HARDWARE_CONNECTED (4) on login, DEVICE_OFFLINE (71, id 0) on leaving", async () => {
    const srv = server()
    const { presence } = devices()
    const { dashId, deviceId } = presence
    const app = opened.app(await AppClient.connect(srv.httpsPort, srv.ca))
    expect(await app.login(account.email, account.password)).toBe(200)
    // 7 when no device of the dashboard is online (§3.6); 200 if an earlier test's device has not
    // been seen to leave yet.
    expect([200, 7]).toContain(await app.activate(dashId))

    const device = opened.device(await connectDevice(presence.token, { kind: "tcp", port: srv.httpPort }))
    const connected = await app.waitFor((f) => f._tag === "Message" && f.command === Command.HARDWARE_CONNECTED)
    expect(connected._tag === "Message" && bodyFields(connected.body)).toEqual([`${dashId}-${deviceId}`])
    // Its id is the device's login id (§2.1, 4), which blynk-library always sends as 1.
    expect(connected.id).toBe(1)

    device.close()
    // Matched on the body too: an earlier test's device may be seen leaving only now.
    const offline = await app.waitFor((f) =>
      f._tag === "Message" && f.command === Command.DEVICE_OFFLINE && bodyFields(f.body)[0] === `${dashId}-${deviceId}`
    )
    expect(offline.id).toBe(0)
  })

  it("is refused with INVALID_TOKEN (9) for a token the server does not know", async () => {
    const srv = server()
    // The library reports the status as an 'error' event named after it and stops for good.
    const attempt = connectDevice("x".repeat(32), { kind: "tcp", port: srv.httpPort })
    await expect(attempt).rejects.toThrow(/INVALID_TOKEN/)
  })
})
