import { Console, Data, Effect, Layer, Logger, Option, References, Runtime } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { ConfigError } from "effect/Config"
import type { SqlClient } from "effect/sql/SqlClient"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import * as Audit from "../../eventstore/Audit.ts"
import * as Backup from "../../eventstore/Backup.ts"
import type { Database } from "../../eventstore/Database.ts"
import { migrate } from "../../eventstore/Migrations.ts"
import * as Replay from "../../eventstore/Replay.ts"
import * as Verify from "../../eventstore/Verify.ts"
import { HistoryConfig, retentionOf } from "../HistoryConfig.ts"
import { parseIsoDate } from "../TimeInput.ts"

/**
 * The operations commands (issue 5 §3, §4): audit, replay, verify, backup, restore. Each runs on
 * the configured database, migrated first. Data goes to standard output, logs to standard error
 * (so `audit --json` is clean JSON lines). A failure prints one line, `pinledger: <why>`, to
 * standard error and exits with status 1; so does `verify` when it finds a difference.
 */

/** Already told to the user: exit 1 without another report. */
class Reported extends Data.TaggedError("Reported")<{}> {
  override readonly [Runtime.errorReported] = false
}

const describe = (error: unknown): string => {
  if (isSqlError(error)) {
    const cause = error.reason.cause
    const own = error.reason.message
    const inner = cause instanceof Error && cause.message !== own ? `: ${cause.message}` : ""
    return `database: ${own}${inner}`
  }
  return error instanceof Error ? error.message : String(error)
}

type DatabaseLayer = Layer.Layer<SqlClient | Database, SqlError | ConfigError>

const runOn = (database: DatabaseLayer) => <A, E>(effect: Effect.Effect<A, E, SqlClient | Database>) =>
  Effect.andThen(migrate, effect).pipe(
    Effect.provide(database),
    Effect.catch((error) => Console.error(`pinledger: ${describe(error)}`).pipe(Effect.andThen(Effect.fail(new Reported())))),
    Effect.provideService(Logger.LogToStderr, true)
  )

const isoDate = (name: string) =>
  Flag.String(name).pipe(
    Flag.mapTryCatch(
      (text) => {
        const date = parseIsoDate(text)
        if (date === undefined) throw new Error("not an ISO date")
        return date
      },
      () => `--${name} takes an ISO date, such as 2026-01-01 or 2026-01-01T12:00:00Z`
    ),
    Flag.optional
  )

export const makeOpsCommands = (database: DatabaseLayer) => {
  const run = runOn(database)

  const audit = Command.make("audit", {
    email: Flag.String("email").pipe(Flag.optional, Flag.withDescription("an account: its streams, and failed logins naming the address")),
    appName: Flag.String("app").pipe(Flag.withDefault("Blynk"), Flag.withDescription("the account's app name (Blynk by default)")),
    dash: Flag.Int("dash").pipe(Flag.optional, Flag.withDescription("with --email and --device: a device's dashboard id")),
    device: Flag.Int("device").pipe(Flag.optional, Flag.withDescription("with --email and --dash: a device")),
    type: Flag.String("type").pipe(Flag.atLeast(0), Flag.withDescription("event types (repeat the flag, or a comma list)")),
    since: isoDate("since").pipe(Flag.withDescription("recorded at or after this ISO date")),
    until: isoDate("until").pipe(Flag.withDescription("recorded before this ISO date")),
    address: Flag.String("address").pipe(Flag.optional, Flag.withDescription("the remote address's host (or host:port)")),
    limit: Flag.Int("limit").pipe(Flag.withDefault(Audit.defaultLimit), Flag.withDescription(`events per page (at most ${Audit.maxLimit})`)),
    after: Flag.Int("after").pipe(Flag.optional, Flag.withDescription("the cursor printed by the previous page")),
    json: Flag.Boolean("json").pipe(Flag.withDefault(false), Flag.withDescription("JSON lines instead of text"))
  }, (input) =>
    run(Effect.gen(function*() {
      const page = yield* Audit.queryAudit({
        email: Option.getOrUndefined(input.email),
        appName: input.appName,
        dashId: Option.getOrUndefined(input.dash),
        deviceId: Option.getOrUndefined(input.device),
        types: input.type.flatMap((t) => t.split(",")),
        since: Option.getOrUndefined(input.since),
        until: Option.getOrUndefined(input.until),
        address: Option.getOrUndefined(input.address),
        limit: input.limit,
        after: Option.getOrUndefined(input.after)
      })
      if (input.json) {
        for (const entry of page.entries) yield* Console.log(JSON.stringify(Audit.toJson(entry)))
        yield* Console.log(JSON.stringify({ next: page.next ?? null }))
      } else {
        for (const entry of page.entries) yield* Console.log(Audit.formatLine(entry))
        yield* Console.log(page.next === undefined ? `(${page.entries.length} events, no more)` : `next page: --after ${page.next}`)
      }
    })).pipe(Effect.provideService(References.MinimumLogLevel, "Warn"))).pipe(
      Command.withDescription("Query the log: by account, device, event type, time and remote address, a page at a time.")
    )

  const replay = Command.make("replay", {
    projection: Argument.String("projection").pipe(
      Argument.optional,
      Argument.withDescription(`one projection (${Replay.projectionNames().join(", ")}); all when omitted`)
    )
  }, (input) =>
    run(Effect.gen(function*() {
      const history = yield* HistoryConfig
      const done = yield* Replay.replay(Option.getOrUndefined(input.projection), { historyRetention: retentionOf(history) })
      for (const r of done) yield* Console.log(`${r.name} (${r.kind}): ${r.detail}, ${r.rows} rows`)
      if (Option.isNone(input.projection)) {
        for (const [name, why] of Object.entries(Replay.notReplayable)) yield* Console.log(`${name}: left alone (${why})`)
      }
    }))).pipe(
      Command.withDescription("Drop projections and rebuild them from the log (on PostgreSQL also while the server runs).")
    )

  const verify = Command.make("verify", {}, () =>
    run(Effect.gen(function*() {
      const report = yield* Verify.verify()
      for (const line of Verify.formatReport(report)) yield* Console.log(line)
      if (report.differences > 0) return yield* Effect.fail(new Reported())
    }))).pipe(
      Command.withDescription("Rebuild every inline projection aside and report where it differs from the live tables (exit 1 if it does).")
    )

  const backup = Command.make("backup", {
    file: Argument.String("file").pipe(Argument.withDescription("where to write the backup (gzip'd JSON lines)"))
  }, (input) =>
    run(Effect.gen(function*() {
      const header = yield* Backup.backup(input.file)
      yield* Console.log(`backup: ${header.count} events (head ${header.head}) written to ${input.file} (${header.checksum})`)
    }))).pipe(Command.withDescription("Write the whole log to FILE."))

  const restore = Command.make("restore", {
    file: Argument.String("file").pipe(Argument.withDescription("a file written by pinledger backup"))
  }, (input) =>
    run(Effect.gen(function*() {
      const restored = yield* Backup.restore(input.file)
      yield* Console.log(`restore: ${restored.header.count} events (head ${restored.header.head}) loaded from ${input.file}, checksum verified`)
      yield* Console.log(`rebuilt: ${restored.rebuilt.join(", ")}; asynchronous projections and the notification sender start from the beginning of the log`)
    }))).pipe(Command.withDescription("Load a backup into an empty database and rebuild the projections."))

  return [audit, replay, verify, backup, restore] as const
}
