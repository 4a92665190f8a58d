import { Cause, Duration, Effect, Exit, Queue } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { Database } from "./Database.ts"
import { CheckpointConflict } from "./Errors.ts"
import type { RecordedEvent } from "./Event.ts"
import { eventsChannel } from "./EventStore.ts"
import { eventColumns, type EventRow, toRecorded } from "./SqlEventStore.ts"
import * as SubscriberLag from "./SubscriberLag.ts"

/**
 * Where a subscriber stands: the last delivered event's (transaction id, position).
 *
 * Positions are taken at insert time, not at commit, so a transaction that commits late can add
 * an event with a lower position than one already delivered. Ordering by position would skip it.
 * Instead a subscription reads only events of transactions older than the oldest transaction
 * still running (`pg_snapshot_xmin`), which are all settled, in (tx_id, position) order: any
 * event that becomes visible later has a transaction id at or above that horizon, so it sorts
 * after everything already delivered.
 */
export interface Checkpoint {
  readonly txId: bigint
  readonly position: number
}

export const origin: Checkpoint = { txId: 0n, position: 0 }

export interface SubscriptionOptions<E, R> {
  /** Unique per subscriber: its checkpoint is stored under this name. */
  readonly name: string
  /**
   * Handles a batch. It runs in the same transaction as the checkpoint's compare-and-set, so a
   * projection's writes through `SqlClient` commit exactly once with the checkpoint.
   */
  readonly handle: (events: ReadonlyArray<RecordedEvent>) => Effect.Effect<void, E, R>
  readonly batchSize?: number | undefined
  /** Polling fallback, for notifications lost while a connection was down. */
  readonly pollInterval?: Duration.Input | undefined
  /** Wait after a failed batch before starting again from the checkpoint. */
  readonly retryDelay?: Duration.Input | undefined
}

export const loadCheckpoint = (name: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ tx_id: string; position: unknown }>`
      SELECT tx_id::text AS tx_id, position FROM pl_checkpoints WHERE subscriber = ${name}`
    const row = rows[0]
    return row === undefined ? origin : { txId: BigInt(row.tx_id), position: Number(row.position) }
  })

/** The settled events after `from`, in delivery order. */
export const readSettled = (from: Checkpoint, limit: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<EventRow>`SELECT ${sql.literal(eventColumns)} FROM pl_events
      WHERE (tx_id, position) > (${from.txId.toString()}::xid8, ${from.position})
        AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY tx_id, position LIMIT ${limit}`
    return rows.map(toRecorded)
  })

/** Where the settled part of the log ends now: every event after it is still to come or to settle. */
export const settledHorizon = Effect.gen(function*() {
  const sql = yield* SqlClient
  const rows = yield* sql<{ xmin: string }>`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`
  return { txId: BigInt(rows[0]!.xmin), position: 0 } satisfies Checkpoint
})

/** Like `readSettled`, but only where each event went (no data): for followers that just need to know. */
export const readSettledHeads = (from: Checkpoint, limit: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ tx_text: string; position: unknown; stream_id: string; stream_version: unknown }>`
      SELECT tx_id::text AS tx_text, position, stream_id, stream_version FROM pl_events
      WHERE (tx_id, position) > (${from.txId.toString()}::xid8, ${from.position})
        AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY tx_id, position LIMIT ${limit}`
    return rows.map((r) => ({
      txId: BigInt(r.tx_text),
      position: Number(r.position),
      streamId: r.stream_id,
      version: Number(r.stream_version)
    }))
  })

/** Moves a checkpoint from `from` to `to`; fails with CheckpointConflict if someone else moved it. */
export const saveCheckpoint = (name: string, from: Checkpoint, to: Checkpoint) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const moved = yield* sql`
      INSERT INTO pl_checkpoints (subscriber, tx_id, position)
      VALUES (${name}, ${to.txId.toString()}::xid8, ${to.position})
      ON CONFLICT (subscriber) DO UPDATE SET tx_id = excluded.tx_id, position = excluded.position, updated_at = now()
      WHERE pl_checkpoints.tx_id = ${from.txId.toString()}::xid8 AND pl_checkpoints.position = ${from.position}
      RETURNING subscriber`
    if (moved.length === 0) return yield* new CheckpointConflict({ subscriber: name })
  })

/**
 * Runs a subscriber until interrupted: catch up from its checkpoint, then follow the live tail,
 * woken by NOTIFY and by polling. A failed batch (handler error, lost database, a second instance
 * moving the checkpoint) is rolled back, logged, and retried from the stored checkpoint.
 */
export const run = <E, R>(options: SubscriptionOptions<E, R>): Effect.Effect<never, never, R | SqlClient | Database> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const database = yield* Database
    const batchSize = options.batchSize ?? 1000
    const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? "1 second")
    const retryDelay = Duration.fromInputUnsafe(options.retryDelay ?? "1 second")

    const session = Effect.gen(function*() {
      // Listen before the first read, so that no commit between read and wait goes unnoticed.
      const wake = yield* database.listen(eventsChannel)
      let at = yield* loadCheckpoint(options.name)
      SubscriberLag.track(database, options.name, at)
      while (true) {
        const events = yield* readSettled(at, batchSize)
        const last = events.at(-1)
        if (last === undefined) {
          yield* Queue.take(wake).pipe(Effect.timeoutOption(pollInterval))
          yield* Queue.clear(wake)
          continue
        }
        const next = { txId: last.txId, position: last.position }
        yield* sql.withTransaction(options.handle(events).pipe(Effect.andThen(saveCheckpoint(options.name, at, next))))
        at = next
        SubscriberLag.track(database, options.name, at)
      }
    })

    while (true) {
      const exit = yield* Effect.exit(Effect.scoped(session))
      if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
        const error = Cause.findErrorOption(exit.cause)
        // Its checkpoint moved under it: what `pinledger replay` does on purpose (the batch was
        // rolled back; it carries on from where the rebuild left the checkpoint).
        if (error._tag === "Some" && error.value instanceof CheckpointConflict) {
          yield* Effect.logInfo(`subscriber ${options.name}: its checkpoint was moved (a replay?); carrying on from there`)
        } else {
          yield* Effect.logWarning(`subscriber ${options.name} failed; retrying from its checkpoint`, Cause.pretty(exit.cause))
        }
      }
      yield* Effect.sleep(retryDelay)
    }
  }).pipe(Effect.annotateLogs("subscriber", options.name))
