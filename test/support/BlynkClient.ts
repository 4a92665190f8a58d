import * as Net from "node:net"
import * as Tls from "node:tls"
import { Command } from "../../src/adapters/blynk/Command.ts"
import { bodyFields, encodeApp, encodeHardware, type Frame, fromFields, response } from "../../src/adapters/blynk/Frame.ts"
import { appDecoder, hardwareDecoder } from "../../src/adapters/blynk/FrameDecoder.ts"

/** A received frame, with its body's fields for messages. */
export type Received = Frame & { readonly fields: ReadonlyArray<string> }

export interface ClientOptions {
  readonly port: number
  readonly host?: string
  readonly framing: "hardware" | "app"
  /** Connect with TLS (no certificate check: tests of the protocol, not of TLS). */
  readonly tls?: boolean
  /** The local address to connect from (any 127.x.y.z works on loopback): another "remote address". */
  readonly localAddress?: string
}

/**
 * A raw Blynk peer for protocol tests: writes frames, keeps what it receives, and lets a test
 * wait for the first frame that matches (no sleeps), or for the connection to close.
 */
export class BlynkClient {
  readonly socket: Net.Socket
  readonly received: Array<Received> = []
  readonly #framing: "hardware" | "app"
  #waiters: Array<{ match: (f: Received) => boolean; resolve: (f: Received) => void; reject: (e: Error) => void; from: number }> = []
  #closed = false
  readonly closed: Promise<void>

  private constructor(socket: Net.Socket, framing: "hardware" | "app") {
    this.socket = socket
    this.#framing = framing
    const decoder = framing === "hardware" ? hardwareDecoder() : appDecoder()
    socket.on("data", (chunk: Buffer) => {
      const { frames } = decoder.push(chunk)
      for (const frame of frames) {
        const received = { ...frame, fields: frame._tag === "Message" ? bodyFields(frame.body) : [] } as Received
        this.received.push(received)
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.match(received)) return true
          w.resolve(received)
          return false
        })
      }
    })
    this.closed = new Promise((resolve) => {
      socket.once("close", () => {
        this.#closed = true
        for (const w of this.#waiters) w.reject(new Error("connection closed while waiting for a frame"))
        this.#waiters = []
        resolve()
      })
    })
    socket.on("error", () => socket.destroy())
  }

  static connect(options: ClientOptions): Promise<BlynkClient> {
    return new Promise((resolve, reject) => {
      const host = options.host ?? "127.0.0.1"
      const from = options.localAddress === undefined ? {} : { localAddress: options.localAddress }
      const socket = options.tls
        ? Tls.connect({ host, port: options.port, rejectUnauthorized: false, ...from }, () => resolve(client))
        : Net.connect({ host, port: options.port, ...from }, () => resolve(client))
      const client = new BlynkClient(socket, options.framing)
      socket.once("error", reject)
    })
  }

  get isClosed() {
    return this.#closed
  }

  send(command: number, id: number, fields: ReadonlyArray<string> = []) {
    const frame = fromFields(command, id, fields)
    this.socket.write(this.#framing === "hardware" ? encodeHardware(frame) as Buffer : encodeApp(frame) as Buffer)
  }

  sendRaw(bytes: Uint8Array) {
    this.socket.write(bytes)
  }

  respond(id: number, status: number) {
    const frame = response(id, status)
    this.socket.write(this.#framing === "hardware" ? encodeHardware(frame) as Buffer : encodeApp(frame) as Buffer)
  }

  /** The first frame received from now on (or already received after index `from`) that matches. */
  next(match: (f: Received) => boolean, from = this.received.length): Promise<Received> {
    const seen = this.received.slice(from).find(match)
    if (seen) return Promise.resolve(seen)
    if (this.#closed) return Promise.reject(new Error("connection closed"))
    return new Promise((resolve, reject) => this.#waiters.push({ match, resolve, reject, from }))
  }

  /** Sends a request and waits for the RESPONSE with its id. */
  async request(command: number, id: number, fields: ReadonlyArray<string> = []): Promise<number> {
    const from = this.received.length
    this.send(command, id, fields)
    const answer = await this.next((f) => f._tag === "Response" && f.id === id, from)
    return answer._tag === "Response" ? answer.status : -1
  }

  /** Sends a request and waits for a message of `replyCommand` with its id. */
  async ask(command: number, id: number, fields: ReadonlyArray<string>, replyCommand = command): Promise<Received> {
    const from = this.received.length
    this.send(command, id, fields)
    return this.next((f) => f.id === id && (f.command === replyCommand || f._tag === "Response"), from)
  }

  close() {
    this.socket.destroy()
    return this.closed
  }
}

export const isMessage = (command: number) => (f: Received) => f._tag === "Message" && f.command === command
export { Command }
