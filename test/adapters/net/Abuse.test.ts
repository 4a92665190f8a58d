/**
 * The whole server in this process under a flood of garbage connections (issue 4 §6), while a
 * logged-in device and an app exchange writes the whole time. The garbage comes in waves on both
 * ports, from other loopback addresses than the two real clients, generated with fast-check:
 *
 * - random bytes (or random well-framed hardware/app frames) on the plain port, on the TLS port
 *   before any handshake, and on the TLS port after a completed handshake, then FIN;
 * - HTTP garbage (a verb, then random bytes or a broken request) on both ports, then FIN;
 * - connections that send nothing, and connections that send a valid header announcing a large
 *   body (hardware login, app login, HTTP Content-Length) and then stall: both are held open until
 *   after the checks at the end;
 * - TLS handshakes that stop: part of a ClientHello then FIN or RST, or a whole ClientHello and
 *   an RST as soon as the server answers.
 *
 * Each wave waits until all its finishing connections are closed and both directions of the real
 * exchange have moved on since the wave began, so the writes interleave with the flood without
 * any timing. The device writes V1 0, 1, 2, … (each sent once the app has the previous one) and
 * the app writes V2 0, 1, 2, … to the device the same way; at the end the values the app received
 * and the values the device received must be exactly those sequences. The device's connection
 * must still be open, and fresh device and app logins must still be accepted.
 *
 * The flood quota is raised for this server (the exchange runs as fast as round trips allow,
 * which the default 100 frames/s would rightly cut): the flood, not the quota, is under test.
 * A failing run prints the fast-check seed; PINLEDGER_ABUSE_SEED=<seed> replays the same flood.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest"
import { Effect, Exit, Scope } from "effect"
import fc from "fast-check"
import * as Net from "node:net"
import * as Tls from "node:tls"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { type Backend, backends } from "../../support/backends.ts"
import { BlynkClient, type Received } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, loginApp, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

const WAVES = 8
const PER_WAVE = 40

// ---- the garbage ----

type Port = "plain" | "tls"

type Garbage =
  /** TCP to `port` (no TLS handshake), `bytes`, FIN. */
  | { readonly kind: "raw"; readonly port: Port; readonly bytes: Uint8Array }
  /** A completed TLS handshake, then `bytes`, then close_notify and FIN. */
  | { readonly kind: "afterHandshake"; readonly bytes: Uint8Array }
  /** An HTTP-looking start on `port` (over TLS on the TLS port), then FIN. */
  | { readonly kind: "http"; readonly port: Port; readonly bytes: Uint8Array }
  /** Connects (and for `tls`, completes the handshake) and sends nothing: held open. */
  | { readonly kind: "silent"; readonly port: Port; readonly handshake: boolean }
  /** A header announcing `announced` body bytes, `sent` of them, then nothing: held open. */
  | { readonly kind: "stall"; readonly protocol: "hardware-plain" | "app-tls" | "http-plain"; readonly announced: number; readonly sent: number }
  /** The first `cut` bytes of a ClientHello, then FIN or RST. */
  | { readonly kind: "cutHello"; readonly cut: number; readonly reset: boolean }
  /** A whole ClientHello, then an RST as soon as the server answers it. */
  | { readonly kind: "resetAfterServerHello" }

const hardwareFrame = (command: number, id: number, body: Uint8Array) => {
  const frame = Buffer.alloc(5 + body.length)
  frame.writeUInt8(command, 0)
  frame.writeUInt16BE(id, 1)
  frame.writeUInt16BE(body.length, 3)
  frame.set(body, 5)
  return frame
}

const appFrame = (command: number, id: number, body: Uint8Array, announced = body.length) => {
  const frame = Buffer.alloc(7 + body.length)
  frame.writeUInt8(command, 0)
  frame.writeUInt16BE(id, 1)
  frame.writeUInt32BE(announced, 3)
  frame.set(body, 7)
  return frame
}

const frameArb = fc.record({
  // Mostly real command codes (logins, HARDWARE, PING, …), sometimes anything.
  command: fc.oneof(fc.constantFrom(0, 1, 2, 6, 16, 17, 20, 29, 32), fc.integer({ min: 0, max: 255 })),
  id: fc.integer({ min: 0, max: 0xffff }),
  // NUL-separated printable fields or raw bytes.
  body: fc.oneof(
    fc.array(fc.string({ maxLength: 40 }), { maxLength: 6 }).map((fields) => Buffer.from(fields.join("\0"))),
    fc.uint8Array({ maxLength: 200 })
  )
})

/** Random bytes, or a run of well-framed frames with random content (`framing` decides the header). */
const bytesArb = (framing: "hardware" | "app") =>
  fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 4096, size: "max" }),
    fc.array(frameArb, { minLength: 1, maxLength: 12 }).map((frames) =>
      Buffer.concat(frames.map((f) => (framing === "hardware" ? hardwareFrame(f.command, f.id, f.body) : appFrame(f.command, f.id, f.body))))
    )
  )

const verbs = ["GET ", "POST", "PUT ", "HEAD", "OPTI", "PATC", "DELE", "TRAC", "CONN"]
const httpArb = fc.oneof(
  // A verb and then anything.
  fc.tuple(fc.constantFrom(...verbs), fc.uint8Array({ maxLength: 2048 })).map(([verb, rest]) => Buffer.concat([Buffer.from(verb), rest])),
  // A request line and headers with random text, complete or not.
  fc.tuple(
    fc.constantFrom(...verbs),
    fc.string({ maxLength: 200 }),
    fc.array(fc.tuple(fc.string({ maxLength: 30 }), fc.string({ maxLength: 100 })), { maxLength: 8 }),
    fc.boolean()
  ).map(([verb, path, headers, complete]) =>
    Buffer.from(
      `${verb.trim()} /${path} HTTP/1.1\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")}${complete ? "\r\n" : ""}`,
      "latin1"
    )
  )
)

const garbageArb: fc.Arbitrary<Garbage> = fc.oneof(
  fc.record({ kind: fc.constant("raw" as const), port: fc.constant("plain" as const), bytes: bytesArb("hardware") }),
  fc.record({ kind: fc.constant("raw" as const), port: fc.constant("tls" as const), bytes: bytesArb("app") }),
  fc.record({ kind: fc.constant("afterHandshake" as const), bytes: bytesArb("app") }),
  fc.record({ kind: fc.constant("http" as const), port: fc.constantFrom<Port>("plain", "tls"), bytes: httpArb }),
  fc.record({ kind: fc.constant("silent" as const), port: fc.constantFrom<Port>("plain", "tls"), handshake: fc.boolean() }),
  fc.oneof(
    fc.record({ protocol: fc.constant("hardware-plain" as const), announced: fc.integer({ min: 33, max: 0xffff }) }),
    fc.record({ protocol: fc.constant("app-tls" as const), announced: fc.integer({ min: 100, max: 20_000_000 }) }),
    fc.record({ protocol: fc.constant("http-plain" as const), announced: fc.integer({ min: 100, max: 1_000_000_000 }) })
  ).chain(({ protocol, announced }) =>
    fc.integer({ min: 0, max: Math.min(announced - 1, 30) }).map((sent) => ({ kind: "stall" as const, protocol, announced, sent }))
  ),
  fc.record({ kind: fc.constant("cutHello" as const), cut: fc.integer({ min: 1, max: 400 }), reset: fc.boolean() }),
  fc.constant({ kind: "resetAfterServerHello" as const })
)

const describeGarbage = (g: Garbage) =>
  JSON.stringify(g, (_k, v: unknown) => (v instanceof Uint8Array ? `${v.length} bytes ${Buffer.from(v.subarray(0, 24)).toString("hex")}…` : v))

/** A real ClientHello, as a TLS client sends it first: captured once from a listener that never answers. */
const captureClientHello = () =>
  new Promise<Buffer>((resolve, reject) => {
    const capture = Net.createServer((socket) => {
      socket.once("data", (hello: Buffer) => {
        resolve(hello)
        socket.destroy()
        capture.close()
      })
    })
    capture.listen(0, "127.0.0.1", () => {
      const { port } = capture.address() as Net.AddressInfo
      const client = Tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false })
      client.on("error", () => client.destroy())
    })
    capture.on("error", reject)
  })

interface Flood {
  /** Connections held open on purpose (silent, stalled), closed after the checks. */
  readonly held: Array<Net.Socket>
  /** Garbage connections not yet closed, for a failure report. */
  readonly open: Map<Net.Socket, string>
  opened: number
}

/**
 * Opens one garbage connection from `localAddress`. Resolves when it is done: closed (by either
 * side) for the ones that finish, or once its bytes are written for the ones held open.
 */
const unleash = (server: RunningServer, g: Garbage, localAddress: string, clientHello: Buffer, flood: Flood) =>
  new Promise<void>((resolve) => {
    const portOf = (port: Port) => (port === "plain" ? server.plainPort : server.tlsPort)
    const tcp = (port: number) => Net.connect({ host: "127.0.0.1", port, localAddress })
    // tls.connect hands `localAddress` on to net.connect (its option types leave it out).
    const from = { localAddress }
    const tls = (port: number) => Tls.connect({ host: "127.0.0.1", port, ...from, servername: "localhost", rejectUnauthorized: false })
    const track = (socket: Net.Socket, finishes: boolean) => {
      flood.opened++
      flood.open.set(socket, describeGarbage(g))
      socket.on("error", () => socket.destroy())
      // Read whatever the server answers, so its writes never back up.
      socket.on("data", () => {})
      socket.once("close", () => {
        flood.open.delete(socket)
        if (finishes) resolve()
      })
      return socket
    }
    const sendThenEnd = (socket: Net.Socket, bytes: Uint8Array) => socket.end(bytes)
    const hold = (socket: Net.Socket, bytes?: Uint8Array) => {
      flood.held.push(socket)
      if (bytes === undefined || bytes.length === 0) return resolve()
      socket.write(bytes, () => resolve())
    }

    switch (g.kind) {
      case "raw": {
        const socket = track(tcp(portOf(g.port)), true)
        return void socket.once("connect", () => sendThenEnd(socket, g.bytes))
      }
      case "afterHandshake": {
        const socket = track(tls(server.tlsPort), true)
        return void socket.once("secureConnect", () => sendThenEnd(socket, g.bytes))
      }
      case "http": {
        const socket = track(g.port === "plain" ? tcp(server.plainPort) : tls(server.tlsPort), true)
        return void socket.once(g.port === "plain" ? "connect" : "secureConnect", () => sendThenEnd(socket, g.bytes))
      }
      case "silent": {
        const withTls = g.port === "tls" && g.handshake
        const socket = track(withTls ? tls(server.tlsPort) : tcp(portOf(g.port)), false)
        // If the server closes it first (it may), the wave must not wait for it either.
        socket.once("close", () => resolve())
        return void socket.once(withTls ? "secureConnect" : "connect", () => hold(socket))
      }
      case "stall": {
        const body = Buffer.alloc(g.sent, 0x41)
        if (g.protocol === "hardware-plain") {
          const socket = track(tcp(server.plainPort), false)
          socket.once("close", () => resolve())
          return void socket.once("connect", () => hold(socket, Buffer.concat([hardwareFrame(29, 1, Buffer.alloc(0)).subarray(0, 3), u16(g.announced), body])))
        }
        if (g.protocol === "app-tls") {
          const socket = track(tls(server.tlsPort), false)
          socket.once("close", () => resolve())
          return void socket.once("secureConnect", () => hold(socket, appFrame(Command.LOGIN, 1, body, g.announced)))
        }
        const socket = track(tcp(server.plainPort), false)
        socket.once("close", () => resolve())
        const head = `POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: ${g.announced}\r\n\r\n`
        return void socket.once("connect", () => hold(socket, Buffer.concat([Buffer.from(head, "latin1"), body])))
      }
      case "cutHello": {
        const socket = track(tcp(server.tlsPort), true)
        return void socket.once("connect", () => {
          const part = clientHello.subarray(0, Math.min(g.cut, clientHello.length - 1))
          if (g.reset) socket.write(part, () => socket.resetAndDestroy())
          else socket.end(part)
        })
      }
      case "resetAfterServerHello": {
        const socket = track(tcp(server.tlsPort), true)
        socket.once("connect", () => socket.write(clientHello))
        return void socket.once("data", () => socket.resetAndDestroy())
      }
    }
  })

const u16 = (n: number) => {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

// ---- the real traffic ----

/** One direction of the exchange: sends value n once the receiver has n − 1; counts what arrived. */
class Pump {
  sent = 0
  done = 0
  #progress: Array<{ target: number; resolve: () => void }> = []
  #running = true
  readonly finished: Promise<void>

  constructor(
    send: (n: number) => void,
    arrived: (n: number) => Promise<unknown>
  ) {
    this.finished = (async () => {
      while (this.#running) {
        const n = this.sent
        const got = arrived(n)
        send(n)
        this.sent++
        await got
        this.done++
        this.#progress = this.#progress.filter((p) => !(this.done >= p.target && (p.resolve(), true)))
      }
    })()
  }

  /** Resolves once one more value than now has arrived. */
  advanced(): Promise<void> {
    const target = this.done + 1
    return new Promise((resolve) => this.#progress.push({ target, resolve }))
  }

  stop() {
    this.#running = false
    return this.finished
  }
}

const isWrite = (command: number, fields: ReadonlyArray<string>) => (f: Received) =>
  f._tag === "Message" && f.command === command && fields.every((field, i) => f.fields[i] === field)

const valuesOf = (client: BlynkClient, command: number, prefix: ReadonlyArray<string>) =>
  client.received.filter(isWrite(command, prefix)).map((f) => f.fields.slice(prefix.length).join("|"))

const sequence = (n: number) => Array.from({ length: n }, (_, i) => String(i))

/** Message ids 1…65535, never 0 (a server-initiated id). */
const idOf = (n: number) => 1 + (n % 0xfffe)

describe.each(backends.map((backend) => [backend.name, backend] as const))("a flood of garbage connections on %s", (_name, backend: Backend) => {
  let server: RunningServer
  let release: () => Promise<void> = async () => {}
  let clientHello: Buffer

  beforeAll(async () => {
    const scope = Effect.runSync(Scope.make())
    release = () => Effect.runPromise(Scope.close(scope, Exit.void))
    const storage = await Effect.runPromise(Scope.provide(backend.storage, scope).pipe(Effect.orDie))
    server = await startBlynkServer(storage, { messageQuota: 1_000_000 })
    clientHello = await captureClientHello()
  })
  afterAll(async () => {
    await server?.close()
    await release()
  })

  it("leaves a device and an app exchanging every write, in order, and the server taking new logins", { timeout: 180_000 }, async () => {
    const seed = process.env.PINLEDGER_ABUSE_SEED === undefined ? Date.now() ^ (Math.random() * 0x7fffffff) : Number(process.env.PINLEDGER_ABUSE_SEED)
    const waves = fc.sample(fc.array(fc.array(garbageArb, { minLength: PER_WAVE, maxLength: PER_WAVE }), { minLength: WAVES, maxLength: WAVES }), {
      seed,
      numRuns: 1
    })[0]!
    const flood: Flood = { held: [], open: new Map(), opened: 0 }
    let pumps: { up: Pump; down: Pump } | undefined
    let currentWave = -1
    onTestFailed(() => {
      console.error(`flood seed ${seed} (PINLEDGER_ABUSE_SEED=${seed} replays it); in wave ${currentWave}; ${flood.opened} garbage connections opened`)
      console.error(`device → app: ${pumps?.up.sent} sent, ${pumps?.up.done} arrived; app → device: ${pumps?.down.sent} sent, ${pumps?.down.done} arrived`)
      const open = [...flood.open.entries()].filter(([s]) => !flood.held.includes(s)).map(([, d]) => d)
      console.error(`garbage connections still open that should have finished (${open.length}):\n${open.slice(0, 20).join("\n")}`)
    })

    const { app, email, hash } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const device = await connectDevice(server, token)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)

    // Device → app on V1, app → device on V2.
    const up = new Pump(
      (n) => device.send(Command.HARDWARE, idOf(n), ["vw", "1", String(n)]),
      (n) => app.next(isWrite(Command.HARDWARE, ["1-0", "vw", "1", String(n)]))
    )
    const down = new Pump(
      (n) => app.send(Command.HARDWARE, idOf(n), ["1-0", "vw", "2", String(n)]),
      (n) => device.next(isWrite(Command.HARDWARE, ["vw", "2", String(n)]))
    )
    pumps = { up, down }

    let address = 0
    for (const [w, wave] of waves.entries()) {
      currentWave = w
      const progress = Promise.all([up.advanced(), down.advanced()])
      // Other addresses than the real clients' 127.0.0.1: a throttle block for them is no concern here.
      await Promise.all(wave.map((g) => unleash(server, g, `127.0.1.${1 + (address++ % 250)}`, clientHello, flood)))
      await progress
    }
    currentWave = WAVES
    await Promise.all([up.stop(), down.stop()])

    expect(flood.opened).toBeGreaterThanOrEqual(WAVES * PER_WAVE)
    // Every write made it, exactly once and in order, both ways.
    expect(up.sent).toBeGreaterThanOrEqual(WAVES)
    expect(down.sent).toBeGreaterThanOrEqual(WAVES)
    expect(valuesOf(app, Command.HARDWARE, ["1-0", "vw", "1"])).toEqual(sequence(up.sent))
    expect(valuesOf(device, Command.HARDWARE, ["vw", "2"])).toEqual(sequence(down.sent))
    // Nothing was refused or cut short: no answer but OK ever reached either of them.
    expect(device.received.filter((f) => f._tag === "Response" && f.status !== Status.OK)).toEqual([])
    expect(app.received.filter((f) => f._tag === "Response" && f.status !== Status.OK)).toEqual([])
    expect(device.isClosed).toBe(false)
    expect(app.isClosed).toBe(false)
    expect(await device.request(Command.PING, 1)).toBe(Status.OK)

    // Fresh logins are taken while the held garbage is still open: an app, a device on each port.
    const again = await loginApp(server, email, hash)
    const plainDevice = await connectDevice(server, token)
    const tlsDevice = await connectDevice(server, token, true)
    const atNew = plainDevice.next(isWrite(Command.HARDWARE, ["vw", "3", "after"]))
    const atTls = tlsDevice.next(isWrite(Command.HARDWARE, ["vw", "3", "after"]))
    again.send(Command.HARDWARE, 5, ["1-0", "vw", "3", "after"])
    await Promise.all([atNew, atTls])

    for (const socket of flood.held) socket.destroy()
    await Promise.all([again.close(), plainDevice.close(), tlsDevice.close(), device.close(), app.close()])
  })
})
