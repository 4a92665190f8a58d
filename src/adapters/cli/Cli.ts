import { Console, Effect, Layer } from "effect"
import { Command, Flag } from "effect/cli"
import type { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import type { ConfigError } from "effect/Config"
import { Database } from "../../eventstore/Database.ts"
import { migrate } from "../../eventstore/Migrations.ts"
import * as AccountLog from "../../actors/AccountLog.ts"
import type { AccountCommand } from "../../domain/Account.ts"
import type { Metadata } from "../../eventstore/Event.ts"
import type { EventStore } from "../../eventstore/EventStore.ts"
import { ServerConfig } from "../Config.ts"
import { clientPasswordHash, hashPassword, newToken } from "../security/Passwords.ts"
import { makeOpsCommands } from "./OpsCommands.ts"

/** What the commands run on, chosen by the composition root. */
export interface CliLayers<E, ES> {
  /** The whole server: runs until interrupted (SIGINT/SIGTERM). */
  readonly server: Layer.Layer<never, E>
  /** The configured database alone, for offline commands. */
  readonly database: Layer.Layer<SqlClient | Database, SqlError | ConfigError>
  /** The migrated event store on the configured database, for provisioning. */
  readonly store: Layer.Layer<EventStore, ES>
}

const cliMetadata = (): Metadata => ({ actor: "cli", session: `cli-${process.pid}`, time: new Date().toISOString() })

const email = Flag.String("email").pipe(Flag.withDescription("the account's e-mail address"))
const appName = Flag.String("app").pipe(Flag.withDefault("Blynk"), Flag.withDescription("the app name (Blynk by default)"))

export const makeCli = <E, ES>(layers: CliLayers<E, ES>) => {
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

  const accountCreate = Command.make("create", {
    email,
    appName,
    password: Flag.String("password").pipe(Flag.withDescription("the password the app will log in with"))
  }, (input) =>
    Effect.gen(function*() {
      const passwordHash = yield* hashPassword(clientPasswordHash(input.email, input.password))
      const { state } = yield* AccountLog.execute(
        input.email,
        input.appName,
        () => [{ _tag: "Register", email: input.email, appName: input.appName, passwordHash }],
        cliMetadata()
      )
      yield* Console.log(`account created: ${state?.email} (${input.appName})`)
    }).pipe(Effect.provide(layers.store))).pipe(Command.withDescription("Create an account."))

  const deviceCreate = Command.make("create", {
    email,
    appName,
    name: Flag.String("name").pipe(Flag.withDescription("the device's name (at most 50 characters)")),
    board: Flag.String("board").pipe(Flag.withDefault("Generic Board"), Flag.withDescription("board type label"))
  }, (input) =>
    Effect.gen(function*() {
      const token = newToken()
      const config = yield* ServerConfig
      const limits = { maxDashboards: config.maxDashboards, maxDevicesPerDashboard: config.maxDevicesPerDashboard }
      const { events } = yield* AccountLog.execute(input.email, input.appName, (state): ReadonlyArray<AccountCommand> => {
        // The first dashboard, or a new one when there is none. (No account: the decider says so.)
        const dash = state?.dashboards[0]
        const dashId = dash?.id ?? 1
        const deviceId = dash === undefined ? 0 : Math.max(-1, ...dash.devices.map((d) => d.id)) + 1
        return [
          ...(state !== undefined && dash === undefined ? [{ _tag: "CreateDashboard" as const, dashId, name: "My project" }] : []),
          { _tag: "CreateDevice", dashId, deviceId, name: input.name, boardType: input.board, token }
        ]
      }, cliMetadata(), limits)
      const created = events.find((e) => e._tag === "DeviceCreated")
      if (created?._tag === "DeviceCreated") {
        yield* Console.log(`device ${created.deviceId} "${created.name}" in dashboard ${created.dashId} of ${input.email}`)
      }
      yield* Console.log(`token: ${token}`)
    }).pipe(Effect.provide(layers.store))).pipe(
      Command.withDescription("Create a device (and a dashboard if the account has none); prints its token.")
    )

  const deviceReprovision = Command.make("reprovision", {
    email,
    appName,
    dash: Flag.Int("dash").pipe(Flag.withDefault(1), Flag.withDescription("the dashboard id (1 by default)")),
    device: Flag.Int("device").pipe(Flag.withDescription("the device id"))
  }, (input) =>
    Effect.gen(function*() {
      const token = newToken()
      yield* AccountLog.execute(
        input.email,
        input.appName,
        () => [{ _tag: "RefreshToken", dashId: input.dash, deviceId: input.device, token }],
        cliMetadata()
      )
      yield* Console.log(`device ${input.device} in dashboard ${input.dash} of ${input.email} has a new token; the old one is refused`)
      yield* Console.log(`token: ${token}`)
    }).pipe(Effect.provide(layers.store))).pipe(
      Command.withDescription("Give a device a new token (the old one stops working); prints it.")
    )

  return Command.make("pinledger").pipe(
    Command.withDescription("Pinledger: a self-hostable, event-sourced server for Blynk devices."),
    Command.withSubcommands([
      serve,
      migrateCommand,
      Command.make("account").pipe(Command.withDescription("Accounts."), Command.withSubcommands([accountCreate])),
      Command.make("device").pipe(Command.withDescription("Devices."), Command.withSubcommands([deviceCreate, deviceReprovision])),
      ...makeOpsCommands(layers.database)
    ])
  )
}
