import { Effect, Layer, Queue, Redacted } from "effect"
import { PgClient } from "@effect/sql-pg"
import type { SqlError } from "effect/sql/SqlError"
import { Database } from "./Database.ts"

export interface PgDatabaseOptions {
  readonly url: string
  /** Most pooled connections. */
  readonly maxConnections?: number | undefined
  /** Extra startup parameters, e.g. a `search_path` that gives tests a schema of their own. */
  readonly startupParameters?: Readonly<Record<string, string>> | undefined
}

/** PostgreSQL through @effect/sql-pg: provides `SqlClient`, `PgClient` and our `Database`. */
export const layer = (options: PgDatabaseOptions) => {
  const client = PgClient.layer({
    url: Redacted.make(options.url),
    maxConnections: options.maxConnections ?? 10,
    applicationName: "pinledger",
    ...(options.startupParameters ? { startupParameters: options.startupParameters } : {})
  })
  const database = Layer.effect(
    Database,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      return Database.of({
        kind: "postgres",
        listen: (channel) =>
          Effect.gen(function*() {
            const notifications = yield* pg.listen(channel)
            const payloads = yield* Queue.unbounded<string, SqlError>()
            yield* Queue.take(notifications).pipe(
              Effect.flatMap((n) => Queue.offer(payloads, n.payload)),
              Effect.forever,
              // However the listening connection ends, end the queue with it, so its reader notices.
              Effect.catchCause((cause) => Queue.failCause(payloads, cause)),
              Effect.forkScoped
            )
            return payloads
          })
      })
    })
  )
  return Layer.provideMerge(database, client)
}
