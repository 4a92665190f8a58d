/**
 * `npm run bench:route`: routing of hardware pin writes to the app through a real server process.
 *
 * The server runs as a child (`node src/main.ts serve`) on a fresh data directory, on free ports
 * bound to 127.0.0.1, on embedded PGlite or, with BENCH_DATABASE_URL set, on a fresh PostgreSQL
 * database `pinledger_bench_<pid>` (created on that server, dropped at the end). Accounts are made
 * with the CLI before the first start; dashboards and devices with the app protocol over TLS
 * (CREATE_DASH, CREATE_DEVICE, which answers with the device's token; protocol.md §2.1).
 *
 * Devices are plain TCP connections made by `--workers` forked load processes (bench/route-load.ts);
 * the app is one TLS connection per account in this process, which counts what arrives and the
 * latency from the send time each write carries in its value.
 *
 * Scenarios (each on its own server start, so one's heap does not colour the next; provisioning
 * has a start of its own too):
 *   1. `--devices` (350) devices writing `--rate` (90) msg/s each, under the default per-socket
 *      quota of 100 msg/s: forwarded msg/s, loss, p50/p99 latency.
 *   2. `--flood-devices` (10) devices as fast as the server takes it, PINLEDGER_MESSAGE_QUOTA high,
 *      with at most `--inflight-kb` per device between write and app receipt (each value in the
 *      list is one run): forwarded msg/s, p50/p99.
 *   3. `--idle` (10,000) logged-in devices that only ping every 10 s: server RSS per connection.
 * For each: events committed per second (GET /health `head`), server CPU (all threads, and its main
 * thread alone) and RSS from /proc, load-generator CPU, and how busy the whole machine was.
 *
 * Provisioning follows the reference limits (at most 50 devices per dashboard, 100 dashboards per
 * account): `--devices-per-dash` (50) devices per dashboard, `--dashes-per-account` (50) per account,
 * as many accounts as needed for max(devices, flood devices, idle) distinct devices.
 *
 * Flags: --quick (short runs, 1,000 idle), --scenarios 1,2,3, --workers N, --devices N, --rate N,
 * --flood-devices N, --inflight-kb 1,4,16, --idle N, --verbose (echo the server's log),
 * --server-prof (the server writes V8 CPU profiles to a temp folder, named at the end).
 * Prints a table, then `metric <name> <value>` lines. Exits non-zero, saying why, when a login
 * fails, the server dies or a load process fails.
 */
import { type ChildProcess, fork, spawn, spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { mkdtemp, rm } from "node:fs/promises"
import * as Http from "node:http"
import * as Net from "node:net"
import { cpus, tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import pg from "pg"
import { Command, commandName, Status, statusName } from "../src/adapters/blynk/Command.ts"
import { bodyFields, bodyText, encodeApp, type Frame, FrameError, fromFields } from "../src/adapters/blynk/Frame.ts"
import { appDecoder } from "../src/adapters/blynk/FrameDecoder.ts"
import { clientPasswordHash } from "../src/adapters/security/Passwords.ts"
import type { DeviceSpec, FromWorker, ToWorker, WorkerStats } from "./route-load.ts"

// ---------------------------------------------------------------------------------------------
// Options

const { values: flags } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    scenarios: { type: "string", default: "1,2,3" },
    workers: { type: "string", default: "2" },
    devices: { type: "string", default: "350" },
    rate: { type: "string", default: "90" },
    "flood-devices": { type: "string", default: "10" },
    "inflight-kb": { type: "string" },
    idle: { type: "string" },
    "devices-per-dash": { type: "string", default: "50" },
    "dashes-per-account": { type: "string", default: "50" },
    verbose: { type: "boolean", default: false },
    "server-prof": { type: "boolean", default: false }
  }
})

const quick = flags.quick
const int = (name: string, text: string) => {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} wants a whole number, got ${text}`)
  return n
}
const scenarios = new Set(flags.scenarios.split(",").map((s) => s.trim()))
const workerCount = Math.max(1, int("workers", flags.workers))
const rateDevices = int("devices", flags.devices)
const rate = int("rate", flags.rate)
const floodDevices = int("flood-devices", flags["flood-devices"])
const inflightKb = (flags["inflight-kb"] ?? (quick ? "4" : "1,4,16")).split(",").map((s) => int("inflight-kb", s.trim()))
const idleCount = int("idle", flags.idle ?? (quick ? "1000" : "10000"))
const perDash = Math.max(1, int("devices-per-dash", flags["devices-per-dash"]))
const perAccount = perDash * Math.max(1, int("dashes-per-account", flags["dashes-per-account"]))
const verbose = flags.verbose
/** With --server-prof, each server start writes a V8 CPU profile here (kept after the run). */
const profileDir = flags["server-prof"] ? join(tmpdir(), `pinledger-route-prof-${process.pid}`) : undefined

const durations = quick
  ? { rateWarm: 2, rateRun: 5, floodWarm: 2, floodRun: 5, idleSettle: 12 }
  : { rateWarm: 5, rateRun: 20, floodWarm: 3, floodRun: 15, idleSettle: 15 }

const repo = fileURLToPath(new URL("..", import.meta.url))
const password = "bench-password"
const emailOf = (account: number) => `bench${account}@pinledger.bench`
const HIGH_QUOTA = "1000000"

// ---------------------------------------------------------------------------------------------
// Time, /proc, and failure

const base = process.hrtime.bigint()
/** ms since `base` on the monotonic clock, which every process on the machine shares. */
const nowMs = () => Number(process.hrtime.bigint() - base) / 1e6
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const log = (text: string) => console.error(`[route ${(nowMs() / 1000).toFixed(1)}s] ${text}`)

class BenchFailure extends Error {}
const fail = (reason: string): never => {
  throw new BenchFailure(reason)
}

const clockTicks = (() => {
  const out = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" })
  const n = Number(out.stdout?.trim())
  return Number.isFinite(n) && n > 0 ? n : 100
})()

/** utime + stime in seconds, from a /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat file. */
const cpuSeconds = (statFile: string): number => {
  try {
    const text = readFileSync(statFile, "utf8")
    const rest = text.slice(text.lastIndexOf(")") + 2).split(" ")
    return (Number(rest[11]) + Number(rest[12])) / clockTicks
  } catch {
    return 0
  }
}

const rssKb = (pid: number): number => {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

const openFilesLimit = (pid: number): string => {
  try {
    const m = /Max open files\s+(\S+)\s+(\S+)/.exec(readFileSync(`/proc/${pid}/limits`, "utf8"))
    return m ? `${m[1]}/${m[2]}` : "?"
  } catch {
    return "?"
  }
}

/** Busy and total jiffies of the whole machine. */
const machineTicks = () => {
  const first = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = first.reduce((a, b) => a + b, 0)
  const idle = (first[3] ?? 0) + (first[4] ?? 0)
  return { busy: total - idle, total }
}

interface Sample {
  readonly t: number
  readonly server: number
  readonly serverMain: number
  readonly loadgen: number
  readonly bench: number
  readonly machineBusy: number
  readonly machineTotal: number
  readonly rss: number
  readonly head: number
}

interface Usage {
  readonly seconds: number
  /** Percent of one core. */
  readonly serverCpu: number
  readonly serverMainCpu: number
  readonly loadgenCpu: number
  readonly benchCpu: number
  /** Percent of one core, all processes (so at most 100 × cores). */
  readonly machineCpu: number
  /** The machine less server, load processes and this process: PostgreSQL, or anything else running. */
  readonly otherCpu: number
  readonly rssMb: number
  readonly eventsPerSecond: number
}

const usage = (a: Sample, b: Sample): Usage => {
  const s = (b.t - a.t) / 1000
  const pct = (x: number) => (100 * x) / s
  const cores = cpus().length
  const machineCpu = (100 * cores * (b.machineBusy - a.machineBusy)) / Math.max(1, b.machineTotal - a.machineTotal)
  const serverCpu = pct(b.server - a.server)
  const loadgenCpu = pct(b.loadgen - a.loadgen)
  const benchCpu = pct(b.bench - a.bench)
  return {
    seconds: s,
    serverCpu,
    serverMainCpu: pct(b.serverMain - a.serverMain),
    loadgenCpu,
    benchCpu,
    machineCpu,
    otherCpu: Math.max(0, machineCpu - serverCpu - loadgenCpu - benchCpu),
    rssMb: b.rss / 1024,
    eventsPerSecond: (b.head - a.head) / s
  }
}

// ---------------------------------------------------------------------------------------------
// Server process

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = Net.createServer()
    probe.once("error", reject)
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address()
      probe.close(() => (address && typeof address === "object" ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

interface Server {
  readonly label: string
  readonly child: ChildProcess
  readonly pid: number
  readonly httpPort: number
  readonly httpsPort: number
  readonly output: Array<string>
  /** Lines printed so far, and the warnings and errors among them (the first few). */
  linesSeen: number
  readonly warnings: Array<{ readonly line: number; readonly text: string }>
  stopping: boolean
}

let current: Server | undefined
/** Set when the server died on its own: every wait checks it. */
let serverDeath: string | undefined

const serverEnv = (dataDir: string, databaseUrl: string, extra: Record<string, string>): NodeJS.ProcessEnv => ({
  ...process.env,
  PINLEDGER_DATA_DIR: dataDir,
  PINLEDGER_BIND: "127.0.0.1",
  DATABASE_URL: databaseUrl,
  ...extra
})

const tail = (lines: ReadonlyArray<string>, n = 40) => lines.slice(-n).map((l) => `  | ${l}`).join("\n")

const startServer = async (label: string, dataDir: string, databaseUrl: string, extra: Record<string, string>): Promise<Server> => {
  const httpPort = await freePort()
  const httpsPort = await freePort()
  const env = serverEnv(dataDir, databaseUrl, {
    PINLEDGER_HTTP_PORT: String(httpPort),
    PINLEDGER_HTTPS_PORT: String(httpsPort),
    ...extra
  })
  // 10,000 idle connections need more descriptors than a default soft limit; raise it in the
  // child only (root may raise the hard limit too; otherwise take the hard limit).
  const child = spawn(
    "bash",
    [
      "-c",
      "ulimit -n 65536 2>/dev/null || ulimit -n $(ulimit -Hn); exec \"$@\"",
      "bash",
      process.execPath,
      // Extra Node flags for the server only, e.g. SERVER_NODE_ARGS="--trace-gc" with --verbose.
      ...(process.env.SERVER_NODE_ARGS ?? "").split(" ").filter(Boolean),
      ...(profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir, "--cpu-prof-name", `${label.replace(/\W+/g, "-")}.cpuprofile`] : []),
      "src/main.ts",
      "serve"
    ],
    { cwd: repo, env, stdio: ["ignore", "pipe", "pipe"] }
  )
  const server: Server = { label, child, pid: child.pid ?? 0, httpPort, httpsPort, output: [], linesSeen: 0, warnings: [], stopping: false }
  current = server
  serverDeath = undefined
  let listening = false
  const onLine = (line: string) => {
    if (line.length === 0) return
    server.output.push(line)
    server.linesSeen++
    if (/\b(WARN|ERROR|FATAL)\b/.test(line) && server.warnings.length < 200) server.warnings.push({ line: server.linesSeen, text: line })
    if (server.output.length > 400) server.output.splice(0, 100)
    if (verbose) console.error(`  [server] ${line}`)
    if (line.includes("Listening on")) listening = true
  }
  for (const stream of [child.stdout, child.stderr]) {
    let pending = ""
    stream?.setEncoding("utf8")
    stream?.on("data", (chunk: string) => {
      const lines = (pending + chunk).split("\n")
      pending = lines.pop() ?? ""
      for (const line of lines) onLine(line)
    })
  }
  child.on("exit", (code, signal) => {
    if (!server.stopping) {
      serverDeath = `the server (${label}) exited on its own: code ${code}, signal ${signal}\n${tail(server.output)}`
      log(serverDeath)
    }
  })
  const deadline = nowMs() + 90_000
  while (!listening) {
    if (serverDeath) fail(serverDeath)
    if (nowMs() > deadline) fail(`the server (${label}) did not print "Listening on" within 90 s\n${tail(server.output)}`)
    await sleep(50)
  }
  await health(server)
  log(`server ${label}: pid ${server.pid}, plain ${httpPort}, TLS ${httpsPort}, open files ${openFilesLimit(server.pid)}`)
  return server
}

const stopServer = async (server: Server) => {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return
  server.stopping = true
  const exited = new Promise<number | string | null>((resolve) =>
    server.child.once("exit", (code, signal) => resolve(code ?? signal))
  )
  const started = nowMs()
  server.child.kill("SIGTERM")
  // SIGTERM commits what is pending first; after a flood that can be a lot.
  const timer = setTimeout(() => server.child.kill("SIGKILL"), 120_000)
  const result = await exited
  clearTimeout(timer)
  const took = `${((nowMs() - started) / 1000).toFixed(1)} s`
  if (result !== 0) log(`server ${server.label} stopped with ${result} after ${took}\n${tail(server.output, 15)}`)
  else log(`server ${server.label} stopped (exit 0) after ${took}`)
  if (current === server) current = undefined
}

/** GET /health on the plain port: the log's head position. */
const health = (server: Server) =>
  new Promise<number>((resolve, reject) => {
    const req = Http.get({ host: "127.0.0.1", port: server.httpPort, path: "/health", timeout: 10_000 }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (c: string) => (body += c))
      res.on("end", () => {
        try {
          const parsed = JSON.parse(body) as { head?: unknown }
          if (res.statusCode !== 200 || typeof parsed.head !== "number") {
            reject(new Error(`GET /health answered ${res.statusCode}: ${body}`))
          } else resolve(parsed.head)
        } catch {
          reject(new Error(`GET /health answered ${res.statusCode}: ${body}`))
        }
      })
    })
    req.on("timeout", () => req.destroy(new Error("GET /health timed out")))
    req.on("error", reject)
  })

// ---------------------------------------------------------------------------------------------
// Load processes

interface Worker {
  readonly child: ChildProcess
  readonly pid: number
  readonly listeners: Map<FromWorker["t"], Array<(m: FromWorker) => void>>
  /** Devices of the last `connect`, in order (the order of `ack` counts). */
  specs: ReadonlyArray<DeviceSpec>
}

let workers: Array<Worker> = []
let workerDeath: string | undefined

const startWorkers = async () => {
  const script = fileURLToPath(new URL("./route-load.ts", import.meta.url))
  workers = Array.from({ length: workerCount }, () => {
    const child = fork(script, [], { execPath: process.execPath, stdio: ["ignore", "inherit", "inherit", "ipc"] })
    const worker: Worker = { child, pid: child.pid ?? 0, listeners: new Map(), specs: [] }
    child.on("message", (raw) => {
      const message = raw as FromWorker
      if (message.t === "fatal") workerDeath = `load process ${worker.pid} failed: ${message.reason}`
      const waiting = worker.listeners.get(message.t)
      const resume = waiting?.shift()
      resume?.(message)
    })
    child.on("exit", (code, signal) => {
      if (!stoppingWorkers) workerDeath = `load process ${worker.pid} exited: code ${code}, signal ${signal}`
    })
    return worker
  })
  await Promise.all(workers.map((w) => {
    const ready = next(w, "ready")
    tell(w, { t: "init", base: base.toString() })
    return ready
  }))
}

let stoppingWorkers = false
const stopWorkers = () => {
  stoppingWorkers = true
  for (const w of workers) if (w.child.connected) w.child.disconnect()
  for (const w of workers) if (w.child.exitCode === null) w.child.kill("SIGTERM")
  workers = []
}

const tell = (w: Worker, message: ToWorker) => {
  w.child.send(message)
}

/** The next message of type `t` from `w`, failing if the server or a load process dies meanwhile. */
const next = <T extends FromWorker["t"]>(w: Worker, t: T): Promise<Extract<FromWorker, { t: T }>> =>
  new Promise((resolve, reject) => {
    const list = w.listeners.get(t) ?? []
    w.listeners.set(t, list)
    const watch = setInterval(() => {
      const reason = serverDeath ?? workerDeath
      if (reason) {
        clearInterval(watch)
        reject(new BenchFailure(reason))
      }
    }, 100)
    list.push((m) => {
      clearInterval(watch)
      resolve(m as Extract<FromWorker, { t: T }>)
    })
  })

const mergeStats = (all: ReadonlyArray<WorkerStats>) => {
  const responses: Record<string, number> = {}
  const messages: Record<string, number> = {}
  const samples: Array<string> = []
  const dropReasons: Array<string> = []
  let dropped = 0
  let pings = 0
  for (const s of all) {
    for (const [k, v] of Object.entries(s.responses)) responses[k] = (responses[k] ?? 0) + v
    for (const [k, v] of Object.entries(s.messages)) messages[k] = (messages[k] ?? 0) + v
    samples.push(...s.samples)
    dropReasons.push(...s.dropReasons)
    dropped += s.dropped
    pings += s.pingsSent
  }
  return { responses, messages, samples: samples.slice(0, 6), dropReasons: dropReasons.slice(0, 6), dropped, pings }
}

/** Devices heard or lost while closing: answers that came after a run ended belong to it too. */
const closingNotes = (stats: ReturnType<typeof mergeStats>): Array<string> => [
  ...(Object.keys(stats.responses).length > 0 ? [`after the run, responses to devices: ${JSON.stringify(stats.responses)}`] : []),
  ...(Object.keys(stats.messages).length > 0 ? [`after the run, messages to devices: ${JSON.stringify(stats.messages)}`] : []),
  ...stats.samples.map((s) => `  ${s}`),
  ...(stats.dropped > 0 ? [`after the run, ${stats.dropped} device connections dropped: ${stats.dropReasons.join("; ")}`] : [])
]

/** Logs the devices in, spread over the load processes; any failure ends the bench. */
const connectDevices = async (server: Server, specs: ReadonlyArray<DeviceSpec>, concurrencyPerWorker: number) => {
  for (const w of workers) w.specs = []
  const slices = workers.map((_, i) => specs.filter((_, j) => j % workers.length === i))
  const started = nowMs()
  const results = await Promise.all(workers.map((w, i) => {
    w.specs = slices[i]!
    const done = next(w, "connected")
    tell(w, {
      t: "connect",
      host: "127.0.0.1",
      port: server.httpPort,
      devices: w.specs,
      concurrency: concurrencyPerWorker,
      timeoutMs: 30_000
    })
    return done
  }))
  const failures = results.flatMap((r) => r.failures)
  if (failures.length > 0) {
    const first = failures.slice(0, 5).map((f) => `  device ${f.idx}: ${f.reason}`).join("\n")
    fail(`${failures.length} of ${specs.length} device logins failed, e.g.\n${first}`)
  }
  return { seconds: (nowMs() - started) / 1000 }
}

const closeDevices = async () => {
  const closed = await Promise.all(workers.map((w) => {
    const done = next(w, "closed")
    tell(w, { t: "close" })
    return done
  }))
  return mergeStats(closed.map((c) => c.stats))
}

// ---------------------------------------------------------------------------------------------
// The app side (TLS, app framing)

interface Window {
  readonly warmEnd: number
  readonly end: number
  readonly latencies: Array<number>
  /** Received with a receive time in the window (throughput). */
  byReceive: number
  /** Received with a send time in the window (loss, latency). */
  bySend: number
  readonly perSecond: Array<number>
  /** Worst latency among the writes received in each second of the window. */
  readonly worstPerSecond: Array<number>
}

let window: Window | undefined
/** Forwards received from each device (by global index = device id) since the last reset. */
let received = new Int32Array(0)
let receivedTotal = 0
/** App-side frames other than the forwarded writes, by name. */
const appOther: Record<string, number> = {}
const appSamples: Array<string> = []
let malformedForwards = 0

const encodeAppFrame = (frame: Frame): Buffer => {
  const out = encodeApp(frame)
  if (out instanceof FrameError) throw out
  return out
}

const describeApp = (frame: Frame) =>
  frame._tag === "Response"
    ? `RESPONSE id ${frame.id} status ${frame.status} (${statusName(frame.status) ?? "?"})`
    : `${commandName(frame.command) ?? frame.command} id ${frame.id} body ${JSON.stringify(bodyText(frame.body).slice(0, 120))}`

const onForward = (frame: Frame & { _tag: "Message" }) => {
  const fields = bodyFields(frame.body)
  const target = fields[0] ?? ""
  const dash = target.indexOf("-")
  const deviceId = dash < 0 ? 0 : Number(target.slice(dash + 1))
  const value = fields[3]
  if (fields[1] !== "vw" || value === undefined || !Number.isInteger(deviceId)) {
    malformedForwards++
    if (appSamples.length < 6) appSamples.push(`unexpected forward: ${describeApp(frame)}`)
    return
  }
  receivedTotal++
  if (deviceId >= 0 && deviceId < received.length) received[deviceId] = received[deviceId]! + 1
  const w = window
  if (!w) return
  const t = nowMs()
  if (t >= w.warmEnd && t < w.end) {
    w.byReceive++
    const s = Math.floor((t - w.warmEnd) / 1000)
    w.perSecond[s] = (w.perSecond[s] ?? 0) + 1
    const latency = t - Number(value)
    if (latency > (w.worstPerSecond[s] ?? 0)) w.worstPerSecond[s] = latency
  }
  const sent = Number(value)
  if (sent >= w.warmEnd && sent < w.end) {
    w.bySend++
    w.latencies.push(t - sent)
  }
}

class App {
  readonly email: string
  socket: Tls.TLSSocket | undefined
  readonly decoder = appDecoder()
  readonly waiting = new Map<number, { command: number; resolve: (f: Frame) => void; reject: (e: Error) => void }>()
  nextId = 2000
  closing = false
  dead: string | undefined
  pinger: ReturnType<typeof setInterval> | undefined

  constructor(email: string) {
    this.email = email
  }

  async connect(server: Server) {
    const deadline = nowMs() + 15_000
    for (;;) {
      try {
        this.socket = await new Promise<Tls.TLSSocket>((resolve, reject) => {
          const s = Tls.connect({ host: "127.0.0.1", port: server.httpsPort, rejectUnauthorized: false }, () => resolve(s))
          s.once("error", reject)
        })
        break
      } catch (e) {
        if (nowMs() > deadline) fail(`app: TLS connection to port ${server.httpsPort} failed: ${(e as Error).message}`)
        await sleep(200)
      }
    }
    const socket = this.socket
    socket.setNoDelay(true)
    socket.on("data", (chunk: Buffer) => {
      const { frames, error } = this.decoder.push(chunk)
      for (const frame of frames) this.receive(frame)
      if (error) this.lost(`undecodable bytes from the server: ${error.message}`)
    })
    socket.on("error", (e) => this.lost(`socket error: ${e.message}`))
    socket.on("close", () => this.lost("closed by the server"))
    // App sockets idle out after 300 s (§3.5); a scenario is shorter, but a slow setup might not be.
    this.pinger = setInterval(() => {
      if (!this.dead) socket.write(encodeAppFrame(fromFields(Command.PING, this.id(), [])))
    }, 30_000)
  }

  lost(reason: string) {
    if (this.dead) return
    this.dead = reason
    if (this.pinger) clearInterval(this.pinger)
    for (const w of this.waiting.values()) w.reject(new BenchFailure(`app ${this.email}: ${reason}`))
    this.waiting.clear()
    if (!this.closing) log(`app ${this.email}: ${reason}`)
  }

  receive(frame: Frame) {
    const waiting = this.waiting.get(frame.id)
    if (waiting && (frame._tag === "Response" || frame.command === waiting.command)) {
      this.waiting.delete(frame.id)
      waiting.resolve(frame)
      return
    }
    if (frame._tag === "Message" && frame.command === Command.HARDWARE) return onForward(frame)
    const name = frame._tag === "Response"
      ? `RESPONSE ${statusName(frame.status) ?? frame.status}`
      : commandName(frame.command) ?? `command ${frame.command}`
    appOther[name] = (appOther[name] ?? 0) + 1
    // HARDWARE_CONNECTED, DEVICE_OFFLINE and app sync are expected; keep a sample of the rest.
    const expected = frame._tag === "Message" &&
      [Command.HARDWARE_CONNECTED, Command.DEVICE_OFFLINE, Command.APP_SYNC].includes(frame.command as 4)
    if (!expected && !(frame._tag === "Response" && frame.status === Status.OK) && appSamples.length < 6) {
      appSamples.push(`app ${this.email}: ${describeApp(frame)}`)
    }
  }

  id(): number {
    let id = this.nextId
    while (this.waiting.has(id)) id = id >= 60_000 ? 2000 : id + 1
    this.nextId = id >= 60_000 ? 2000 : id + 1
    return id
  }

  request(command: number, fields: ReadonlyArray<string>, what: string, id = this.id(), timeoutMs = 60_000): Promise<Frame> {
    if (this.dead) return Promise.reject(new BenchFailure(`app ${this.email}: ${this.dead}`))
    const socket = this.socket ?? fail("app: not connected")
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id)
        reject(new BenchFailure(`app ${this.email}: no answer to ${what} (id ${id}) within ${timeoutMs / 1000} s`))
      }, timeoutMs)
      this.waiting.set(id, {
        command,
        resolve: (f) => {
          clearTimeout(timer)
          resolve(f)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        }
      })
      socket.write(encodeAppFrame(fromFields(command, id, fields)))
    })
  }

  /** A request that must be answered by RESPONSE with one of `ok`. */
  async expectStatus(command: number, fields: ReadonlyArray<string>, what: string, ok: ReadonlyArray<number> = [Status.OK], id?: number) {
    const answer = await this.request(command, fields, what, id)
    if (answer._tag !== "Response" || !ok.includes(answer.status)) {
      fail(`app ${this.email}: ${what} answered ${describeApp(answer)}, expected ${ok.map((s) => statusName(s) ?? s).join(" or ")}`)
    }
    return answer
  }

  async login(server: Server) {
    await this.connect(server)
    const hash = clientPasswordHash(this.email, password)
    await this.expectStatus(Command.LOGIN, [this.email, hash, "Android", "2.27.0", "Blynk"], "LOGIN", [Status.OK], 1)
  }

  close() {
    this.closing = true
    if (this.pinger) clearInterval(this.pinger)
    this.socket?.end()
  }
}

// ---------------------------------------------------------------------------------------------
// Provisioning

interface Plan {
  readonly account: number
  readonly dashes: ReadonlyArray<number>
  /** Global device indexes with their dashboard. */
  readonly devices: ReadonlyArray<{ readonly idx: number; readonly dashId: number }>
}

const plan = (total: number): Array<Plan> => {
  const plans: Array<Plan> = []
  for (let account = 0; account * perAccount < total; account++) {
    const first = account * perAccount
    const devices = Array.from({ length: Math.min(perAccount, total - first) }, (_, i) => ({
      idx: first + i,
      dashId: 1 + Math.floor(i / perDash)
    }))
    plans.push({ account, dashes: [...new Set(devices.map((d) => d.dashId))], devices })
  }
  return plans
}

const createAccounts = (plans: ReadonlyArray<Plan>, dataDir: string, databaseUrl: string) => {
  for (const p of plans) {
    const out = spawnSync(
      process.execPath,
      ["src/main.ts", "account", "create", "--email", emailOf(p.account), "--password", password],
      { cwd: repo, env: serverEnv(dataDir, databaseUrl, {}), encoding: "utf8", timeout: 180_000 }
    )
    if (out.status !== 0) {
      fail(`account create ${emailOf(p.account)} failed (status ${out.status}, ${out.error?.message ?? ""}):\n${out.stdout}\n${out.stderr}`)
    }
  }
}

/** Pipelined app requests, at most `window` outstanding. */
const pipelined = async <A>(items: ReadonlyArray<A>, window: number, run: (a: A) => Promise<void>) => {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(window, items.length) }, async () => {
    while (next < items.length) await run(items[next++]!)
  }))
}

const provision = async (app: App, p: Plan): Promise<Array<DeviceSpec>> => {
  for (const dashId of p.dashes) {
    await app.expectStatus(Command.CREATE_DASH, [JSON.stringify({ id: dashId, name: `bench-${dashId}` })], `CREATE_DASH ${dashId}`)
  }
  const specs: Array<DeviceSpec> = []
  await pipelined(p.devices, 16, async ({ dashId, idx }) => {
    const json = JSON.stringify({ id: idx, name: `d${idx}`, boardType: "ESP32" })
    const answer = await app.request(Command.CREATE_DEVICE, [String(dashId), json], `CREATE_DEVICE ${idx}`)
    if (answer._tag !== "Message" || answer.command !== Command.CREATE_DEVICE) {
      fail(`app ${app.email}: CREATE_DEVICE ${dashId} ${json} answered ${describeApp(answer)}`)
    }
    const body = bodyText((answer as Frame & { _tag: "Message" }).body)
    let token: unknown
    try {
      token = (JSON.parse(body) as { token?: unknown }).token
    } catch {
      fail(`app ${app.email}: CREATE_DEVICE answer is not JSON: ${JSON.stringify(body.slice(0, 200))}`)
    }
    if (typeof token !== "string" || token.length !== 32) {
      fail(`app ${app.email}: CREATE_DEVICE answer has no 32-character token: ${JSON.stringify(body.slice(0, 200))}`)
    }
    specs.push({ idx, token: token as string })
  })
  return specs.sort((a, b) => a.idx - b.idx)
}

/** Logs every account's app in and activates every dashboard (OK, or DEVICE_NOT_IN_NETWORK when no device is online). */
const appsFor = async (server: Server, plans: ReadonlyArray<Plan>) => {
  const apps: Array<App> = []
  for (const p of plans) {
    const app = new App(emailOf(p.account))
    liveApps.push(app)
    await app.login(server)
    apps.push(app)
  }
  return apps
}

/** Every app made, so that a failure can close them before stopping the server. */
const liveApps: Array<App> = []

const activate = async (apps: ReadonlyArray<App>, plans: ReadonlyArray<Plan>) => {
  for (const [i, p] of plans.entries()) {
    for (const dashId of p.dashes) {
      await apps[i]!.expectStatus(Command.ACTIVATE_DASHBOARD, [String(dashId)], `ACTIVATE_DASHBOARD ${dashId}`, [
        Status.OK,
        Status.DEVICE_NOT_IN_NETWORK
      ])
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Measurements

const sample = async (server: Server): Promise<Sample> => {
  const head = await health(server)
  const m = machineTicks()
  const self = process.cpuUsage()
  return {
    t: nowMs(),
    server: cpuSeconds(`/proc/${server.pid}/stat`),
    serverMain: cpuSeconds(`/proc/${server.pid}/task/${server.pid}/stat`),
    loadgen: workers.reduce((n, w) => n + cpuSeconds(`/proc/${w.pid}/stat`), 0),
    bench: (self.user + self.system) / 1e6,
    machineBusy: m.busy,
    machineTotal: m.total,
    rss: rssKb(server.pid),
    head
  }
}

/**
 * Waits (up to 20 s) for the machine to calm down before a run, e.g. for the server and the
 * database to finish committing the previous run's backlog. Returns how busy it still was over the
 * last second, whole machine and server, in percent of one core.
 */
const settle = async (server: Server) => {
  const deadline = nowMs() + 20_000
  for (;;) {
    const a = machineTicks()
    const sa = cpuSeconds(`/proc/${server.pid}/stat`)
    const t = nowMs()
    await sleep(1000)
    const b = machineTicks()
    const machine = (100 * cpus().length * (b.busy - a.busy)) / Math.max(1, b.total - a.total)
    const serverCpu = (100 * (cpuSeconds(`/proc/${server.pid}/stat`) - sa)) / ((nowMs() - t) / 1000)
    if (machine < 25 || nowMs() > deadline) return { machine, server: serverCpu }
  }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

interface RouteResult {
  readonly name: string
  readonly sent: number
  readonly received: number
  readonly forwardedPerSecond: number
  readonly perSecondMin: number
  readonly perSecondMax: number
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly usage: Usage
  /** Events/s from the end of the window until the writes had all arrived (commit backlog). */
  readonly drainEventsPerSecond: number
  readonly notes: Array<string>
}

const waitUntil = async (at: number) => {
  while (nowMs() < at) {
    if (serverDeath) fail(serverDeath)
    if (workerDeath) fail(workerDeath)
    await sleep(Math.min(100, Math.max(1, at - nowMs())))
  }
}

/** Runs one timed load (rate or flood) and measures it. */
const measure = async (
  server: Server,
  name: string,
  warm: number,
  run: number,
  start: (startMs: number, warmEndMs: number, endMs: number) => void
): Promise<RouteResult> => {
  const busyBefore = await settle(server)
  const logMark = server.linesSeen
  const startMs = nowMs() + 300
  const warmEnd = startMs + warm * 1000
  const end = warmEnd + run * 1000
  received.fill(0)
  const w: Window = { warmEnd, end, latencies: [], byReceive: 0, bySend: 0, perSecond: [], worstPerSecond: [] }
  window = w
  const done = workers.map((wk) => next(wk, "done"))
  start(startMs, warmEnd, end)
  await waitUntil(warmEnd)
  const a = await sample(server)
  await waitUntil(end)
  const b = await sample(server)
  const reports = await Promise.all(done)
  const sentInWindow = reports.reduce((n, r) => n + r.sentInWindow, 0)
  // Let what was sent in the window arrive: until all has, or no forward at all came for 3 s
  // (a backlog from the warm-up may still be arriving first), or 60 s have passed.
  let last = receivedTotal
  let lastChange = nowMs()
  const drainDeadline = nowMs() + 60_000
  while (w.bySend < sentInWindow && nowMs() - lastChange < 3000 && nowMs() < drainDeadline) {
    if (serverDeath) fail(serverDeath)
    await sleep(100)
    if (receivedTotal !== last) {
      last = receivedTotal
      lastChange = nowMs()
    }
  }
  const drainSeconds = (nowMs() - end) / 1000
  const c = await sample(server)
  window = undefined
  const sorted = Float64Array.from(w.latencies).sort()
  const stats = mergeStats(reports.map((r) => r.stats))
  const notes: Array<string> = []
  if (w.bySend < sentInWindow) notes.push(`stopped waiting for the rest ${fmt(drainSeconds, 1)} s after the window closed`)
  else if (drainSeconds > 1) notes.push(`the last writes of the window arrived ${fmt(drainSeconds, 1)} s after it closed`)
  if (busyBefore.machine >= 25) {
    notes.push(
      `the machine was still ${fmt(busyBefore.machine)} % busy (of one core; the server ${fmt(busyBefore.server)} %) after 20 s of waiting before this run`
    )
  }
  const skipped = reports.reduce((n, r) => n + r.skipped, 0)
  const givenUp = reports.reduce((n, r) => n + r.givenUp, 0)
  if (skipped > 0) notes.push(`load generator fell behind: ${skipped} writes skipped`)
  if (givenUp > 0) notes.push(`${givenUp} writes never reached the app (given up after 2 s)`)
  if (Object.keys(stats.responses).length > 0) notes.push(`responses to devices: ${JSON.stringify(stats.responses)}`)
  if (Object.keys(stats.messages).length > 0) notes.push(`messages to devices: ${JSON.stringify(stats.messages)}`)
  for (const s of stats.samples) notes.push(`  ${s}`)
  if (stats.dropped > 0) notes.push(`${stats.dropped} device connections dropped: ${stats.dropReasons.join("; ")}`)
  const warnings = server.warnings.filter((w) => w.line > logMark)
  if (warnings.length > 0) notes.push(`server warnings/errors during the run: ${warnings.length}, first: ${warnings[0]!.text.slice(0, 300)}`)
  const full = w.perSecond.slice(0, run)
  const mean = w.byReceive / run
  const slow = full.flatMap((n, i) => n < 0.8 * mean || (w.worstPerSecond[i] ?? 0) > 500 ? [i] : [])
  if (slow.length > 0) {
    notes.push(
      `uneven seconds (forwarded < 80 % of the mean, or a write over 500 ms): ` +
        slow.slice(0, 8).map((i) => `s${i}: ${full[i] ?? 0} msgs, worst ${fmt(w.worstPerSecond[i] ?? NaN)} ms`).join("; ")
    )
  }
  return {
    name,
    sent: sentInWindow,
    received: w.bySend,
    forwardedPerSecond: w.byReceive / run,
    perSecondMin: full.length === run ? Math.min(...full) : 0,
    perSecondMax: Math.max(0, ...full),
    p50: percentile(Array.from(sorted), 50),
    p99: percentile(Array.from(sorted), 99),
    max: sorted.length > 0 ? sorted[sorted.length - 1]! : NaN,
    usage: usage(a, b),
    drainEventsPerSecond: (c.head - b.head) / Math.max(0.001, (c.t - b.t) / 1000),
    notes
  }
}

// ---------------------------------------------------------------------------------------------
// Main

interface IdleResult {
  readonly connections: number
  readonly loginSeconds: number
  readonly rssBeforeKb: number
  readonly rssAfterKb: number
  readonly kbPerDevice: number
  readonly usage: Usage
  readonly notes: Array<string>
}

const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const rssSamples = async (server: Server, n: number) => {
  const out: Array<number> = []
  for (let i = 0; i < n; i++) {
    if (serverDeath) fail(serverDeath)
    out.push(rssKb(server.pid))
    if (i < n - 1) await sleep(1000)
  }
  return median(out)
}

let dataDir: string | undefined
let benchDatabase: string | undefined
let adminUrl: string | undefined

const cleanup = async () => {
  for (const app of liveApps) app.close()
  if (current) await stopServer(current).catch(() => undefined)
  stopWorkers()
  if (benchDatabase && adminUrl) {
    const client = new pg.Client({ connectionString: adminUrl })
    try {
      await client.connect()
      await client.query(`DROP DATABASE IF EXISTS ${benchDatabase} WITH (FORCE)`)
    } catch (e) {
      log(`could not drop database ${benchDatabase}: ${(e as Error).message}`)
    } finally {
      await client.end().catch(() => undefined)
    }
    benchDatabase = undefined
  }
  if (dataDir) await rm(dataDir, { recursive: true, force: true })
  dataDir = undefined
}

const fmt = (x: number, digits = 0) => Number.isFinite(x) ? x.toFixed(digits) : "-"

const main = async () => {
  const benchUrl = process.env.BENCH_DATABASE_URL
  dataDir = await mkdtemp(join(tmpdir(), "pinledger-route-"))
  let databaseUrl = ""
  if (benchUrl) {
    benchDatabase = `pinledger_bench_${process.pid}`
    const admin = new URL(benchUrl)
    adminUrl = admin.toString()
    const client = new pg.Client({ connectionString: adminUrl })
    await client.connect()
    await client.query(`DROP DATABASE IF EXISTS ${benchDatabase} WITH (FORCE)`)
    await client.query(`CREATE DATABASE ${benchDatabase}`)
    await client.end()
    const url = new URL(benchUrl)
    url.pathname = `/${benchDatabase}`
    databaseUrl = url.toString()
  }
  const databaseLabel = benchUrl ? `PostgreSQL ${new URL(benchUrl).host}/${benchDatabase}` : "embedded PGlite"
  const totalDevices = Math.max(
    scenarios.has("1") ? rateDevices : 0,
    scenarios.has("2") ? floodDevices : 0,
    scenarios.has("3") ? idleCount : 0
  )
  const plans = plan(totalDevices)
  log(`${databaseLabel}; ${totalDevices} devices in ${plans.length} account(s), ${perDash} per dashboard; ${workerCount} load process(es)`)
  log(`open files: bench ${openFilesLimit(process.pid)} (each load process holds its share of the devices)`)

  createAccounts(plans, dataDir, databaseUrl)
  log(`accounts created with the CLI`)
  await startWorkers()
  received = new Int32Array(totalDevices)

  // Provisioning, on a server without the quota (an app may send only 100 frames a second).
  const highQuota = { PINLEDGER_MESSAGE_QUOTA: HIGH_QUOTA }
  let server = await startServer("provision", dataDir, databaseUrl, highQuota)
  let apps = await appsFor(server, plans)
  const provisionStart = nowMs()
  const specs: Array<DeviceSpec> = []
  for (const [i, p] of plans.entries()) specs.push(...await provision(apps[i]!, p))
  log(`provisioned ${specs.length} devices in ${((nowMs() - provisionStart) / 1000).toFixed(1)} s`)
  await activate(apps, plans)
  for (const app of apps) app.close()
  await stopServer(server)

  // Scenario 1 before the flood, so that the database is not still digesting a flood meanwhile.
  const results: Array<RouteResult> = []
  if (scenarios.has("1")) {
    server = await startServer("350x90", dataDir, databaseUrl, {})
    apps = await appsFor(server, plans)
    await activate(apps, plans)
    const login = await connectDevices(server, specs.slice(0, rateDevices), 32)
    log(`scenario 1: ${rateDevices} devices logged in (${fmt(rateDevices / login.seconds)} logins/s); ${rate} msg/s each, ${durations.rateWarm} s warm-up + ${durations.rateRun} s`)
    const r = await measure(server, `${rateDevices} devices x ${rate} msg/s, default quota`, durations.rateWarm, durations.rateRun, (s, we, e) => {
      for (const w of workers) tell(w, { t: "rate", rate, startMs: s, warmEndMs: we, endMs: e })
    })
    results.push(r)
    r.notes.push(...closingNotes(await closeDevices()))
    for (const app of apps) app.close()
    await stopServer(server)
  }

  if (scenarios.has("2")) {
    server = await startServer("flood", dataDir, databaseUrl, highQuota)
    apps = await appsFor(server, plans)
    await activate(apps, plans)
    await connectDevices(server, specs.slice(0, floodDevices), 16)
    for (const kb of inflightKb) {
      log(`scenario 2: ${floodDevices} devices, unlimited, ≤ ${kb} KB in flight each, ${durations.floodWarm} s warm-up + ${durations.floodRun} s`)
      const acks = setInterval(() => {
        for (const w of workers) tell(w, { t: "ack", counts: w.specs.map((s) => received[s.idx] ?? 0) })
      }, 5)
      try {
        results.push(await measure(server, `${floodDevices} devices, no quota, ≤${kb} KB in flight/device`, durations.floodWarm, durations.floodRun, (s, we, e) => {
          for (const w of workers) tell(w, { t: "flood", capBytes: kb * 1024, startMs: s, warmEndMs: we, endMs: e })
        }))
      } finally {
        clearInterval(acks)
      }
    }
    const closing = closingNotes(await closeDevices())
    results[results.length - 1]?.notes.push(...closing)
    for (const app of apps) app.close()
    await stopServer(server)
  }

  // Run 3: idle connections.
  let idle: IdleResult | undefined
  if (scenarios.has("3")) {
    server = await startServer("idle", dataDir, databaseUrl, {})
    apps = await appsFor(server, plans)
    await activate(apps, plans)
    await sleep(3000)
    const before = await rssSamples(server, 3)
    log(`scenario 3: RSS before ${fmt(before / 1024, 1)} MB; logging in ${idleCount} idle devices`)
    const login = await connectDevices(server, specs.slice(0, idleCount), 64)
    const a = await sample(server)
    log(`scenario 3: ${idleCount} devices logged in in ${fmt(login.seconds, 1)} s; holding ${durations.idleSettle} s (pings every 10 s)`)
    await waitUntil(nowMs() + durations.idleSettle * 1000)
    const b = await sample(server)
    const after = await rssSamples(server, 5)
    const stats = await closeDevices()
    const notes: Array<string> = []
    if (Object.keys(stats.responses).length > 0) notes.push(`responses to devices: ${JSON.stringify(stats.responses)}`)
    if (Object.keys(stats.messages).length > 0) notes.push(`messages to devices: ${JSON.stringify(stats.messages)}`)
    for (const s of stats.samples) notes.push(`  ${s}`)
    if (stats.dropped > 0) notes.push(`${stats.dropped} idle connections dropped: ${stats.dropReasons.join("; ")}`)
    idle = {
      connections: idleCount,
      loginSeconds: login.seconds,
      rssBeforeKb: before,
      rssAfterKb: after,
      kbPerDevice: (after - before) / idleCount,
      usage: usage(a, b),
      notes
    }
    for (const app of apps) app.close()
    await stopServer(server)
  }

  // Report.
  console.log("")
  console.log(`Routing device -> app through the server (${databaseLabel}; ${workerCount} load processes; ${cpus().length} cores)`)
  const rows: Array<Array<string>> = [[
    "scenario",
    "forwarded msg/s",
    "1-s min..max",
    "sent",
    "received",
    "loss %",
    "p50 ms",
    "p99 ms",
    "max ms",
    "events/s",
    "server CPU % (main)",
    "server RSS MB",
    "loadgen CPU %",
    "app side CPU %",
    "other CPU %",
    "machine CPU %"
  ]]
  for (const r of results) {
    rows.push([
      r.name,
      fmt(r.forwardedPerSecond),
      `${r.perSecondMin}..${r.perSecondMax}`,
      `${r.sent}`,
      `${r.received}`,
      fmt(r.sent > 0 ? (100 * (r.sent - r.received)) / r.sent : 0, 3),
      fmt(r.p50, 1),
      fmt(r.p99, 1),
      fmt(r.max, 0),
      fmt(r.usage.eventsPerSecond),
      `${fmt(r.usage.serverCpu)} (${fmt(r.usage.serverMainCpu)})`,
      fmt(r.usage.rssMb),
      fmt(r.usage.loadgenCpu),
      fmt(r.usage.benchCpu),
      fmt(r.usage.otherCpu),
      `${fmt(r.usage.machineCpu)} of ${cpus().length * 100}`
    ])
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  if (results.length > 0) for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join("  "))
  for (const r of results) {
    if (r.drainEventsPerSecond > 0) console.log(`${r.name}: after the window, commits went on at ${fmt(r.drainEventsPerSecond)} events/s while the last writes arrived`)
    for (const n of r.notes) console.log(`${r.name}: ${n}`)
  }
  if (idle) {
    console.log("")
    console.log(
      `idle: ${idle.connections} device connections (logged in, PING every 10 s), logged in in ${fmt(idle.loginSeconds, 1)} s ` +
        `(${fmt(idle.connections / idle.loginSeconds)}/s); server RSS ${fmt(idle.rssBeforeKb / 1024, 1)} MB -> ${fmt(idle.rssAfterKb / 1024, 1)} MB ` +
        `= ${fmt(idle.kbPerDevice, 1)} KB per connection; then while idle: server CPU ${fmt(idle.usage.serverCpu)} %, ${fmt(idle.usage.eventsPerSecond)} events/s`
    )
    for (const n of idle.notes) console.log(`idle: ${n}`)
  }
  if (Object.keys(appOther).length > 0) console.log(`app side, other frames received: ${JSON.stringify(appOther)}`)
  if (malformedForwards > 0) console.log(`app side: ${malformedForwards} HARDWARE frames that were not 'dash-device vw pin value'`)
  for (const s of appSamples) console.log(`  ${s}`)
  console.log("")
  const flood = results.filter((r) => r.name.includes("no quota"))
  if (flood.length > 0) console.log(`metric route_forwarded_mps ${fmt(Math.max(...flood.map((r) => r.forwardedPerSecond)))}`)
  const steady = results.find((r) => !r.name.includes("no quota"))
  if (steady) console.log(`metric route_p99_ms_350x90 ${fmt(steady.p99, 1)}`)
  if (idle) console.log(`metric idle_rss_kb_per_device ${fmt(idle.kbPerDevice, 1)}`)
  if (profileDir) console.error(`server CPU profiles: ${profileDir}`)
}

let exiting = false
const exit = async (code: number) => {
  if (exiting) return
  exiting = true
  await cleanup().catch((e) => log(`cleanup: ${(e as Error).message}`))
  process.exit(code)
}
process.on("SIGINT", () => void exit(130))
process.on("SIGTERM", () => void exit(143))

main().then(
  () => exit(0),
  (error) => {
    console.error(error instanceof BenchFailure ? `bench:route failed: ${error.message}` : error)
    return exit(1)
  }
)
