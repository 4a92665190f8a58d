/**
 * A minimal Blynk app-protocol client (protocol.md §1.1, §3.3): TLS to the TLS port, trusting only
 * the server's certificate for the name `localhost`; 7-byte header frames (cmd u8, id u16, length
 * u32 or status when cmd = 0), NUL-separated UTF-8 fields. It is the app-side peer of the device
 * tests: it logs in like the Android app 2.27.0, activates the dashboard and then sees device
 * writes as HARDWARE `dashId-deviceId\0vw\0pin\0value`, and writes to devices the same way.
 */
import { connect, type TLSSocket } from "node:tls"
import { Command } from "../../../src/adapters/blynk/Command.ts"
import { bodyFields, encodeApp, type Frame, FrameError, fromFields } from "../../../src/adapters/blynk/Frame.ts"
import { appDecoder } from "../../../src/adapters/blynk/FrameDecoder.ts"
import { clientPasswordHash } from "../../../src/adapters/security/Passwords.ts"

/** A frame in a readable form, for failure messages. */
export const showFrame = (frame: Frame): string =>
  frame._tag === "Response"
    ? `RESPONSE id=${frame.id} status=${frame.status}`
    : `cmd=${frame.command} id=${frame.id} body=${JSON.stringify(bodyFields(frame.body).join("|"))}`

interface Waiter {
  readonly matches: (frame: Frame) => boolean
  readonly resolve: (frame: Frame) => void
  readonly reject: (error: Error) => void
}

export class AppClient {
  /** Every frame received, in order (also the ones already taken by a wait). */
  readonly received: Array<Frame> = []
  readonly #socket: TLSSocket
  readonly #decoder = appDecoder()
  /** Frames not yet taken by a wait. */
  readonly #unclaimed: Array<Frame> = []
  #waiters: Array<Waiter> = []
  #nextId = 1
  #closedByUs = false
  #closedReason: string | undefined

  private constructor(socket: TLSSocket) {
    this.#socket = socket
    socket.on("data", (chunk: Buffer) => {
      const { frames, error } = this.#decoder.push(chunk)
      for (const frame of frames) this.#deliver(frame)
      if (error) this.#fail(`undecodable bytes from the server: ${error.message}`)
    })
    socket.on("error", (error) => this.#fail(`socket error: ${error.message}`))
    socket.on("close", () => this.#fail("the server closed the app connection"))
  }

  /**
   * Connects over TLS and checks the server's certificate against `ca` for the name `localhost`;
   * from `localAddress` (any 127.x.y.z) when given, so the server sees another remote address.
   */
  static connect(port: number, ca: string, localAddress?: string): Promise<AppClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, ca, servername: "localhost", ...(localAddress ? { localAddress } : {}) }, () => {
        socket.off("error", reject)
        resolve(new AppClient(socket))
      })
      socket.once("error", reject)
    })
  }

  /** Sends one message with the next id (1, 2, …) and returns that id. */
  send(command: number, fields: ReadonlyArray<string>): number {
    const id = this.#nextId++
    const bytes = encodeApp(fromFields(command, id, fields))
    if (bytes instanceof FrameError) throw bytes
    this.#socket.write(bytes)
    return id
  }

  /**
   * The first frame, received before or after this call and not taken by an earlier wait, that
   * matches. Rejects if the connection ends first.
   */
  waitFor(matches: (frame: Frame) => boolean): Promise<Frame> {
    const index = this.#unclaimed.findIndex(matches)
    if (index >= 0) return Promise.resolve(this.#unclaimed.splice(index, 1)[0]!)
    if (this.#closedReason !== undefined) return Promise.reject(new Error(this.#closedReason + this.#history()))
    return new Promise((resolve, reject) => this.#waiters.push({ matches, resolve, reject }))
  }

  /** The status of the RESPONSE to request `id`. */
  async statusOf(id: number): Promise<number> {
    const frame = await this.waitFor((f) => f._tag === "Response" && f.id === id)
    return frame._tag === "Response" ? frame.status : -1
  }

  /** LOGIN `email\0passHash\0Android\02.27.0\0Blynk`; resolves with the response status. */
  login(email: string, password: string): Promise<number> {
    return this.statusOf(this.send(Command.LOGIN, [email, clientPasswordHash(email, password), "Android", "2.27.0", "Blynk"]))
  }

  /** ACTIVATE_DASHBOARD `dashId`; resolves with the response status (200, or 7 if no device of it is online). */
  activate(dashId: number): Promise<number> {
    return this.statusOf(this.send(Command.ACTIVATE_DASHBOARD, [String(dashId)]))
  }

  /** HARDWARE `dashId-deviceId\0vw\0pin\0value…` (no answer on success). Returns the id used. */
  virtualWrite(dashId: number, deviceId: number, pin: number, ...values: ReadonlyArray<string>): number {
    return this.send(Command.HARDWARE, [`${dashId}-${deviceId}`, "vw", String(pin), ...values])
  }

  /** The next HARDWARE frame the server forwards to this app, as fields. */
  async nextHardware(): Promise<{ id: number; fields: Array<string> }> {
    const frame = await this.waitFor((f) => f._tag === "Message" && f.command === Command.HARDWARE)
    return { id: frame.id, fields: frame._tag === "Message" ? bodyFields(frame.body) : [] }
  }

  /** What this client received, one frame a line, for failure reports. */
  describe(): string {
    return this.received.length === 0 ? "(nothing received)" : this.received.map(showFrame).join("\n")
  }

  close(): Promise<void> {
    this.#closedByUs = true
    this.#waiters = []
    if (this.#socket.destroyed) return Promise.resolve()
    return new Promise((resolve) => {
      this.#socket.once("close", () => resolve())
      this.#socket.destroy()
    })
  }

  #deliver(frame: Frame) {
    this.received.push(frame)
    const waiter = this.#waiters.find((w) => w.matches(frame))
    if (waiter) {
      this.#waiters = this.#waiters.filter((w) => w !== waiter)
      waiter.resolve(frame)
    } else {
      this.#unclaimed.push(frame)
    }
  }

  #history() {
    return `\nframes received by the app:\n${this.describe()}`
  }

  #fail(reason: string) {
    if (this.#closedReason !== undefined) return
    this.#closedReason = reason
    if (this.#closedByUs) return
    const waiters = this.#waiters
    this.#waiters = []
    for (const waiter of waiters) waiter.reject(new Error(reason + this.#history()))
  }
}
