import { Effect, Layer } from "effect"
import { join } from "node:path"
import * as PgDatabase from "../eventstore/PgDatabase.ts"
import * as PgliteClient from "../eventstore/PgliteClient.ts"
import { databaseUrl, ServerConfig } from "./Config.ts"

/** PostgreSQL when DATABASE_URL is set, else embedded PGlite in the data directory. */
export const DatabaseLayer = Layer.unwrap(Effect.gen(function*() {
  const config = yield* ServerConfig
  const url = databaseUrl(config)
  if (url !== undefined) {
    yield* Effect.logInfo("database: PostgreSQL from DATABASE_URL")
    return PgDatabase.layer({ url, maxConnections: config.databasePoolSize })
  }
  const dataDir = join(config.dataDir, "pglite")
  yield* Effect.logInfo(`database: embedded PGlite in ${dataDir}`)
  return PgliteClient.layer({ dataDir })
}))
