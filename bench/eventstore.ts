/**
 * `npm run bench:eventstore`: append and catch-up rates of the event store on local PostgreSQL
 * and on embedded PGlite, and the two append workloads through emmett-postgresql on the same
 * PostgreSQL for comparison. Prints a table, then one `metric <name> <value>` line per headline.
 *
 * PostgreSQL: BENCH_DATABASE_URL, else DATABASE_URL, else postgres://postgres@127.0.0.1:5432/postgres
 * (only the server is taken from it: the bench uses databases of its own, dropped and re-created).
 * Sizes scale with BENCH_SCALE (default 1).
 */
import { Effect, Fiber, Latch, Redacted } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Metadata, NewEvent } from "../src/eventstore/Event.ts"
import { EventStore } from "../src/eventstore/EventStore.ts"
import * as PgDatabase from "../src/eventstore/PgDatabase.ts"
import * as PgliteClient from "../src/eventstore/PgliteClient.ts"
import * as SqlEventStore from "../src/eventstore/SqlEventStore.ts"
import * as Subscription from "../src/eventstore/Subscription.ts"
import { runEmmett } from "./emmett.ts"

const scale = Number(process.env.BENCH_SCALE ?? "1")
const server = process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
const benchDatabase = "pinledger_bench"

const meta: Metadata = { time: new Date().toISOString(), actor: "bench", remoteAddress: "127.0.0.1" }
const event = (i: number): NewEvent => ({ type: "PinWritten", schemaVersion: 1, data: { pin: "v1", value: (i % 1000 / 10).toFixed(1) } })

interface Sizes {
  readonly singleWriter: number
  readonly concurrent: number
  readonly rounds: number
  readonly batches: number
  readonly batchSize: number
  readonly catchUp: number
}

interface Figures {
  readonly singleWriterEps: number
  readonly groupCommitEps: number
  readonly largeBatchEps: number
  readonly catchUpEps: number
  readonly catchUpEvents: number
}

const rate = (events: number, ms: number) => Math.round(events / (ms / 1000))

const timed = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = performance.now()
    yield* effect
    return performance.now() - start
  })

const progress = (label: string, step: string) => Effect.sync(() => console.error(`[${label}] ${step}`))

const workloads = (label: string, sizes: Sizes) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    yield* progress(label, "warm-up")
    // Warm-up: opens connections, plans the statements.
    yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => store.append(`warm-${i}`, "any", [event(i)], meta), {
      concurrency: "unbounded"
    })

    yield* progress(label, `one writer, ${sizes.singleWriter} appends`)
    const single = yield* timed(Effect.gen(function*() {
      for (let i = 0; i < sizes.singleWriter; i++) yield* store.append("device-single", "any", [event(i)], meta)
    }))

    yield* progress(label, `${sizes.concurrent} concurrent appends x ${sizes.rounds} rounds`)
    const streams = Array.from({ length: sizes.concurrent }, (_, i) => `device-${i}`)
    const concurrent = yield* timed(Effect.gen(function*() {
      for (let r = 0; r < sizes.rounds; r++) {
        yield* Effect.forEach(streams, (s) => store.append(s, "any", [event(r)], meta), { concurrency: "unbounded", discard: true })
      }
    }))

    yield* progress(label, `${sizes.batches} appends of ${sizes.batchSize} events`)
    const batch = Array.from({ length: sizes.batchSize }, (_, i) => event(i))
    const large = yield* timed(
      Effect.forEach(Array.from({ length: sizes.batches }, (_, i) => i), (i) => store.append(`bulk-${i % 10}`, "any", batch, meta), {
        concurrency: 4,
        discard: true
      })
    )

    // Fill the log up to the catch-up size, then time a subscription reading all of it.
    const head = yield* store.head
    const missing = Math.max(0, sizes.catchUp - head)
    yield* Effect.forEach(Array.from({ length: Math.ceil(missing / 1000) }, (_, i) => i), (i) => store.append(`fill-${i % 50}`, "any", Array.from({ length: 1000 }, (_, j) => event(j)), meta), {
      concurrency: 4,
      discard: true
    })
    // Positions can have gaps (identity values are not transactional), so count, not the head.
    const sql = yield* SqlClient
    const counted = yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pl_events`
    const total = Number(counted[0]!.n)
    yield* progress(label, `subscription catch-up over ${total} events`)
    let seen = 0
    const done = yield* Latch.make()
    const catchUp = yield* timed(Effect.gen(function*() {
      const fiber = yield* Effect.forkChild(Subscription.run({
        name: "bench-catchup",
        batchSize: 5000,
        handle: (events) =>
          Effect.sync(() => {
            seen += events.length
            if (seen >= total) done.openUnsafe()
          })
      }))
      yield* done.await
      yield* Fiber.interrupt(fiber)
    }))

    return {
      singleWriterEps: rate(sizes.singleWriter, single),
      groupCommitEps: rate(sizes.concurrent * sizes.rounds, concurrent),
      largeBatchEps: rate(sizes.batches * sizes.batchSize, large),
      catchUpEps: rate(total, catchUp),
      catchUpEvents: total
    } satisfies Figures
  })

const recreate = (name: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    yield* sql.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    yield* sql.unsafe(`CREATE DATABASE ${name}`)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(withDatabase(server, "postgres")), maxConnections: 1 })))

function withDatabase(url: string, database: string) {
  const u = new URL(url)
  u.pathname = `/${database}`
  return u.toString()
}

const onPostgres = (sizes: Sizes) =>
  Effect.gen(function*() {
    yield* recreate(benchDatabase)
    return yield* workloads("postgres", sizes).pipe(
      Effect.provide(SqlEventStore.layerMigrated(PgDatabase.layer({ url: withDatabase(server, benchDatabase), maxConnections: 4 })))
    )
  })

const onPglite = (sizes: Sizes) =>
  Effect.acquireUseRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "pinledger-bench-"))),
    (dir) => workloads("pglite", sizes).pipe(Effect.provide(SqlEventStore.layerMigrated(PgliteClient.layer({ dataDir: dir })))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

const n = (x: number) => Math.round(x * scale)

const main = Effect.gen(function*() {
  const pgSizes: Sizes = { singleWriter: n(2000), concurrent: 1000, rounds: n(20), batches: n(100), batchSize: 1000, catchUp: n(300_000) }
  const pgliteSizes: Sizes = { singleWriter: n(1000), concurrent: 1000, rounds: n(5), batches: n(20), batchSize: 1000, catchUp: n(50_000) }
  const emmettRounds = n(5)

  console.log(`PostgreSQL server: ${new URL(server).host}; BENCH_SCALE=${scale}`)
  const pg = yield* onPostgres(pgSizes)
  const lite = yield* onPglite(pgliteSizes)
  const emmett = yield* Effect.promise(() =>
    runEmmett({ connectionString: server, singleWriterEvents: n(2000), concurrentAppends: 1000, rounds: emmettRounds })
  )

  const rows: Array<[string, string, string, string]> = [
    ["workload", "pinledger on PostgreSQL", "pinledger on PGlite", "emmett on PostgreSQL"],
    ["one writer, one event per append (events/s)", `${pg.singleWriterEps}`, `${lite.singleWriterEps}`, `${Math.round(emmett.singleWriterEps)}`],
    ["1,000 concurrent single-event appends (events/s)", `${pg.groupCommitEps}`, `${lite.groupCommitEps}`, `${Math.round(emmett.concurrentEps)}`],
    ["appends of 1,000 events (events/s)", `${pg.largeBatchEps}`, `${lite.largeBatchEps}`, "-"],
    [`subscription catch-up (events/s)`, `${pg.catchUpEps} (${pg.catchUpEvents} events)`, `${lite.catchUpEps} (${lite.catchUpEvents} events)`, "-"]
  ]
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join("  "))
  console.log(`ratio to emmett, single writer: ${(pg.singleWriterEps / emmett.singleWriterEps).toFixed(1)}x`)
  console.log("")
  console.log(`metric pg_group_commit_eps ${pg.groupCommitEps}`)
  console.log(`metric pg_catchup_eps ${pg.catchUpEps}`)
  console.log(`metric pglite_group_commit_eps ${lite.groupCommitEps}`)
  console.log(`metric emmett_ratio_concurrent ${(pg.groupCommitEps / emmett.concurrentEps).toFixed(2)}`)
})

Effect.runPromise(main).then(
  () => process.exit(0),
  (error) => {
    console.error(error)
    process.exit(1)
  }
)
