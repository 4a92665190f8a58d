/**
 * Device-side load generator for `bench/route.ts`, run as a forked child process (one per
 * `--workers`), so that making the load does not share one event loop with the app side that
 * measures it. It talks to the orchestrator over the IPC channel only (messages below), and to the
 * server over plain TCP with the hardware framing (protocol.md §1.1, §3.2, §3.5).
 *
 * A device: HARDWARE_LOGIN (id 1, token) → expects OK; BLYNK_INTERNAL `ver 0.5.4 h-beat 10
 * buff-in 1024` → expects OK; then a PING every 10 s (random phase per device) for as long as it is
 * connected. Pin writes are HARDWARE `vw 1 <send time>`, the send time in ms (3 decimals) since
 * the orchestrator's monotonic base, so the app side can compute device → app latency.
 */
import * as Net from "node:net"
import { Command, commandName, Status, statusName } from "../src/adapters/blynk/Command.ts"
import { encodeHardware, type Frame, FrameError, fromFields } from "../src/adapters/blynk/Frame.ts"
import { type FrameDecoder, hardwareDecoder } from "../src/adapters/blynk/FrameDecoder.ts"

export interface DeviceSpec {
  /** Global index; also the device id the app sees (`dashId-deviceId`). */
  readonly idx: number
  readonly token: string
}

/** Orchestrator → worker. Times are ms on the orchestrator's monotonic timeline (`base`). */
export type ToWorker =
  | { readonly t: "init"; readonly base: string }
  | {
    readonly t: "connect"
    readonly host: string
    readonly port: number
    readonly devices: ReadonlyArray<DeviceSpec>
    readonly concurrency: number
    readonly timeoutMs: number
  }
  | { readonly t: "rate"; readonly rate: number; readonly startMs: number; readonly warmEndMs: number; readonly endMs: number }
  | { readonly t: "flood"; readonly capBytes: number; readonly startMs: number; readonly warmEndMs: number; readonly endMs: number }
  /** Frames the app has received so far from each device, in the order of the last `connect`. */
  | { readonly t: "ack"; readonly counts: ReadonlyArray<number> }
  | { readonly t: "close" }

export interface WorkerStats {
  /** RESPONSE frames the devices got that answered nothing they asked, by status name. */
  readonly responses: Record<string, number>
  /** Server-initiated messages to the devices, by command name. */
  readonly messages: Record<string, number>
  /** A few of those, hex, for the report. */
  readonly samples: ReadonlyArray<string>
  /** Connections the server closed (or that failed) while the bench still used them. */
  readonly dropped: number
  readonly dropReasons: ReadonlyArray<string>
  readonly pingsSent: number
}

/** Worker → orchestrator. */
export type FromWorker =
  | { readonly t: "ready" }
  | {
    readonly t: "connected"
    readonly ok: number
    readonly failures: ReadonlyArray<{ readonly idx: number; readonly reason: string }>
    readonly ms: number
  }
  | {
    readonly t: "done"
    /** Writes whose send time fell in [warmEndMs, endMs). */
    readonly sentInWindow: number
    readonly sentTotal: number
    /** Rate mode: writes skipped because the generator fell more than 10 frames behind schedule. */
    readonly skipped: number
    /** Flood mode: frames given up as lost (no progress in the app's count for 2 s). */
    readonly givenUp: number
    readonly stats: WorkerStats
  }
  | { readonly t: "closed"; readonly stats: WorkerStats }
  | { readonly t: "fatal"; readonly reason: string }

const PING_EVERY_MS = 10_000
const FRAME_GUESS = 20

const encode = (frame: Frame): Buffer => {
  const out = encodeHardware(frame)
  if (out instanceof FrameError) throw out
  return out
}

const hex = (frame: Frame) => encode(frame).subarray(0, 48).toString("hex").replace(/(..)/g, "$1 ").trim()

const describe = (frame: Frame) =>
  frame._tag === "Response"
    ? `RESPONSE id ${frame.id} status ${frame.status} (${statusName(frame.status) ?? "?"})`
    : `${commandName(frame.command) ?? frame.command} id ${frame.id} [${hex(frame)}]`

let base = 0n
const nowMs = () => Number(process.hrtime.bigint() - base) / 1e6
let host = "127.0.0.1"
let port = 0

const send = (message: FromWorker) => process.send?.(message)

// Counters shared by all devices of this worker, reset by each report.
let responses: Record<string, number> = {}
let messages: Record<string, number> = {}
let samples: Array<string> = []
let dropped = 0
let dropReasons: Array<string> = []
let pingsSent = 0
const takeStats = (): WorkerStats => {
  const stats = { responses, messages, samples, dropped, dropReasons, pingsSent }
  responses = {}
  messages = {}
  samples = []
  dropped = 0
  dropReasons = []
  pingsSent = 0
  return stats
}
const bump = (table: Record<string, number>, key: string) => {
  table[key] = (table[key] ?? 0) + 1
}

class Device {
  readonly spec: DeviceSpec
  readonly socket: Net.Socket
  readonly decoder: FrameDecoder = hardwareDecoder()
  /** Answers awaited by id: login and INTERNAL only. */
  readonly waiting = new Map<number, (status: number) => void>()
  nextId = 1
  nextPing: number
  closing = false
  dead = false
  // Rate mode.
  phase = 0
  due = 0
  // Flood mode: frames sent / given up since the flood began; `acked` is the app's count.
  sent = 0
  acked = 0
  givenUp = 0
  lastProgress = 0
  frameBytes = FRAME_GUESS

  constructor(spec: DeviceSpec, onGone: (reason: string) => void) {
    this.spec = spec
    this.nextPing = nowMs() + Math.random() * PING_EVERY_MS
    this.socket = Net.connect({ host, port })
    this.socket.setNoDelay(true)
    this.socket.on("data", (chunk: Buffer) => {
      const { frames, error } = this.decoder.push(chunk)
      for (const frame of frames) this.receive(frame)
      if (error) this.gone(`undecodable bytes from the server: ${error.message}`, onGone)
    })
    this.socket.on("error", (e) => this.gone(`socket error: ${e.message}`, onGone))
    this.socket.on("close", () => this.gone("closed by the server", onGone))
  }

  gone(reason: string, onGone: (reason: string) => void) {
    if (this.dead) return
    this.dead = true
    for (const resume of this.waiting.values()) resume(-1)
    this.waiting.clear()
    if (!this.closing) onGone(reason)
    this.socket.destroy()
  }

  receive(frame: Frame) {
    if (frame._tag === "Response") {
      const resume = this.waiting.get(frame.id)
      if (resume) {
        this.waiting.delete(frame.id)
        resume(frame.status)
      } else if (frame.status !== Status.OK) {
        bump(responses, statusName(frame.status) ?? `status ${frame.status}`)
        if (samples.length < 5) samples.push(`device ${this.spec.idx}: ${describe(frame)}`)
      }
      return
    }
    bump(messages, commandName(frame.command) ?? `command ${frame.command}`)
    if (samples.length < 5) samples.push(`device ${this.spec.idx}: ${describe(frame)}`)
  }

  id() {
    const id = this.nextId
    this.nextId = id === 0xffff ? 1 : id + 1
    return id
  }

  ask(frame: Frame, timeoutMs: number, what: string): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(frame.id)
        reject(new Error(`no answer to ${what} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.waiting.set(frame.id, (status) => {
        clearTimeout(timer)
        if (status === -1) reject(new Error(`connection lost while waiting for the answer to ${what}`))
        else resolve(status)
      })
      this.socket.write(encode(frame))
    })
  }

  async login(timeoutMs: number) {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`TCP connect not done within ${timeoutMs} ms`)), timeoutMs)
      this.socket.once("connect", () => {
        clearTimeout(timer)
        resolve()
      })
      this.socket.once("error", (e) => {
        clearTimeout(timer)
        reject(e)
      })
    })
    const login = await this.ask(fromFields(Command.HARDWARE_LOGIN, this.id(), [this.spec.token]), timeoutMs, "HARDWARE_LOGIN")
    if (login !== Status.OK) throw new Error(`HARDWARE_LOGIN answered status ${login} (${statusName(login) ?? "?"})`)
    const info = ["ver", "0.5.4", "h-beat", "10", "buff-in", "1024"]
    const internal = await this.ask(fromFields(Command.BLYNK_INTERNAL, this.id(), info), timeoutMs, "BLYNK_INTERNAL ver…")
    if (internal !== Status.OK) throw new Error(`BLYNK_INTERNAL answered status ${internal} (${statusName(internal) ?? "?"})`)
  }

  write(now: number) {
    this.socket.write(encode(fromFields(Command.HARDWARE, this.id(), ["vw", "1", now.toFixed(3)])))
  }

  /** Up to `n` writes in one socket write (one TCP segment for the server to read). */
  writeBatch(n: number, inWindow: (t: number) => boolean): number {
    const parts: Array<Buffer> = []
    let counted = 0
    for (let i = 0; i < n; i++) {
      const now = nowMs()
      const frame = encode(fromFields(Command.HARDWARE, this.id(), ["vw", "1", now.toFixed(3)]))
      this.frameBytes = frame.length
      parts.push(frame)
      if (inWindow(now)) counted++
    }
    this.socket.write(parts.length === 1 ? parts[0]! : Buffer.concat(parts))
    return counted
  }

  pingIfDue(now: number) {
    if (this.dead || now < this.nextPing) return
    this.nextPing = now + PING_EVERY_MS
    this.socket.write(encode(fromFields(Command.PING, this.id(), [])))
    pingsSent++
  }
}

let devices: Array<Device> = []

const onGone = (idx: number) => (reason: string) => {
  dropped++
  if (dropReasons.length < 5) dropReasons.push(`device ${idx}: ${reason}`)
}

// One timer pings every device when its 10 s are up (phases are random, so pings are spread).
setInterval(() => {
  const now = nowMs()
  for (const d of devices) d.pingIfDue(now)
}, 250).unref()

const connect = async (specs: ReadonlyArray<DeviceSpec>, concurrency: number, timeoutMs: number) => {
  const started = performance.now()
  const failures: Array<{ idx: number; reason: string }> = []
  devices = []
  let next = 0
  const one = async () => {
    while (next < specs.length) {
      const spec = specs[next++]!
      const device = new Device(spec, onGone(spec.idx))
      devices.push(device)
      try {
        await device.login(timeoutMs)
      } catch (e) {
        failures.push({ idx: spec.idx, reason: e instanceof Error ? e.message : String(e) })
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, one))
  // Keep the orchestrator's order, which is what `ack` counts follow.
  const byIdx = new Map(devices.map((d) => [d.spec.idx, d]))
  devices = specs.map((s) => byIdx.get(s.idx)!)
  send({ t: "connected", ok: specs.length - failures.length, failures, ms: performance.now() - started })
}

/** Each device writes `rate` frames a second on its own phase, from startMs until endMs. */
const runRate = (rate: number, startMs: number, warmEndMs: number, endMs: number) => {
  const period = 1000 / rate
  for (const d of devices) {
    d.phase = Math.random() * period
    d.due = 0
  }
  let sentInWindow = 0
  let sentTotal = 0
  let skipped = 0
  const timer = setInterval(() => {
    const now = nowMs()
    if (now >= endMs) {
      clearInterval(timer)
      send({ t: "done", sentInWindow, sentTotal, skipped, givenUp: 0, stats: takeStats() })
      return
    }
    if (now < startMs) return
    const inWindow = now >= warmEndMs
    for (const d of devices) {
      if (d.dead) continue
      const target = Math.floor((now - startMs - d.phase) / period) + 1
      // Never burst: more than 10 behind (~110 ms at 90 msg/s) means this process was starved; skip rather than flood
      // the server's per-socket quota, and say so.
      if (target - d.due > 10) {
        skipped += target - d.due - 10
        d.due = target - 10
      }
      while (d.due < target) {
        d.write(now)
        d.due++
        sentTotal++
        if (inWindow) sentInWindow++
      }
    }
  }, 2)
}

/**
 * As fast as the server takes it, but at most `capBytes` per device between the write and the
 * app's receipt (counted by the orchestrator and sent back as `ack`), so the figure is what the
 * server forwards rather than how much the buffers hold.
 */
let pumpAll: (() => void) | undefined
const runFlood = (capBytes: number, startMs: number, warmEndMs: number, endMs: number) => {
  const inWindow = (t: number) => t >= warmEndMs && t < endMs
  let sentInWindow = 0
  let sentTotal = 0
  let finished = false
  for (const d of devices) {
    d.sent = 0
    d.acked = 0
    d.givenUp = 0
    d.lastProgress = nowMs()
  }
  const pump = (d: Device) => {
    if (finished || d.dead || d.socket.writableLength > 64 * 1024) return
    const now = nowMs()
    if (now < startMs) return
    if (now >= endMs) return finish()
    const capFrames = Math.max(1, Math.floor(capBytes / d.frameBytes))
    const inflight = d.sent - d.acked - d.givenUp
    if (inflight > 0 && now - d.lastProgress > 2000) {
      // The app never got these: lost. Count them and go on, or this device would stall.
      d.givenUp += inflight
      d.lastProgress = now
    }
    const room = Math.min(capFrames - (d.sent - d.acked - d.givenUp), 512)
    if (room <= 0) return
    const counted = d.writeBatch(room, inWindow)
    d.sent += room
    sentTotal += room
    sentInWindow += counted
  }
  const finish = () => {
    if (finished) return
    finished = true
    clearInterval(timer)
    pumpAll = undefined
    const givenUp = devices.reduce((n, d) => n + d.givenUp, 0)
    send({ t: "done", sentInWindow, sentTotal, skipped: 0, givenUp, stats: takeStats() })
  }
  for (const d of devices) d.socket.on("drain", () => pump(d))
  pumpAll = () => {
    for (const d of devices) pump(d)
  }
  // Acks drive the pump; the timer only starts it and catches the end and lost frames.
  const timer = setInterval(() => {
    if (nowMs() >= endMs) finish()
    else pumpAll?.()
  }, 1)
}

const onAck = (counts: ReadonlyArray<number>) => {
  const now = nowMs()
  for (let i = 0; i < devices.length; i++) {
    const d = devices[i]!
    const c = counts[i] ?? 0
    if (c !== d.acked) {
      d.acked = c
      d.lastProgress = now
    }
  }
  pumpAll?.()
}

const close = async () => {
  for (const d of devices) d.closing = true
  await Promise.all(devices.map((d) =>
    new Promise<void>((resolve) => {
      if (d.dead || d.socket.destroyed) return resolve()
      d.socket.once("close", () => resolve())
      d.socket.end()
      setTimeout(() => {
        d.socket.destroy()
        resolve()
      }, 2000).unref()
    })
  ))
  devices = []
  send({ t: "closed", stats: takeStats() })
}

process.on("message", (raw) => {
  const message = raw as ToWorker
  try {
    switch (message.t) {
      case "init":
        base = BigInt(message.base)
        send({ t: "ready" })
        break
      case "connect":
        host = message.host
        port = message.port
        void connect(message.devices, message.concurrency, message.timeoutMs)
        break
      case "rate":
        runRate(message.rate, message.startMs, message.warmEndMs, message.endMs)
        break
      case "flood":
        runFlood(message.capBytes, message.startMs, message.warmEndMs, message.endMs)
        break
      case "ack":
        onAck(message.counts)
        break
      case "close":
        void close()
        break
    }
  } catch (e) {
    send({ t: "fatal", reason: e instanceof Error ? e.stack ?? e.message : String(e) })
  }
})

// The orchestrator going away ends this process too.
process.on("disconnect", () => process.exit(0))
