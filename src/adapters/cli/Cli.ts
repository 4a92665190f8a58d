import { Console, Effect, Layer } from "effect"
import { Command } from "effect/cli"
import type { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { ConfigError } from "effect/Config"
import { Database } from "../../eventstore/Database.ts"
import { migrate } from "../../eventstore/Migrations.ts"

/** What the commands run on, chosen by the composition root. */
export interface CliLayers<E> {
  /** The whole server: runs until interrupted (SIGINT/SIGTERM). */
  readonly server: Layer.Layer<never, E>
  /** The configured database alone, for offline commands. */
  readonly database: Layer.Layer<SqlClient | Database, SqlError | ConfigError>
}

export const makeCli = <E>(layers: CliLayers<E>) => {
  const serve = Command.make("serve", {}, () => Layer.launch(layers.server)).pipe(
    Command.withDescription("Start the server (the default when no command is given).")
  )
  const migrateCommand = Command.make("migrate", {}, () =>
    Effect.gen(function*() {
      const database = yield* Database
      const applied = yield* migrate
      yield* Console.log(
        applied.length === 0
          ? `${database.kind}: up to date`
          : applied.map((m) => `${database.kind}: applied ${m.version} ${m.name}`).join("\n")
      )
    }).pipe(Effect.provide(layers.database))).pipe(
      Command.withDescription("Apply pending database migrations and exit.")
    )
  return Command.make("pinledger").pipe(
    Command.withDescription("Pinledger: a self-hostable, event-sourced server for Blynk devices."),
    Command.withSubcommands([serve, migrateCommand])
  )
}
