import { Config, Option, Redacted } from "effect"

/**
 * Every setting of the server, read from the environment. Keep this list and the README's
 * configuration table the same.
 */
export const ServerConfig = Config.all({
  httpPort: Config.Port("PINLEDGER_HTTP_PORT").pipe(Config.withDefault(8080)),
  bind: Config.String("PINLEDGER_BIND").pipe(Config.withDefault("0.0.0.0")),
  dataDir: Config.String("PINLEDGER_DATA_DIR").pipe(Config.withDefault("./data")),
  databaseUrl: Config.Redacted("DATABASE_URL").pipe(Config.option),
  databasePoolSize: Config.Int("PINLEDGER_DB_POOL_SIZE").pipe(Config.withDefault(10)),
  groupCommitMaxBatch: Config.Int("PINLEDGER_GROUP_COMMIT_MAX_BATCH").pipe(Config.withDefault(1000))
})
export type ServerConfig = Config.Success<typeof ServerConfig>

export const databaseUrl = (config: ServerConfig): string | undefined =>
  Option.getOrUndefined(Option.map(config.databaseUrl, Redacted.value))
