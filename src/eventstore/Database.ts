import { Context } from "effect"
import type * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import type * as Queue from "effect/Queue"
import type { SqlError } from "effect/sql/SqlError"

/**
 * What the event store needs from a database beyond `SqlClient`: which engine it is (reported by
 * `/health`) and LISTEN/NOTIFY. Both backends (PostgreSQL through @effect/sql-pg, embedded
 * PGlite through our own adapter) provide this next to `SqlClient`.
 */
export type DatabaseKind = "postgres" | "pglite"

export class Database extends Context.Service<Database, {
  readonly kind: DatabaseKind
  /**
   * Subscribes to a NOTIFY channel for the lifetime of the scope. Each notification's payload is
   * offered to the returned queue. Notifications sent inside a transaction arrive after commit.
   */
  readonly listen: (channel: string) => Effect.Effect<Queue.Dequeue<string, SqlError>, SqlError, Scope.Scope>
}>()("pinledger/Database") {}
