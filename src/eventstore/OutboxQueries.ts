import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { RecordedEvent } from "./Event.ts"
import { type EventRow, toRecorded } from "./SqlEventStore.ts"
import type { Checkpoint } from "./Subscription.ts"

/**
 * The reads the notification outbox needs (domain/Notifications.ts): what an account asked for
 * today, and the settled log as the sender follows it.
 */

/** The ids of the e-mails requested in an outbox stream since a time (for the per-day limit). */
export const emailRequestsSince = (stream: string, since: Date) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ id: string | null }>`SELECT data->>'requestId' AS id FROM pl_events
      WHERE stream_id = ${stream} AND event_type = 'NotificationRequested' AND data->>'kind' = 'email'
        AND recorded_at >= ${since.toISOString()}::timestamptz`
    return rows.flatMap((r) => (r.id === null ? [] : [r.id]))
  })

const outboxTypes = "('NotificationRequested', 'NotificationSent', 'NotificationFailed')"

/**
 * The next settled events after `from`, as Subscription.readSettled reads them, but with data and
 * metadata only for the outbox's own events: the sender walks past every pin write, and needs
 * only their positions to move its checkpoint.
 */
export const readOutboxPage = (from: Checkpoint, limit: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<EventRow>`SELECT position, tx_id::text AS tx_text, stream_id, stream_version, event_type, schema_version,
        CASE WHEN event_type IN ${sql.literal(outboxTypes)} THEN data ELSE 'null'::jsonb END AS data,
        CASE WHEN event_type IN ${sql.literal(outboxTypes)} THEN metadata ELSE '{}'::jsonb END AS metadata,
        recorded_at
      FROM pl_events
      WHERE (tx_id, position) > (${from.txId.toString()}::xid8, ${from.position})
        AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
      ORDER BY tx_id, position LIMIT ${limit}`
    return rows.map(toRecorded)
  })

/**
 * What the sender already recorded for a request: its results come after it in the same stream,
 * so only the stream's later versions are looked at.
 */
export const resultsOf = (stream: string, afterVersion: number, requestId: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<EventRow>`SELECT position, tx_id::text AS tx_text, stream_id, stream_version, event_type, schema_version,
        data, metadata, recorded_at
      FROM pl_events
      WHERE stream_id = ${stream} AND stream_version > ${afterVersion}
        AND event_type IN ('NotificationSent', 'NotificationFailed') AND data->>'requestId' = ${requestId}
      ORDER BY stream_version`
    return rows.map(toRecorded) as ReadonlyArray<RecordedEvent>
  })
