/**
 * npm `blynk` 0.1.0 (a Node.js client of the legacy mobile-app protocol) against a real server
 * process, with an npm `blynk-library` device on the other side.
 *
 * What the client does on the wire (node_modules/blynk/dist/lib/Protocol.js, Blynk.js, Utils.js):
 * - `new Blynk(host, port)`, `connect()`: TLS with rejectUnauthorized:false (it trusts any
 *   certificate) and no servername beyond the host.
 * - 7-byte header frames (cmd u8, id u16, length u32); bodies written as ASCII, fields joined by NUL.
 * - Ids count from **0**: the first command (LOGIN) has msg id 0 (protocol.md §9.7: accept it).
 * - login(email, password): LOGIN (2) `email\0hash\0Android\02.27.34\0Blynk`, hash =
 *   Base64(SHA-256(password ‖ SHA-256(lower-case email))); resolves with the RSP status.
 * - getDevices(dashId): GET_DEVICES (45) `dashId`; expects a GET_DEVICES frame with the same id
 *   whose body is a JSON array (anything else, or 5 s without an answer, gives null).
 * - sendCommand(cmd, body): any command; resolves with the first frame carrying the same id
 *   (a RSP's status as a number, else the body as text). Used here for ACTIVATE_DASHBOARD (7).
 * - hardware(dashIdAndTarget, op, pin, value): HARDWARE (20) `dashId-deviceId\0op\0pin\0value`;
 *   a write has no answer on success, so it resolves after its own 250 ms wait and throws with
 *   the status name if a RSP (e.g. 7 DEVICE_NOT_IN_NETWORK) came back.
 * - It parses each 'data' chunk as exactly one frame (no reassembly), so frames must not be split
 *   across TLS records; a chunk holding several frames yields only the first.
 */
import { describe, expect, it } from "vitest"
import { disconnect, npmBlynk } from "./support/blynkApp.ts"
import { connectDevice } from "./support/blynkLibrary.ts"
import { e2eSuite } from "./support/suite.ts"

const { Blynk, Command } = npmBlynk

const account = { email: "appclient@e2e.test", password: "appclient-secret" }

const { server, devices, opened } = e2eSuite({
  provision: ({ provision }) => provision(account, { first: "app-target", second: "app-other" })
})

interface DeviceJson {
  readonly id?: unknown
  readonly name?: unknown
  readonly token?: unknown
  readonly status?: unknown
}

describe("blynk (npm, app client over TLS)", () => {
  it("logs in (msg id 0), lists the devices and writes a pin that a connected blynk-library device receives", async () => {
    const srv = server()
    const { first, second } = devices()
    // The device first, so the app's ids (0, 1, 2, …) meet no HARDWARE_CONNECTED (id 1).
    const device = opened.device(await connectDevice(first.token, { kind: "tcp", port: srv.httpPort }))

    const app = opened.track(new Blynk("127.0.0.1", srv.httpsPort), { close: disconnect })
    await app.connect()
    expect(await app.login(account.email, account.password)).toBe(200)

    const listed: unknown = await app.getDevices(String(first.dashId))
    expect(Array.isArray(listed)).toBe(true)
    const byId = new Map((listed as Array<DeviceJson>).map((d) => [d.id, d]))
    expect([...byId.keys()].sort()).toEqual([first.deviceId, second.deviceId].sort())
    expect(byId.get(first.deviceId)).toMatchObject({ name: first.name, token: first.token })
    expect(byId.get(second.deviceId)).toMatchObject({ name: second.name, token: second.token })

    expect(await app.sendCommand(Command.ACTIVATE_DASHBOARD, String(first.dashId))).toBe(200)

    // hardware() rejects if the server answered the write with an error status.
    const [, received] = await Promise.all([
      app.hardware(`${first.dashId}-${first.deviceId}`, "vw", "6", "from-blynk-app"),
      device.nextWrite(6)
    ])
    expect(received).toEqual(["from-blynk-app"])

    // GET_DEVICES reports the connected device as ONLINE and the other as OFFLINE (§2.1, 45).
    expect.soft(byId.get(first.deviceId)?.status).toBe("ONLINE")
    expect.soft(byId.get(second.deviceId)?.status).toBe("OFFLINE")
  })

  it("has its write to a device that is not connected answered DEVICE_NOT_IN_NETWORK (7)", async () => {
    const srv = server()
    const { second } = devices()
    const app = opened.track(new Blynk("127.0.0.1", srv.httpsPort), { close: disconnect })
    await app.connect()
    expect(await app.login(account.email, account.password)).toBe(200)
    // Writes to an inactive dashboard are dropped silently, so it is activated first. (It answers
    // 7 when no device of the dashboard is online (§3.6), 200 if the previous test's device has
    // not been seen to leave yet.)
    expect([200, 7]).toContain(await app.sendCommand(Command.ACTIVATE_DASHBOARD, String(second.dashId)))
    // `second` has never been connected.
    await expect(app.hardware(`${second.dashId}-${second.deviceId}`, "vw", "1", "nobody-home")).rejects.toThrow(
      "DEVICE_NOT_IN_NETWORK"
    )
  })

  it("is answered USER_NOT_AUTHENTICATED (5) for a wrong password, and may log in again on the same socket", async () => {
    const srv = server()
    const app = opened.track(new Blynk("127.0.0.1", srv.httpsPort), { close: disconnect })
    await app.connect()
    expect(await app.login(account.email, "not-the-password")).toBe(5)
    expect(await app.login(account.email, account.password)).toBe(200)
  })
})
