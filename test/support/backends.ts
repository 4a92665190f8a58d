import { Effect, Layer, Redacted } from "effect"
import { PgClient } from "@effect/sql-pg"
import type * as Scope from "effect/Scope"
import type { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Database } from "../../src/eventstore/Database.ts"
import type { EventStore } from "../../src/eventstore/EventStore.ts"
import * as PgDatabase from "../../src/eventstore/PgDatabase.ts"
import * as PgliteClient from "../../src/eventstore/PgliteClient.ts"
import * as SqlEventStore from "../../src/eventstore/SqlEventStore.ts"

/**
 * A place to keep a log: a PGlite directory, or a PostgreSQL schema of its own (so that test files
 * running at once never see each other's events). Building `layer` twice opens the same storage
 * again, which is how tests close and reopen it. The storage is removed when the scope closes.
 */
export interface Storage {
  readonly layer: Layer.Layer<SqlClient | Database, SqlError>
}

export interface Backend {
  readonly name: "pglite" | "postgres"
  readonly storage: Effect.Effect<Storage, SqlError, Scope.Scope>
}

const pglite: Backend = {
  name: "pglite",
  storage: Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "pinledger-test-"))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => ({ layer: PgliteClient.layer({ dataDir: dir }) })))
}

const adminQuery = (url: string, query: string) =>
  Effect.gen(function*() {
    const sql = yield* PgClient.PgClient
    yield* sql.unsafe(query)
  }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })))

const postgres = (url: string): Backend => ({
  name: "postgres",
  storage: Effect.gen(function*() {
    const schema = `t_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
    yield* Effect.acquireRelease(
      adminQuery(url, `CREATE SCHEMA ${schema}`),
      () => adminQuery(url, `DROP SCHEMA ${schema} CASCADE`).pipe(Effect.ignore)
    )
    // Each log follower (account follower, notification sender, pin history) holds a connection
    // for LISTEN; the group commit writers and readers need the rest.
    return { layer: PgDatabase.layer({ url, maxConnections: 10, startupParameters: { search_path: schema } }) }
  })
})

/** PGlite always; PostgreSQL too when DATABASE_URL is set (as CI does). */
export const backends: ReadonlyArray<Backend> = [
  pglite,
  ...(process.env.DATABASE_URL ? [postgres(process.env.DATABASE_URL)] : [])
]

/** The migrated event store on a storage, with the database services beside it. */
export const storeLayer = (
  storage: Storage,
  options?: SqlEventStore.SqlEventStoreOptions
): Layer.Layer<EventStore | SqlClient | Database, SqlError> =>
  SqlEventStore.layerMigrated(storage.layer, options)
