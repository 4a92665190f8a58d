import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { InlineEvent, InlineProjection } from "../SqlEventStore.ts"
import { AccountTokens } from "./AccountTokens.ts"
import { DeviceTokens } from "./DeviceTokens.ts"
import { Permissions } from "./Permissions.ts"
import { PinState } from "./PinState.ts"

/** Every projection the server keeps in the append's transaction. */
export const inlineProjections: ReadonlyArray<InlineProjection> = [DeviceTokens, PinState, Permissions, AccountTokens]

/**
 * Events handed to a projection's `apply` at once while rebuilding. Large (a chunk of pin writes
 * is some tens of MB): each chunk rewrites the same rows (a pin's value), and inside the
 * rebuild's one transaction every rewrite leaves a row version that later lookups walk past, so
 * few chunks are far faster than many (1,000 at a time took 70 s for 385,000 events; 50,000 at
 * a time, 3 s).
 */
const CHUNK = 50_000

/**
 * Events read at once for a projection with a `rebuilder` (which writes when it chooses): small,
 * so that they are dropped young, not carried into the old generation for the collector to
 * sweep (pin-state, 385,000 events in a fresh process: 3.7 s in chunks of 50,000, 2.8 s in 5,000s).
 */
const FEED_CHUNK = 5000

/**
 * Empties a projection's tables and applies the whole log to it again, in one transaction: what
 * it holds is then exactly what the log says (the projections are derived, DESIGN.md).
 */
export const rebuild = (projection: InlineProjection) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    yield* sql.withTransaction(Effect.gen(function*() {
      for (const table of projection.tables) yield* sql.unsafe(`DELETE FROM ${table}`)
      const rebuilder = projection.rebuilder === undefined ? undefined : yield* projection.rebuilder
      const chunk = rebuilder === undefined ? CHUNK : FEED_CHUNK
      let after = 0
      for (;;) {
        const rows = yield* sql<{ position: unknown; stream_id: string; stream_version: unknown; event_type: string; data: unknown }>`
          SELECT position, stream_id, stream_version, event_type, data FROM pl_events
          WHERE position > ${after} AND event_type IN ${sql.in([...projection.types])}
          ORDER BY position LIMIT ${chunk}`
        if (rows.length === 0) return yield* rebuilder?.end ?? Effect.void
        const events: Array<InlineEvent> = rows.map((r) => ({
          position: Number(r.position),
          streamId: r.stream_id,
          version: Number(r.stream_version),
          type: r.event_type,
          data: typeof r.data === "string" ? JSON.parse(r.data) : r.data
        }))
        yield* rebuilder === undefined ? projection.apply(events) : rebuilder.feed(events)
        after = events[events.length - 1]!.position
      }
    }))
  }).pipe(Effect.withSpan("Projections.rebuild", { attributes: { projection: projection.name } }))
