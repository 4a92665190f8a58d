/**
 * BRIDGE (protocol.md §2.4) end to end: a real server process, npm `blynk-library` 0.5.4 devices
 * and the owner's raw TLS app client.
 *
 * What the library does (node_modules/blynk-library/blynk.js):
 * - `new blynk.WidgetBridge(bridgePin)`: `setAuthToken(token)` sends BRIDGE (15)
 *   `bridgePin\0i\0token`; `virtualWrite(pin, v)` `bridgePin\0vw\0pin\0v…`, `digitalWrite(pin, v)`
 *   `bridgePin\0dw\0pin\0v`, `analogWrite` the same with `aw`; each with the next message id.
 * - Like every send of the library, these go out only while it is logged in (`sendMsg` drops them
 *   silently before the login is answered), and nothing re-sends the `i` after a reconnect: a
 *   sketch must call `setAuthToken` in its 'connect' handler.
 * - It ignores every answer but the login's: the OK to `i`, and a NOT_ALLOWED (6) or
 *   DEVICE_NOT_IN_NETWORK (7), raise no event and change nothing; it stays connected. So the tests
 *   read the answers from the socket (`Answers` below).
 * - Receiving, it treats BRIDGE exactly as HARDWARE (`msg_type === HW || msg_type === BRIDGE`):
 *   `vw pin values…` emits 'write'(values) on `new blynk.VirtualPin(pin)`, `dw`/`aw` go to its board.
 */
import { describe, expect, it } from "vitest"
import { EventEmitter, once } from "node:events"
import { Command, Status } from "../../src/adapters/blynk/Command.ts"
import { bodyFields, type Frame } from "../../src/adapters/blynk/Frame.ts"
import { hardwareDecoder } from "../../src/adapters/blynk/FrameDecoder.ts"
import { showFrame } from "./support/appClient.ts"
import { type Board, connectDevice, type Device, makeDevice, type Transport } from "./support/blynkLibrary.ts"
import type { ProvisionedDevice, ServerProcess } from "./support/server.ts"
import { e2eSuite } from "./support/suite.ts"

const owner = { email: "bridge@e2e.test", password: "bridge-secret" }
const stranger = { email: "bridge-stranger@e2e.test", password: "stranger-secret" }

const { server, devices, opened, activeApp } = e2eSuite({
  provision: async ({ provision }) => ({
    ...(await provision(owner, { deviceA: "bridge-a", deviceB: "bridge-b" })),
    ...(await provision(stranger, { foreign: "foreign" }))
  })
})

/**
 * The server's answers (RSP frames) on a library device's current connection, which the library
 * itself drops: its connector emits the socket's data as latin1 strings.
 */
class Answers {
  readonly responses: Array<Frame> = []
  readonly #decoder = hardwareDecoder()
  readonly #device: Device
  #waiters: Array<{ id: number; resolve: (status: number) => void }> = []

  constructor(device: Device) {
    this.#device = device
    device.blynk.conn.on("data", (data: string) => {
      for (const frame of this.#decoder.push(Buffer.from(data, "latin1")).frames) {
        if (frame._tag !== "Response") continue
        this.responses.push(frame)
        const waiter = this.#waiters.find((w) => w.id === frame.id)
        if (waiter) {
          this.#waiters = this.#waiters.filter((w) => w !== waiter)
          waiter.resolve(frame.status)
        }
      }
    })
  }

  /** The status the server answered to message `id`; rejects if the device is disconnected first. */
  statusOf(id: number): Promise<number> {
    const seen = this.responses.find((r) => r.id === id)
    if (seen?._tag === "Response") return Promise.resolve(seen.status)
    return new Promise((resolve, reject) => {
      const onDisconnect = () => {
        this.#waiters = this.#waiters.filter((w) => w.id !== id)
        reject(new Error(`disconnected before an answer to message ${id}; device events: ${this.#device.events.join(", ")}`))
      }
      this.#device.blynk.once("disconnect", onDisconnect)
      this.#waiters.push({
        id,
        resolve: (status) => {
          this.#device.blynk.off("disconnect", onDisconnect)
          resolve(status)
        }
      })
    })
  }

  describe() {
    return this.responses.length === 0 ? "(no answers)" : this.responses.map(showFrame).join("\n")
  }
}

/**
 * A board that records the `dw`/`aw` writes the library hands it (what `digitalWrite` through a
 * bridge turns into at the receiving device) instead of driving GPIO.
 */
const recordingBoard = () => {
  const emitter = new EventEmitter()
  const board: Board = {
    init: () => {},
    process: (values) => {
      if (values[0] === "pm") return true
      if (values[0] !== "dw" && values[0] !== "aw") return undefined
      emitter.emit("pin", values)
      return true
    }
  }
  return { board, next: () => once(emitter, "pin").then(([values]) => values as Array<string>) }
}

const tcp = (srv: ServerProcess): Transport => ({ kind: "tcp", port: srv.httpPort })
const tls = (srv: ServerProcess): Transport => ({ kind: "tls", port: srv.httpsPort, ca: srv.ca })

const connect = async (provisioned: ProvisionedDevice, transport: Transport, board?: Board) =>
  opened.device(await connectDevice(provisioned.token, transport, board ? { board } : {}))

const isHardware = (fields: ReadonlyArray<string>) => (f: Frame) =>
  f._tag === "Message" && f.command === Command.HARDWARE && bodyFields(f.body).join("|") === fields.join("|")

const tap = (device: Device) => opened.track(new Answers(device), { describe: (tapped) => `answers to a device:\n${tapped.describe()}` })

describe("BRIDGE with npm blynk-library devices", () => {
  it("A's bridge to B's token: writes reach B's handlers and the owner's app as B's, and are stored as B's", async () => {
    const srv = server()
    const { deviceA, deviceB } = devices()
    const { dashId } = deviceA
    const targetA = `${dashId}-${deviceA.deviceId}`
    const targetB = `${dashId}-${deviceB.deviceId}`
    const a = await connect(deviceA, tcp(srv))
    const answersA = tap(a)
    const boardB = recordingBoard()
    const b = await connect(deviceB, tls(srv), boardB.board)
    const app = await activeApp(owner, dashId)

    // A's own V5, to tell A's stored value from B's below.
    a.blynk.virtualWrite(5, "a-own")
    await app.waitFor(isHardware([targetA, "vw", "5", "a-own"]))

    const bridge = new a.blynk.WidgetBridge(64)
    bridge.setAuthToken(deviceB.token)
    expect(await answersA.statusOf(a.blynk.msg_id)).toBe(Status.OK)

    // vw: B's V5 handler gets it; the app gets HARDWARE as from B, with A's message id.
    const atB = b.nextWrite(5)
    const atApp = app.waitFor(isHardware([targetB, "vw", "5", "bridged-42"]))
    bridge.virtualWrite(5, "bridged-42")
    const writeId = a.blynk.msg_id
    expect(await atB).toEqual(["bridged-42"])
    expect((await atApp).id).toBe(writeId)

    // Several values travel as separate fields.
    const manyAtB = b.nextWrite(6)
    const manyAtApp = app.waitFor(isHardware([targetB, "vw", "6", "1", "2", "3"]))
    bridge.virtualWrite(6, ["1", "2", "3"])
    expect(await manyAtB).toEqual(["1", "2", "3"])
    await manyAtApp

    // dw: B's library hands it to its board, as it does a HARDWARE dw.
    const atBoard = boardB.next()
    const digitalAtApp = app.waitFor(isHardware([targetB, "dw", "13", "1"]))
    bridge.digitalWrite(13, 1)
    expect(await atBoard).toEqual(["dw", "13", "1"])
    await digitalAtApp

    // Stored as B's value: B's sync returns it, A's own V5 is untouched.
    const syncedB = b.nextWrite(5)
    b.blynk.syncVirtual(5)
    expect(await syncedB).toEqual(["bridged-42"])
    const syncedA = a.nextWrite(5)
    a.blynk.syncVirtual(5)
    expect(await syncedA).toEqual(["a-own"])

    // The writes were never answered with an error, and nobody was disconnected.
    expect(answersA.responses.filter((r) => r._tag !== "Response" || r.status !== Status.OK).map(showFrame)).toEqual([])
    expect([...a.events, ...b.events].filter((e) => e !== "connect" && !e.startsWith("write "))).toEqual([])
  })

  it("A's bridge to another account's token is answered NOT_ALLOWED, which the library ignores; nothing reaches that device", async () => {
    const srv = server()
    const { deviceA, foreign } = devices()
    const { dashId } = deviceA
    const other = await connect(foreign, tcp(srv))
    // The foreign device's own V5, which a bridged write would have replaced.
    other.blynk.virtualWrite(5, "foreign-own")
    const a = await connect(deviceA, tcp(srv))
    const answersA = tap(a)
    const app = await activeApp(owner, dashId)

    const bridge = new a.blynk.WidgetBridge(65)
    bridge.setAuthToken(foreign.token)
    expect(await answersA.statusOf(a.blynk.msg_id)).toBe(Status.NOT_ALLOWED)
    // The pin was never tied to anything: its writes are refused too.
    bridge.virtualWrite(5, "must-not-arrive")
    expect(await answersA.statusOf(a.blynk.msg_id)).toBe(Status.NOT_ALLOWED)

    // The foreign device still has its own value (its sync follows its own write on its socket).
    const synced = other.nextWrite(5)
    other.blynk.syncVirtual(5)
    expect(await synced).toEqual(["foreign-own"])
    expect(other.events.filter((e) => e.includes("must-not-arrive"))).toEqual([])

    // The library raised nothing and stays connected: its next write reaches the owner's app.
    a.blynk.virtualWrite(7, "still-here")
    await app.waitFor(isHardware([`${dashId}-${deviceA.deviceId}`, "vw", "7", "still-here"]))
    expect(a.events).toEqual(["connect"])
  })

  it("setAuthToken before the library is logged in is dropped (the bridge then answers NOT_ALLOWED); after 'connect' it works", async () => {
    const srv = server()
    const { deviceA, deviceB } = devices()
    const b = await connect(deviceB, tcp(srv))

    const a = opened.device(makeDevice(deviceA.token, tcp(srv)))
    const early = new a.blynk.WidgetBridge(66)
    early.setAuthToken(deviceB.token)
    // Nothing was sent: the message id did not move.
    expect(a.blynk.msg_id).toBe(1)
    const connected = a.nextConnect(true)
    a.blynk.connect()
    await connected
    const answersA = tap(a)

    early.virtualWrite(5, "too-early")
    expect(await answersA.statusOf(a.blynk.msg_id)).toBe(Status.NOT_ALLOWED)

    // The same bridge initialised now, once logged in, carries the write to B.
    early.setAuthToken(deviceB.token)
    expect(await answersA.statusOf(a.blynk.msg_id)).toBe(Status.OK)
    const atB = b.nextWrite(5)
    early.virtualWrite(5, "after-connect")
    expect(await atB).toEqual(["after-connect"])
    expect(b.events.filter((e) => e.includes("too-early"))).toEqual([])
  })
})
