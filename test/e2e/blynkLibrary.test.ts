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
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest"
import type { TLSSocket } from "node:tls"
import { Command } from "../../src/adapters/blynk/Command.ts"
import { bodyFields } from "../../src/adapters/blynk/Frame.ts"
import { AppClient } from "./support/appClient.ts"
import { connectDevice, type Device } from "./support/blynkLibrary.ts"
import {
  makeDataDir,
  outputTail,
  provision,
  provisioningTimeout,
  type ProvisionedDevice,
  removeDataDir,
  type ServerProcess,
  startServer,
  stopQuietly
} from "./support/server.ts"

const account = { email: "library@e2e.test", password: "library-secret" }

let dataDir = ""
let server: ServerProcess | undefined
let tcpDevice: ProvisionedDevice
let tlsDevice: ProvisionedDevice
let presenceDevice: ProvisionedDevice

/** What the running test opened: closed after it, and shown if it failed (after afterEach). */
let devices: Array<Device> = []
let apps: Array<AppClient> = []

beforeAll(async () => {
  dataDir = await makeDataDir()
  ;[tcpDevice, tlsDevice, presenceDevice] = (await provision(dataDir, account, ["library-tcp", "library-tls", "library-presence"])) as [
    ProvisionedDevice,
    ProvisionedDevice,
    ProvisionedDevice
  ]
  server = await startServer({ dataDir })
}, provisioningTimeout)

afterEach(async () => {
  for (const device of devices) device.close()
  await Promise.all(apps.map((app) => app.close()))
})

afterAll(async () => {
  await stopQuietly(server)
  if (dataDir !== "") await removeDataDir(dataDir)
})

/** Starts a test's lists of clients, and prints what they saw if it fails. */
const report = () => {
  const mine = { devices: new Array<Device>(), apps: new Array<AppClient>() }
  devices = mine.devices
  apps = mine.apps
  onTestFailed(() => {
    for (const device of mine.devices) console.error(`device events: ${device.events.join(", ")}`)
    for (const app of mine.apps) console.error(`app frames:\n${app.describe()}`)
    console.error(`server output:\n${outputTail(server)}`)
  })
}

/** An app session of the account, logged in with the dashboard active (the device is online). */
const activeApp = async (server: ServerProcess, dashId: number) => {
  const app = await AppClient.connect(server.httpsPort, server.ca)
  apps.push(app)
  expect(await app.login(account.email, account.password)).toBe(200)
  expect(await app.activate(dashId)).toBe(200)
  return app
}

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
    report()
    const srv = server!
    const device = await connectDevice(tcpDevice.token, { kind: "tcp", port: srv.httpPort })
    devices.push(device)
    const app = await activeApp(srv, tcpDevice.dashId)
    await roundTrip(device, tcpDevice, app, "tcp")
  })

  it("logs in over TLS, verifying the server's certificate, and exchanges writes with the app", async () => {
    report()
    const srv = server!
    const device = await connectDevice(tlsDevice.token, { kind: "tls", port: srv.httpsPort, ca: srv.ca })
    devices.push(device)
    // The library only goes on to log in once the chain and the name `localhost` checked out.
    expect((device.blynk.conn.sock as TLSSocket | null)?.authorized).toBe(true)
    const app = await activeApp(srv, tlsDevice.dashId)
    await roundTrip(device, tlsDevice, app, "tls")
  })

  it("is announced to a logged-in app: HARDWARE_CONNECTED (4) on login, DEVICE_OFFLINE (71, id 0) on leaving", async () => {
    report()
    const srv = server!
    const { dashId, deviceId } = presenceDevice
    const app = await AppClient.connect(srv.httpsPort, srv.ca)
    apps.push(app)
    expect(await app.login(account.email, account.password)).toBe(200)
    // 7 when no device of the dashboard is online (§3.6); 200 if an earlier test's device has not
    // been seen to leave yet.
    expect([200, 7]).toContain(await app.activate(dashId))

    const device = await connectDevice(presenceDevice.token, { kind: "tcp", port: srv.httpPort })
    devices.push(device)
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
    report()
    const srv = server!
    // The library reports the status as an 'error' event named after it and stops for good.
    const attempt = connectDevice("x".repeat(32), { kind: "tcp", port: srv.httpPort })
    await expect(attempt).rejects.toThrow(/INVALID_TOKEN/)
  })
})
