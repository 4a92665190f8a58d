/**
 * Baseline for `bench/eventstore.ts`: the same two append workloads run against
 * emmett-postgresql (@event-driven-io/emmett-postgresql 0.42.0) on the same PostgreSQL server.
 *
 * 1. single writer: one stream, one event per `appendToStream` call, each awaited before the next.
 * 2. concurrent: `concurrentAppends` single-event `appendToStream` calls to as many distinct
 *    streams, all started at once (Promise.all), repeated `rounds` times. Every round writes to the
 *    same streams (`device-0` … `device-{n-1}`), so round 1 creates them and later rounds append to
 *    existing streams, like devices reporting repeatedly. Figure = total events / total time.
 *
 * Setup, so emmett gets a fair run and never touches other data:
 * - its own database, `pinledger_bench_emmett`, dropped (WITH (FORCE)) and re-created at the start
 *   of every run, so every run starts from empty tables;
 * - emmett's default configuration: `getPostgreSQLEventStore(connectionString)` with no connection
 *   options, i.e. dumbo's node-postgres `pg.Pool` with pg's default `max` of 10 connections
 *   (dumbo passes only connectionString/database to `new pg.Pool`);
 * - schema created with `eventStore.schema.migrate()` before any timing (otherwise the first append
 *   would run the migrations);
 * - a short warm-up (sequential appends plus one concurrent round, on streams that are not used by
 *   the timed workloads) so the pool is fully opened and PL/pgSQL plans are cached before timing.
 *
 * No expected stream version is passed (emmett's default, no optimistic concurrency check).
 */
import type { Event } from "@event-driven-io/emmett"
import { getPostgreSQLEventStore, type PostgresEventStore } from "@event-driven-io/emmett-postgresql"
import pg from "pg"

export interface EmmettFigures {
  readonly singleWriterEps: number
  readonly concurrentEps: number
}

export interface EmmettOptions {
  /** Any connection string for the server; the database part is ignored (see `benchDatabase`). */
  readonly connectionString: string
  readonly singleWriterEvents: number
  readonly concurrentAppends: number
  readonly rounds: number
}

/** The database emmett gets; dropped and re-created on every run. */
export const benchDatabase = "pinledger_bench_emmett"

type PinWritten = Event<"PinWritten", { pin: string; value: string }>

const pinWritten = (i: number): PinWritten => ({
  type: "PinWritten",
  data: { pin: "v1", value: (i % 1000 / 10).toFixed(1) }
})

/** Same server, user, password and query parameters; another database. */
const withDatabase = (connectionString: string, database: string): string => {
  const url = new URL(connectionString)
  url.pathname = `/${encodeURIComponent(database)}`
  return url.toString()
}

/** Drops and re-creates the bench database through the server's `postgres` database. */
const recreateDatabase = async (serverConnectionString: string): Promise<void> => {
  const admin = new pg.Client({ connectionString: withDatabase(serverConnectionString, "postgres") })
  await admin.connect()
  try {
    // Identifier is a constant without special characters, so plain double quotes are enough.
    await admin.query(`DROP DATABASE IF EXISTS "${benchDatabase}" WITH (FORCE)`)
    await admin.query(`CREATE DATABASE "${benchDatabase}"`)
  } finally {
    await admin.end()
  }
}

const sequentialAppends = async (store: PostgresEventStore, streamName: string, count: number): Promise<void> => {
  for (let i = 0; i < count; i++) {
    await store.appendToStream<PinWritten>(streamName, [pinWritten(i)])
  }
}

const concurrentRound = async (
  store: PostgresEventStore,
  streamPrefix: string,
  count: number,
  round: number
): Promise<void> => {
  const appends: Array<Promise<unknown>> = []
  for (let i = 0; i < count; i++) {
    appends.push(store.appendToStream<PinWritten>(`${streamPrefix}-${i}`, [pinWritten(round * count + i)]))
  }
  await Promise.all(appends)
}

const eventsPerSecond = (events: number, startedMs: number): number =>
  events / ((performance.now() - startedMs) / 1000)

export const runEmmett = async (options: EmmettOptions): Promise<EmmettFigures> => {
  const { singleWriterEvents, concurrentAppends, rounds } = options
  await recreateDatabase(options.connectionString)

  const store = getPostgreSQLEventStore(withDatabase(options.connectionString, benchDatabase))
  try {
    await store.schema.migrate()

    // Warm-up, on streams the timed workloads never use ("warmup" is the stream type emmett
    // derives from the name, like "device" below).
    await sequentialAppends(store, "warmup-single", 200)
    await concurrentRound(store, "warmup", Math.min(concurrentAppends, 1000), 0)

    let started = performance.now()
    await sequentialAppends(store, "device-single", singleWriterEvents)
    const singleWriterEps = eventsPerSecond(singleWriterEvents, started)

    started = performance.now()
    for (let round = 0; round < rounds; round++) {
      await concurrentRound(store, "device", concurrentAppends, round)
    }
    const concurrentEps = eventsPerSecond(concurrentAppends * rounds, started)

    return { singleWriterEps, concurrentEps }
  } finally {
    await store.close()
  }
}

if (import.meta.main) {
  const connectionString = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres"
  const figures = await runEmmett({ connectionString, singleWriterEvents: 2000, concurrentAppends: 1000, rounds: 5 })
  console.log(`emmett-postgresql 0.42.0 (default pool, max 10 connections), database ${benchDatabase}`)
  console.log(`  single writer, 2000 sequential appends:     ${figures.singleWriterEps.toFixed(0)} events/s`)
  console.log(`  concurrent, 1000 streams x 5 rounds:        ${figures.concurrentEps.toFixed(0)} events/s`)
}
