import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { Database } from "./Database.ts"
import type { Checkpoint } from "./Subscription.ts"

/**
 * Where each subscriber of a database stands, as it last said (`track`): read by `/metrics` to
 * report how far behind the log each one is. Kept per database service, so that servers on
 * different databases in one process (tests) do not mix their subscribers.
 */
const positions = new WeakMap<Database["Service"], Map<string, Checkpoint>>()

/** Called by a subscriber whenever it has moved (a plain call: it costs a map write). */
export const track = (database: Database["Service"], name: string, at: Checkpoint): void => {
  let subscribers = positions.get(database)
  if (subscribers === undefined) positions.set(database, subscribers = new Map())
  subscribers.set(name, at)
}

/** The subscribers of `database` and where they stand. */
export const tracked = (database: Database["Service"]): ReadonlyMap<string, Checkpoint> =>
  positions.get(database) ?? new Map()

/** Counted exactly up to here; beyond, the lag is estimated from positions (a count would read that many index entries). */
export const EXACT_LAG_LIMIT = 100_000

/**
 * Events after `at` in delivery order (transaction id, position), settled or not: what a
 * subscriber standing there has still to read.
 */
export const lagOf = (at: Checkpoint) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ behind: unknown; head: unknown }>`
      SELECT (SELECT count(*) FROM (
                SELECT 1 FROM pl_events WHERE (tx_id, position) > (${at.txId.toString()}::xid8, ${at.position})
                LIMIT ${EXACT_LAG_LIMIT + 1}) AS t) AS behind,
             (SELECT coalesce(max(position), 0) FROM pl_events) AS head`
    const behind = Number(rows[0]?.behind ?? 0)
    return behind <= EXACT_LAG_LIMIT ? behind : Math.max(behind, Number(rows[0]?.head ?? 0) - at.position)
  })
