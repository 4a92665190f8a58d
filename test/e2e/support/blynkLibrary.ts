/**
 * The npm `blynk-library` 0.5.4 device client, loaded as it is (CommonJS, no types) and given the
 * few types the tests use. See test/e2e/blynkLibrary.test.ts for what it sends on the wire.
 */
import { EventEmitter } from "node:events"
import { createRequire } from "node:module"

const require = createRequire(import.meta.url)

export interface VirtualPin extends EventEmitter {
  readonly pin: number
}

export interface BlynkDevice extends EventEmitter {
  connect(): void
  /** The library's reconnect interval while it is not logged in. */
  timerConn?: ReturnType<typeof setInterval> | null
  /** Closes the socket; `false` = do not reconnect. */
  disconnect(reconnect?: boolean): void
  virtualWrite(pin: number, value: string | number | ReadonlyArray<string | number>): void
  syncVirtual(pin: number): void
  syncAll(): void
  readonly VirtualPin: new (pin: number) => VirtualPin
  readonly WidgetBridge: new (pin: number) => WidgetBridge
  readonly conn: Connector
  /** The id of the last message it sent (the login always has 1; the others count up from 2, never reset). */
  readonly msg_id: number
}

/**
 * `new blynk.WidgetBridge(bridgePin)`: each method sends one BRIDGE (15) frame,
 * `bridgePin\0i\0token`, `bridgePin\0vw\0pin\0value…`, `…dw…`, `…aw…`. Like every send of the
 * library, nothing goes out (silently) unless it is logged in, and it never re-sends the `i` after
 * a reconnect; it ignores the server's answers (OK, NOT_ALLOWED, …).
 */
export interface WidgetBridge {
  readonly pin: number
  setAuthToken(token: string): void
  virtualWrite(pin: number, value: string | number | ReadonlyArray<string | number>): void
  digitalWrite(pin: number, value: string | number): void
  analogWrite(pin: number, value: string | number): void
}

/**
 * The library's board: incoming HARDWARE/BRIDGE bodies other than `vw`/`vr` (`dw`, `aw`, `dr`,
 * `ar`, `pm`) go to `process(values)`. Without one it picks mraa, onoff, or a dummy that only logs.
 */
export interface Board {
  init(blynk: BlynkDevice): void
  process(values: Array<string>): boolean | undefined
}

/** TcpClient / SslClient: `sock` is the live socket (a TLSSocket for SslClient) once connected. */
export interface Connector extends EventEmitter {
  readonly sock: (NodeJS.EventEmitter & { authorized?: boolean; destroyed?: boolean }) | null
}

interface BlynkLibraryModule {
  readonly Blynk: new (
    auth: string,
    options: { connector: Connector; heartbeat?: number; skip_connect?: boolean; board?: Board }
  ) => BlynkDevice
  readonly TcpClient: new (options: { addr: string; port: number }) => Connector
  readonly SslClient: new (options: { addr: string; port: number; ca: Buffer; servername?: string }) => Connector
}

export const blynkLibrary = require("blynk-library") as BlynkLibraryModule

export type Transport =
  | { readonly kind: "tcp"; readonly port: number }
  | { readonly kind: "tls"; readonly port: number; readonly ca: string }

/** A device: the library object plus what it did, for waits and failure reports. */
export interface Device {
  readonly blynk: BlynkDevice
  readonly events: Array<string>
  /** Resolves on the next 'connect' (login answered with 200/4); with `failFast`, rejects on a disconnect or error first. */
  readonly nextConnect: (failFast: boolean) => Promise<void>
  /** The values of the next write the server sends to virtual pin `pin` (HARDWARE `vw pin …`). */
  readonly nextWrite: (pin: number) => Promise<Array<string>>
  /** Stops the device for good (no reconnect). */
  readonly close: () => void
}

/** Options for `makeDevice`: `board` replaces the library's own (see `Board`). */
export interface DeviceOptions {
  readonly board?: Board
}

/**
 * Makes a device on `transport` with `token` and starts connecting. The library's own options:
 * `addr`/`port` on the connector; for TLS `ca` (a Buffer) and `servername` (defaults to addr) —
 * it connects with rejectUnauthorized:false but goes no further unless `sock.authorized`.
 */
export const makeDevice = (token: string, transport: Transport, options: DeviceOptions = {}): Device => {
  const connector = transport.kind === "tcp"
    ? new blynkLibrary.TcpClient({ addr: "127.0.0.1", port: transport.port })
    : new blynkLibrary.SslClient({ addr: "localhost", port: transport.port, ca: Buffer.from(transport.ca) })
  const blynk = new blynkLibrary.Blynk(token, { connector, skip_connect: true, ...(options.board ? { board: options.board } : {}) })
  const events: Array<string> = []
  const pins = new Map<number, VirtualPin>()
  let closed = false
  blynk.on("connect", () => events.push("connect"))
  blynk.on("disconnect", () => events.push("disconnect"))
  // Without a listener an 'error' event would throw; the library retries by itself.
  blynk.on("error", (error: unknown) => events.push(`error ${String(error)}`))

  const pinOf = (pin: number) => {
    let vpin = pins.get(pin)
    if (vpin === undefined) {
      vpin = new blynk.VirtualPin(pin)
      vpin.on("write", (values: Array<string>) => events.push(`write V${pin} ${JSON.stringify(values)}`))
      pins.set(pin, vpin)
    }
    return vpin
  }

  const nextConnect = (failFast: boolean) =>
    new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        blynk.off("connect", onConnect)
        blynk.off("disconnect", onDisconnect)
        blynk.off("error", onError)
      }
      const onConnect = () => {
        cleanup()
        resolve()
      }
      const onDisconnect = () => {
        if (!failFast) return
        cleanup()
        reject(new Error(`the device was disconnected before its login was answered; device events: ${events.join(", ")}`))
      }
      const onError = (error: unknown) => {
        if (!failFast) return
        cleanup()
        reject(new Error(`device error before login: ${String(error)}; device events: ${events.join(", ")}`))
      }
      blynk.on("connect", onConnect)
      blynk.on("disconnect", onDisconnect)
      blynk.on("error", onError)
    })

  const nextWrite = (pin: number) =>
    new Promise<Array<string>>((resolve, reject) => {
      const vpin = pinOf(pin)
      const onWrite = (values: Array<string>) => {
        blynk.off("disconnect", onDisconnect)
        resolve(values)
      }
      const onDisconnect = () => {
        vpin.off("write", onWrite)
        reject(new Error(`the device was disconnected while waiting for a write to V${pin}; device events: ${events.join(", ")}`))
      }
      vpin.once("write", onWrite)
      blynk.once("disconnect", onDisconnect)
    })

  const close = () => {
    if (closed) return
    closed = true
    // A reconnect the library has already scheduled must not bring the device back.
    blynk.connect = () => {}
    if (blynk.timerConn) clearInterval(blynk.timerConn)
    blynk.timerConn = null
    blynk.disconnect(false)
  }

  return { blynk, events, nextConnect, nextWrite, close }
}

/** Makes a device, connects it and resolves once its login is answered OK. */
export const connectDevice = async (token: string, transport: Transport, options: DeviceOptions = {}): Promise<Device> => {
  const device = makeDevice(token, transport, options)
  const connected = device.nextConnect(true)
  device.blynk.connect()
  try {
    await connected
  } catch (error) {
    device.close()
    throw error
  }
  return device
}

/** Resolves on the library's next `event` (with its arguments); rejects if one of `unexpected` comes first. */
export const nextEvent = (device: Device, event: string, unexpected: ReadonlyArray<string>) =>
  new Promise<Array<unknown>>((resolve, reject) => {
    const listeners = new Map<string, (...args: Array<unknown>) => void>()
    const cleanup = () => {
      for (const [name, listener] of listeners) device.blynk.off(name, listener)
    }
    listeners.set(event, (...args) => {
      cleanup()
      resolve(args)
    })
    for (const name of unexpected) {
      listeners.set(name, (...args) => {
        cleanup()
        reject(new Error(`'${name}' ${args.map(String).join(" ")} came before '${event}'; device events: ${device.events.join(", ")}`))
      })
    }
    for (const [name, listener] of listeners) device.blynk.on(name, listener)
  })
