import { Effect, Layer, Queue, Redacted } from "effect"
import { PgClient } from "@effect/sql-pg"
import { ConnectionError, SqlError } from "effect/sql/SqlError"
import { readFile } from "node:fs/promises"
import { Database } from "./Database.ts"
import * as PgTls from "./PgTls.ts"
import * as SqlArrays from "./SqlArrays.ts"

export interface PgDatabaseOptions {
  readonly url: string
  /** Most pooled connections. */
  readonly maxConnections?: number | undefined
  /** Extra startup parameters, e.g. a `search_path` that gives tests a schema of their own. */
  readonly startupParameters?: Readonly<Record<string, string>> | undefined
}

const configError = (message: string, cause?: unknown) =>
  new SqlError({ reason: new ConnectionError({ message, cause: cause ?? new Error(message), operation: "connect" }) })

/** The URL's TLS settings (`sslmode`, `sslrootcert`), with the root certificates read. */
const tlsOf = (url: string) =>
  Effect.gen(function*() {
    const tls = yield* PgTls.fromUrl(url).pipe(Effect.fromResult, Effect.mapError((message) => configError(message)))
    const rootCertFile = tls.rootCertFile
    if (rootCertFile === undefined) return { tls, ssl: tls.ssl }
    const pem = yield* Effect.tryPromise({
      try: () => readFile(rootCertFile, "utf8"),
      catch: (cause) => configError(`cannot read sslrootcert ${rootCertFile} (DATABASE_URL): ${cause instanceof Error ? cause.message : String(cause)}`, cause)
    })
    return { tls, ssl: PgTls.withRootCert(tls, pem) }
  })

/**
 * PostgreSQL through @effect/sql-pg: provides `SqlClient`, `PgClient` and our `Database`. The
 * URL's `sslmode` and `sslrootcert` are honoured (see `PgTls.fromUrl`); building the layer
 * connects once, so a server that cannot be reached fails here, and a TLS problem with a message
 * that says what to change.
 */
export const layer = (options: PgDatabaseOptions) => {
  const settings = tlsOf(options.url)
  const client = Layer.unwrap(Effect.map(settings, ({ ssl }) =>
    PgClient.layer({
      url: Redacted.make(options.url),
      maxConnections: options.maxConnections ?? 10,
      applicationName: "pinledger",
      // Bulk inserts bind typed-array columns as they are (SqlArrays.column).
      types: SqlArrays.pgTypes(),
      ...(ssl !== undefined ? { ssl } : {}),
      ...(options.startupParameters ? { startupParameters: options.startupParameters } : {})
    })))
  const database = Layer.effect(
    Database,
    Effect.gen(function*() {
      const pg = yield* PgClient.PgClient
      const { tls } = yield* settings
      yield* pg.unsafe("SELECT 1").pipe(Effect.mapError((error) => {
        const explained = PgTls.explainTlsFailure(error, tls, PgTls.target(options.url))
        return explained === undefined ? error : configError(explained, error)
      }))
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
