/**
 * `npm run bench:replay`: how fast the pin projections are rebuilt from the log, and how fast a
 * chart's day of minute rollups is read out of a big history (issue 5 §5).
 *
 *   1. Appends `--writes` (1,000,000) pin writes as `PinsWritten` events through the event store,
 *      one append per event, each with its own time (the metadata's), in the batch sizes the
 *      device log makes: about half the events carry one write, most others two or three, a few
 *      (devices writing faster than the log's interval) up to fifty; 2.6 on average. 500 devices on 50 accounts, 4 pins each,
 *      mostly numbers, some strings, about every 15 s per device, ending now.
 *   2. Times `pinledger replay` (Replay.replay: every projection rebuilt from the log, pin_state
 *      and pin_history being the ones with work to do; default retention) in a fresh process, as
 *      the command runs (on PGlite in this one): events/s. Then once more in that process (the
 *      steady rate, without the first run's compiling and heap growing).
 *   3. Loads `--samples` (10,000,000) samples' worth of history, generated as rollup rows directly
 *      (one minute row per sample: 1,000 pins x 10,000 minutes, inserted minute by minute as a live
 *      server interleaves them, plus their hour and day rows), and times the one-day minute query
 *      that GET_ENHANCED_GRAPH_DATA's DAY period runs (HistoryQueries.rollups): p50/p99 over `--runs`.
 *
 * On PostgreSQL (BENCH_DATABASE_URL, else DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres;
 * only the server is taken from it) in a fresh database `pinledger_bench_replay_<pid>`, dropped
 * afterwards; then on PGlite with a tenth of the sizes (`--no-pglite` skips it).
 * Flags: --writes N, --samples N, --runs N (30), --no-pglite. Prints a table, then
 * `metric replay_eps <events/s>` and `metric history_day_query_ms <p50>` (PostgreSQL's).
 */
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { execFile } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { performance } from "node:perf_hooks"
import type { PinWrite } from "../src/domain/Pins.ts"
import { accountStream, deviceStream } from "../src/domain/Streams.ts"
import type { Database } from "../src/eventstore/Database.ts"
import type { NewEvent } from "../src/eventstore/Event.ts"
import { EventStore } from "../src/eventstore/EventStore.ts"
import * as HistoryQueries from "../src/eventstore/HistoryQueries.ts"
import * as PgDatabase from "../src/eventstore/PgDatabase.ts"
import * as PgliteClient from "../src/eventstore/PgliteClient.ts"
import * as Replay from "../src/eventstore/Replay.ts"
import * as SqlEventStore from "../src/eventstore/SqlEventStore.ts"

const flag = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`)
  const value = at < 0 ? fallback : Number(process.argv[at + 1])
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} wants a whole number, got ${process.argv[at + 1]}`)
  return value
}
const totalWrites = flag("writes", 1_000_000)
const totalSamples = flag("samples", 10_000_000)
const runs = flag("runs", 30)
const withPglite = !process.argv.includes("--no-pglite")
const server = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"

const log = (label: string, message: string) => console.error(`[${label}] ${message}`)

/** A deterministic generator, so every run appends the same log. */
const random = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

/**
 * Writes per event as the device log makes them (mean about 2.6): a write after a quiet spell is
 * appended alone, the ones that follow it within the append's round trip (a firmware loop
 * writing two or three pins) go together, and a device writing faster than
 * PINLEDGER_DEVICE_LOG_INTERVAL_MS fills larger events.
 */
const batchSize = (r: () => number) => {
  const x = r()
  if (x < 0.55) return 1
  if (x < 0.9) return 2 + Math.floor(r() * 2)
  if (x < 0.98) return 4 + Math.floor(r() * 7)
  return 11 + Math.floor(r() * 40)
}

interface Device {
  readonly account: string
  readonly stream: string
  readonly dashId: number
  readonly deviceId: number
}

const DEVICES = 500
const PER_ACCOUNT = 10

/** Phase 1: the log. Returns how many events and writes it holds. */
const appendWrites = (label: string, writes: number) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const r = random(42)
    const devices: Array<Device> = Array.from({ length: DEVICES }, (_, i) => {
      const account = accountStream(`bench${Math.floor(i / PER_ACCOUNT)}@example.com`, "Blynk")
      return { account, stream: deviceStream(account, 1, i % PER_ACCOUNT), dashId: 1, deviceId: i % PER_ACCOUNT }
    })
    // Each device's events about 15 s apart, the last ones now.
    const planned: Array<{ device: Device; writes: Array<PinWrite> }> = []
    for (let left = writes; left > 0;) {
      const device = devices[Math.floor(r() * DEVICES)]!
      const n = Math.min(left, batchSize(r))
      const batch: Array<PinWrite> = []
      for (let k = 0; k < n; k++) {
        const pin = Math.floor(r() * 4)
        batch.push(["v", pin, r() < 0.05 ? (r() < 0.5 ? "on" : "off") : (15 + r() * 15).toFixed(2)])
      }
      planned.push({ device, writes: batch })
      left -= n
    }
    const perDevice = new Map<Device, number>()
    for (const p of planned) perDevice.set(p.device, (perDevice.get(p.device) ?? 0) + 1)
    const now = Date.now()
    const seen = new Map<Device, number>()
    const timed = planned.map((p) => {
      const i = seen.get(p.device) ?? 0
      seen.set(p.device, i + 1)
      const time = now - (perDevice.get(p.device)! - i) * 15_000 + Math.floor(r() * 5000)
      const event: NewEvent = {
        type: "PinsWritten",
        schemaVersion: 1,
        data: { _tag: "PinsWritten", dashId: p.device.dashId, deviceId: p.device.deviceId, source: "hardware", writes: p.writes }
      }
      return { stream: p.device.stream, event, time }
    })
    log(label, `appending ${writes} pin writes as ${timed.length} events (one append each, group commit)`)
    const started = performance.now()
    let done = 0
    yield* Effect.forEach(timed, (t) =>
      store.append(t.stream, "any", [t.event], { time: new Date(t.time).toISOString(), actor: "device", remoteAddress: "127.0.0.1" }).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            if (++done % 50_000 === 0) log(label, `  ${done} events appended`)
          })
        )
      ), { concurrency: 256, discard: true })
    const seconds = (performance.now() - started) / 1000
    log(label, `appended in ${seconds.toFixed(1)} s (${Math.round(timed.length / seconds)} events/s)`)
    // What autovacuum and the checkpointer would have done by now on a server that took minutes,
    // not seconds, to log this (and would otherwise start doing in the middle of the rebuild):
    // statistics, the rows marked visible to everyone, the log's pages written out.
    yield* Effect.flatMap(SqlClient, (sql) => sql`VACUUM ANALYZE pl_events`)
    if (label === "postgres") {
      yield* Effect.flatMap(SqlClient, (sql) => sql`CHECKPOINT`).pipe(
        Effect.catch((e) => Effect.sync(() => log(label, `no CHECKPOINT (${e.message}): the rebuild may share the disk with it`)))
      )
    }
    return { events: timed.length, writes }
  })

/** Wall time, and how much of it this process spent on a core (the rest: waiting for the database). */
const time = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const started = performance.now()
    const cpu = process.cpuUsage()
    const value = yield* effect
    const used = process.cpuUsage(cpu)
    return { value, ms: performance.now() - started, cpuMs: (used.user + used.system) / 1000 }
  })

/** `--replay-in URL` (the child process of phase 2): replays the database at URL twice, prints the two timings as JSON. */
const replayChild = (url: string) =>
  Effect.gen(function*() {
    const first = yield* time(Replay.replay())
    const again = yield* time(Replay.replay())
    console.log(JSON.stringify({ ms: first.ms, cpuMs: first.cpuMs, againMs: again.ms, againCpuMs: again.cpuMs }))
  }).pipe(Effect.provide(PgDatabase.layer({ url })))

interface Replayed {
  readonly ms: number
  readonly cpuMs: number
  readonly againMs: number
  readonly againCpuMs: number
}

/**
 * Phase 2: `pinledger replay`, every projection rebuilt from the log (Replay.replay), then the
 * same again in the same process. On PostgreSQL in a process of its own, as the command runs: a
 * fresh heap, not this one with the appends' garbage still to collect (that alone added about
 * 0.9 s to the first replay); on PGlite (one process's database) in this one.
 */
const rebuildAll = (label: string, events: number, writes: number, url: string | undefined) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    log(label, `replaying every projection (pinledger replay)${url === undefined ? "" : " in a process of its own"}`)
    const replayed: Replayed = url === undefined
      ? yield* Effect.gen(function*() {
        const first = yield* time(Replay.replay())
        const again = yield* time(Replay.replay())
        return { ms: first.ms, cpuMs: first.cpuMs, againMs: again.ms, againCpuMs: again.cpuMs }
      })
      : yield* Effect.promise(() =>
        new Promise<Replayed>((resolve, reject) =>
          execFile(process.execPath, [fileURLToPath(import.meta.url), "--replay-in", url], { maxBuffer: 1 << 24 }, (error, stdout) => {
            if (error) reject(error)
            else resolve(JSON.parse(stdout.trim().split("\n").pop()!) as Replayed)
          })
        )
      )
    log(label, `replayed in ${replayed.ms.toFixed(0)} ms (${replayed.cpuMs.toFixed(0)} ms on its process's cores); ` +
      `again in ${replayed.againMs.toFixed(0)} ms (${replayed.againCpuMs.toFixed(0)} ms)`)
    const counts = yield* sql<{ raw: unknown; minute: unknown; state: unknown }>`SELECT
      (SELECT count(*) FROM pl_history_raw) AS raw, (SELECT count(*) FROM pl_history_minute) AS minute,
      (SELECT count(*) FROM pl_pin_state) AS state`
    return {
      ms: replayed.ms,
      cpuMs: replayed.cpuMs,
      againMs: replayed.againMs,
      eps: events / (replayed.ms / 1000),
      againEps: events / (replayed.againMs / 1000),
      wps: writes / (replayed.ms / 1000),
      rawRows: Number(counts[0]!.raw),
      minuteRows: Number(counts[0]!.minute),
      stateRows: Number(counts[0]!.state)
    }
  })

const SERIES = 1000
const MINUTE = 60_000

/** Phase 3: `samples` samples' history as rollup rows, then the day query. */
const historyQuery = (label: string, samples: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    // At least a day of minutes per pin, so the query has a full day to read.
    const series = Math.max(1, Math.min(SERIES, Math.floor(samples / 1440)))
    const minutes = Math.ceil(samples / series)
    const end = Math.floor(Date.now() / MINUTE) * MINUTE
    const start = end - minutes * MINUTE
    log(label, `loading ${samples} samples' history: ${series} pins x ${minutes} minutes of rollup rows (generated, not events)`)
    const loadStarted = performance.now()
    yield* sql`INSERT INTO pl_history_series (account_stream, dash_id, device_id, pin_type, pin)
      SELECT 'user-querybench' || lpad((i / 40)::text, 4, '0'), 1, (i % 40) / 4, 'v', i % 4 FROM generate_series(0, ${series - 1}) AS i`
    const ids = (yield* sql<{ series_id: number }>`SELECT series_id FROM pl_history_series WHERE account_stream LIKE 'user-querybench%' ORDER BY series_id`)
      .map((row) => Number(row.series_id))
    const first = ids[0]!
    const last = ids[ids.length - 1]!
    // Minute by minute (a few hundred at a time), every pin in each: the interleaving a live server makes.
    const step = 200
    for (let m = 0; m < minutes; m += step) {
      const upTo = Math.min(minutes, m + step) - 1
      yield* sql`INSERT INTO pl_history_minute (series_id, bucket, total, min, max, count)
        SELECT s, ${start}::int8 + mm::int8 * 60000, v, v, v, 1
        FROM generate_series(${m}, ${upTo}) AS mm, generate_series(${first}, ${last}) AS s,
          LATERAL (SELECT 20 + 5 * sin(mm / 90.0 + s) AS v) AS x
        ORDER BY mm, s`
      if (m % 2000 === 0) log(label, `  ${m} of ${minutes} minutes`)
    }
    yield* sql`INSERT INTO pl_history_hour (series_id, bucket, total, min, max, count)
      SELECT series_id, bucket / 3600000 * 3600000, sum(total), min(min), max(max), sum(count) FROM pl_history_minute
      WHERE series_id BETWEEN ${first} AND ${last} GROUP BY 1, 2`
    yield* sql`INSERT INTO pl_history_day (series_id, bucket, total, min, max, count)
      SELECT series_id, bucket / 86400000 * 86400000, sum(total), min(min), max(max), sum(count) FROM pl_history_hour
      WHERE series_id BETWEEN ${first} AND ${last} GROUP BY 1, 2`
    yield* sql.unsafe("VACUUM ANALYZE pl_history_series, pl_history_minute, pl_history_hour, pl_history_day")
    const minuteRows = Number((yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pl_history_minute`)[0]!.n)
    const loadSeconds = (performance.now() - loadStarted) / 1000
    log(label, `loaded in ${loadSeconds.toFixed(0)} s (${minuteRows} minute rows in the table)`)

    // The DAY period's window (domain/Graphs.ts graphWindow) at the end of the data, for pins taken at random.
    const r = random(7)
    const pinOf = (i: number): HistoryQueries.PinRef => ({
      accountStream: `user-querybench${String(Math.floor(i / 40)).padStart(4, "0")}`,
      dashId: 1,
      deviceId: Math.floor((i % 40) / 4),
      pinType: "v",
      pin: i % 4
    })
    const query = (i: number) => HistoryQueries.rollups(pinOf(i), "minute", end - 1440 * MINUTE, end)
    const cold = yield* time(query(Math.floor(r() * series)))
    for (let i = 0; i < 3; i++) yield* query(Math.floor(r() * series))
    const times: Array<number> = []
    let points = 0
    for (let i = 0; i < runs; i++) {
      const t = yield* time(query(Math.floor(r() * series)))
      times.push(t.ms)
      points = t.value.length
    }
    times.sort((a, b) => a - b)
    const at = (p: number) => times[Math.min(times.length - 1, Math.floor(times.length * p))]!
    log(label, `day query: p50 ${at(0.5).toFixed(2)} ms, ${points} points`)
    return { minuteRows, loadSeconds, coldMs: cold.ms, p50: at(0.5), p99: at(0.99), points }
  })

const scenario = (label: string, writes: number, samples: number, url?: string) =>
  Effect.gen(function*() {
    const appended = yield* appendWrites(label, writes)
    const rebuilt = yield* rebuildAll(label, appended.events, appended.writes, url)
    const query = yield* historyQuery(label, samples)
    return { appended, rebuilt, query }
  })

const withDatabase = (url: string, database: string) => {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const admin = (statement: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    yield* sql.unsafe(statement)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(withDatabase(server, "postgres")), maxConnections: 1 })))

const store = (database: Layer.Layer<SqlClient | Database, unknown>) =>
  SqlEventStore.layerMigrated(database as Layer.Layer<SqlClient | Database, never>, { maxBatch: 1000 })

const onPostgres = Effect.gen(function*() {
  const name = `pinledger_bench_replay_${process.pid}`
  yield* Effect.acquireRelease(
    admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.andThen(admin(`CREATE DATABASE ${name}`))),
    () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).pipe(Effect.ignore)
  )
  return yield* scenario("postgres", totalWrites, totalSamples, withDatabase(server, name)).pipe(
    Effect.provide(store(PgDatabase.layer({ url: withDatabase(server, name), maxConnections: 8 })))
  )
}).pipe(Effect.scoped)

const onPglite = Effect.acquireUseRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "pinledger-bench-replay-"))),
  (dir) =>
    scenario("pglite", Math.ceil(totalWrites / 10), Math.ceil(totalSamples / 10)).pipe(
      Effect.provide(store(PgliteClient.layer({ dataDir: dir })))
    ),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

type Result = Effect.Success<typeof onPostgres>

const main = Effect.gen(function*() {
  console.log(`PostgreSQL server: ${new URL(server).host}; ${totalWrites} writes, ${totalSamples} samples (PGlite: a tenth)`)
  const pg = yield* onPostgres
  const lite: Result | undefined = withPglite ? yield* onPglite : undefined
  const cell = (f: (r: Result) => string) => [f(pg), lite ? f(lite) : "-"] as const
  const rows: Array<readonly [string, string, string]> = [
    ["", "PostgreSQL", "PGlite"],
    ["log: pin writes / PinsWritten events", ...cell((r) => `${r.appended.writes} / ${r.appended.events}`)],
    ["replay, every projection (ms; its process on a core)", ...cell((r) => `${r.rebuilt.ms.toFixed(0)}; ${r.rebuilt.cpuMs.toFixed(0)}`)],
    ["replay: events/s", ...cell((r) => Math.round(r.rebuilt.eps).toString())],
    ["replay again, same process (ms; events/s)", ...cell((r) => `${r.rebuilt.againMs.toFixed(0)}; ${Math.round(r.rebuilt.againEps)}`)],
    ["replay: pin writes/s", ...cell((r) => Math.round(r.rebuilt.wps).toString())],
    ["rows: raw / minute / pin_state", ...cell((r) => `${r.rebuilt.rawRows} / ${r.rebuilt.minuteRows} / ${r.rebuilt.stateRows}`)],
    ["history: samples as minute rows (generated)", ...cell((r) => `${r.query.minuteRows} (${r.query.loadSeconds.toFixed(0)} s)`)],
    ["one-day minute query: first / p50 / p99 (ms)", ...cell((r) => `${r.query.coldMs.toFixed(2)} / ${r.query.p50.toFixed(2)} / ${r.query.p99.toFixed(2)}`)],
    ["points per query", ...cell((r) => String(r.query.points))]
  ]
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)))
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join("  "))
  console.log("history rows for the query were generated as rollup rows directly, not from 10,000,000 events")
  console.log("")
  console.log(`metric replay_eps ${Math.round(pg.rebuilt.eps)}`)
  console.log(`metric history_day_query_ms ${pg.query.p50.toFixed(2)}`)
})

const replayIn = process.argv.indexOf("--replay-in")
Effect.runPromise(replayIn < 0 ? main : replayChild(process.argv[replayIn + 1]!)).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
