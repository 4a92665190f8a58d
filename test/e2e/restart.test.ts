/**
 * Pin values outlive the server process: a value a device wrote is still there after the server
 * was killed with SIGKILL (no shutdown, nothing flushed) and started again on the same data
 * directory, and the device gets it back with HARDWARE_SYNC (16).
 *
 * Client: npm `blynk-library` 0.5.4 over plain TCP (see blynkLibrary.test.ts for its wire
 * behaviour). syncVirtual(pin) sends HARDWARE_SYNC `vr\0pin`, syncAll() an empty HARDWARE_SYNC;
 * the server answers with HARDWARE `vw\0pin\0value` frames (same msg id, no RSP), which the
 * library emits as 'write' on the VirtualPin. After the server dies the library sees 'end',
 * waits 5 s, reconnects (then retries every 10 s) and logs in again by itself.
 *
 * A hardware write gets no acknowledgement, and DESIGN.md lets it be committed "within the
 * batching window", so before the kill the test waits until the log's head (GET /health) has
 * moved past each write: the kill then tests durability, not a race with group commit. (An
 * event of the device's login committing only after the head was read just before the first
 * write would blur this; the embedded database's single connection makes that unlikely.)
 */
import { describe, expect, it } from "vitest"
import { connectDevice } from "./support/blynkLibrary.ts"
import { healthHead, type ServerProcess } from "./support/server.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "restart@e2e.test", password: "restart-secret" }

// The test starts both servers itself (the second on the first one's ports); afterAll stops both.
const { devices, opened, startServer } = e2eSuite({
  provision: ({ provision }) => provision(account, { provisioned: "restart-device" }),
  startServer: false
})

const heads: Array<number> = []

/** Reads /health until the head reaches `target`; each read awaits the previous one, nothing sleeps. */
const headReaches = async (server: ServerProcess, target: number) => {
  for (;;) {
    const head = await healthHead(server)
    heads.push(head)
    if (head >= target) return head
    await new Promise<void>((resolve) => setImmediate(resolve))
  }
}

describe("pin values across a server crash", () => {
  it("returns a value a device wrote before SIGKILL to HARDWARE_SYNC after the restart", async () => {
    const { provisioned } = devices()
    const before = await startServer("before the kill")
    const { httpPort, httpsPort } = before
    const device = opened.device(await connectDevice(provisioned.token, { kind: "tcp", port: httpPort }))
    opened.note(() => `/health heads seen: ${heads.slice(-10).join(", ")}`)

    // One write at a time, each followed by the log's head moving past it (a write is at least
    // one event; writes made while another is in flight may share one, hence one at a time).
    const head0 = await healthHead(before)
    device.blynk.virtualWrite(7, "77")
    const head1 = await headReaches(before, head0 + 1)
    device.blynk.virtualWrite(8, "eight")
    await headReaches(before, head1 + 1)

    const killed = await before.kill()
    expect(killed.signal).toBe("SIGKILL")

    // The same device object: the library notices the lost link and logs in again by itself.
    const reconnected = device.nextConnect(false)
    await startServer("after the restart", { httpPort, httpsPort })
    await reconnected

    const v7 = device.nextWrite(7)
    device.blynk.syncVirtual(7)
    expect(await v7).toEqual(["77"])

    // An empty HARDWARE_SYNC returns every stored value of the device.
    const all = Promise.all([device.nextWrite(7), device.nextWrite(8)])
    device.blynk.syncAll()
    expect(await all).toEqual([["77"], ["eight"]])
  })
})
