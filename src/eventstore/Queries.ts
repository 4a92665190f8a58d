import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"

/** Whether the log holds any event of this type (the first one stops the scan). */
export const hasEventOfType = (type: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ found: unknown }>`SELECT EXISTS (SELECT 1 FROM pl_events WHERE event_type = ${type}) AS found`
    return rows[0]?.found === true
  })
