import { type Duration, Effect, Queue } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { RecordedEvent } from "../../src/eventstore/Event.ts"
import * as Subscription from "../../src/eventstore/Subscription.ts"

/**
 * A projection for tests: one row per delivered event, keyed by position (unless `unkeyed`), so that
 * a duplicate delivery is a primary-key violation (the batch fails) rather than a silent double.
 * `committed` receives the size of each batch after its transaction commits.
 */
export const testProjection = (
  name: string,
  options: {
    readonly fail?: (event: RecordedEvent) => boolean
    /** Without the key, only the checkpoint's compare-and-set stands between an event and a double. */
    readonly unkeyed?: boolean
    readonly batchSize?: number
    readonly pollInterval?: Duration.Input
  } = {}
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const table = `proj_${name.replace(/[^a-z0-9_]/gi, "_")}`
    yield* sql.unsafe(`CREATE TABLE IF NOT EXISTS ${table} (
      position bigint ${options.unkeyed ? "" : "PRIMARY KEY"}, stream_id text NOT NULL, version bigint NOT NULL, seq bigserial)`)
    const committed = yield* Queue.unbounded<number>()
    const run = Subscription.run({
      name,
      batchSize: options.batchSize ?? 50,
      pollInterval: options.pollInterval ?? "200 millis",
      retryDelay: "50 millis",
      handle: (events) =>
        Effect.gen(function*() {
          for (const e of events) {
            if (options.fail?.(e)) return yield* Effect.fail(new Error(`refusing ${e.position}`))
          }
          yield* sql.unsafe(
            `INSERT INTO ${table} (position, stream_id, version)
             SELECT (e->>0)::bigint, e->>1, (e->>2)::bigint FROM json_array_elements($1::json) AS t(e)`,
            [JSON.stringify(events.map((e) => [e.position, e.streamId, e.version]))]
          )
          yield* sql.afterCommit(Queue.offer(committed, events.length).pipe(Effect.asVoid))
        })
    })
    const rows = sql<{ position: unknown; stream_id: string; version: unknown }>`
      SELECT position, stream_id, version FROM ${sql(table)} ORDER BY seq`.pipe(
      Effect.map((rs) => rs.map((r) => ({ position: Number(r.position), streamId: r.stream_id, version: Number(r.version) })))
    )
    /** Waits (on commit signals, not on time) until at least `n` events were projected in total. */
    let seen = 0
    const awaitTotal = (n: number) =>
      Effect.gen(function*() {
        while (seen < n) seen += yield* Queue.take(committed)
      }).pipe(
        // A bound on waiting, so that a lost event fails with a message rather than a test timeout.
        Effect.timeoutOrElse({
          duration: "30 seconds",
          orElse: () => Effect.die(new Error(`projection ${name}: ${seen} of ${n} events after 30 s`))
        })
      )
    return { run, rows, awaitTotal, table }
  })
