import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"

/**
 * Reads of the events devices logged (`EventLogged` in their `device-…` streams, domain/Pins.ts):
 * the day's count for the limits, and a window of them for the history export. They read the log
 * itself: events are few (at most `PINLEDGER_LOG_EVENTS_PER_DAY` per device), and the index
 * on event types (migration "audit indexes") leaves pin writes out.
 */

/** How many events a device stream logged since a time (recorded then or later). */
export const eventsLoggedSince = (stream: string, since: Date) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pl_events
      WHERE event_type = 'EventLogged' AND stream_id = ${stream} AND recorded_at >= ${since.toISOString()}::timestamptz`
    return Number(rows[0]?.n ?? 0)
  }).pipe(Effect.withSpan("LoggedEventQueries.eventsLoggedSince"))

export interface LoggedEvent {
  /** When the device reported it (the event's metadata time), epoch ms. */
  readonly ts: number
  readonly code: string
  readonly description: string | undefined
}

/** A device stream's events with `from <= time < to`, oldest first, at most `limit`. */
export const eventsLogged = (stream: string, from: number, to: number, limit: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ ts: unknown; code: string | null; description: string | null }>`
      SELECT floor(extract(epoch FROM coalesce((metadata->>'time')::timestamptz, recorded_at)) * 1000)::int8 AS ts,
        data->>'code' AS code, data->>'description' AS description
      FROM pl_events
      WHERE event_type = 'EventLogged' AND stream_id = ${stream}
        AND coalesce((metadata->>'time')::timestamptz, recorded_at) >= ${new Date(from).toISOString()}::timestamptz
        AND coalesce((metadata->>'time')::timestamptz, recorded_at) < ${new Date(to).toISOString()}::timestamptz
      ORDER BY position LIMIT ${limit}`
    return rows.map((r): LoggedEvent => ({ ts: Number(r.ts), code: r.code ?? "", description: r.description ?? undefined }))
  }).pipe(Effect.withSpan("LoggedEventQueries.eventsLogged"))
