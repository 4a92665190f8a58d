import { Data, Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { inlineProjections, rebuild } from "./projections/Inline.ts"
import { PinState, PinStateFold, rebuildRest } from "./projections/PinState.ts"
import { PinHistory, type RebuildResult, type Retention } from "./projections/PinHistory.ts"
import type { InlineProjection } from "./SqlEventStore.ts"

/**
 * `pinledger replay`: drops projections and builds them again from the log (DESIGN.md: everything
 * but the log is derived). On PostgreSQL this may run while servers append; on PGlite only while
 * no server runs (the embedded database is one process's, DirectoryLock.ts).
 */

/**
 * Locks appends out until the transaction ends. Every append inserts into pl_events, which takes
 * ROW EXCLUSIVE; SHARE ROW EXCLUSIVE conflicts with it (and with itself, so two replays or
 * verifies take turns) but not with reads. Taking it waits for the appends in flight to commit
 * (they hold ROW EXCLUSIVE until then), and while it is held an append waits at its INSERT,
 * before it has touched any projection table. So a rebuild under it reads a log nobody extends
 * and writes tables nobody else writes, and an append that waited applies its events to the
 * rebuilt tables afterwards: none is missed, none applied twice. The stream advisory locks the
 * writer takes (SqlEventStore.ts) would not do: they only order writers of the same stream.
 * Readers (token lookups, share logins) see the old tables until the rebuild commits.
 */
export const lockOutAppends = Effect.gen(function*() {
  const sql = yield* SqlClient
  yield* sql`LOCK TABLE pl_events IN SHARE ROW EXCLUSIVE MODE`
})

export interface Rebuilt {
  readonly name: string
  readonly kind: "inline" | "async"
  /** Rows in its tables afterwards. */
  readonly rows: number
  readonly detail: string
}

const rowCount = (tables: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    let n = 0
    for (const table of tables) {
      const rows = yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM ${sql(table)}`
      n += Number(rows[0]?.n ?? 0)
    }
    return n
  })

/**
 * Rebuilds inline projections from the log in ONE transaction with appends locked out: they are
 * written in the append's transaction, so they must match the log exactly at every commit.
 */
export const replayInline = (
  projections: ReadonlyArray<InlineProjection> = inlineProjections,
  /** pin-state's events of the settled log, folded already by the pin history's rebuild. */
  pinState?: { readonly fold: PinStateFold; readonly horizon: string }
) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* lockOutAppends
      const done: Array<Rebuilt> = []
      for (const projection of projections) {
        if (projection === PinState && pinState !== undefined) yield* rebuildRest(pinState.fold, pinState.horizon)
        else yield* rebuild(projection)
        done.push({ name: projection.name, kind: "inline", rows: yield* rowCount(projection.tables), detail: "rebuilt from the log" })
      }
      return done
    }))
  }).pipe(Effect.withSpan("Replay.inline"))

/**
 * Sends a checkpointed subscriber back to the start of the log with its tables emptied, in one
 * transaction, so that it reads everything again (Subscription.ts). The checkpoint row is moved
 * first: its row lock orders this against the subscriber's own compare-and-set. If the
 * subscriber commits a batch first, this waits for it and the DELETEs that follow (new statements)
 * see and remove that batch's rows; if this goes first, the subscriber's compare-and-set then
 * fails and its batch is rolled back, and it starts again from the start. Either way nothing is
 * left over and nothing is counted twice. A subscriber that never saved a checkpoint has its row
 * made here, at the start. A running subscriber keeps its place in memory while it is idle: it
 * starts again at its next batch (the next append), a stopped one when it starts.
 */
export const resetSubscriber = (subscriber: string, tables: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`INSERT INTO pl_checkpoints (subscriber, tx_id, position) VALUES (${subscriber}, '0'::xid8, 0)
        ON CONFLICT (subscriber) DO UPDATE SET tx_id = '0'::xid8, position = 0, updated_at = now()`
      for (const table of tables) yield* sql`DELETE FROM ${sql(table)}`
    }))
  }).pipe(Effect.withSpan("Replay.resetSubscriber", { attributes: { subscriber } }))

/** A projection that follows the log with a checkpoint, as replay sees it. */
export interface AsyncProjection {
  readonly name: string
  readonly tables: ReadonlyArray<string>
  /** Empties it and brings it back from the log; says what it did. */
  readonly replay: Effect.Effect<string, SqlError, SqlClient>
}

/**
 * The asynchronous projections. pin-history has its own rebuild (it replays the settled log into
 * emptied tables and moves its checkpoint in one transaction; a running server's subscriber then
 * finds its checkpoint moved and carries on from there). One without a rebuild of its own would
 * use `resetSubscriber` and be caught up by its subscriber.
 */
export const asyncProjections = (options: ReplayOptions = {}): ReadonlyArray<AsyncProjection> => [
  {
    name: PinHistory.name,
    tables: PinHistory.tables,
    replay: Effect.map(
      // Rows already past the server's retention are not written again.
      PinHistory.rebuild({ retention: options.historyRetention ?? PinHistory.defaultRetention }),
      historyDetail
    )
  }
]

const historyDetail = (r: RebuildResult) => `${r.events} events replayed (${r.writes} pin writes)`

export interface ReplayOptions {
  /** The pin history's retention (the server's PINLEDGER_HISTORY_* settings); its defaults otherwise. */
  readonly historyRetention?: Retention | undefined
}

/**
 * Subscribers that replay must leave alone. The notification sender's checkpoint is not a
 * projection's: it is how far mails, pushes and SMS have been sent. Sent back to the start, it
 * would look at every notification ever requested again, and send each one whose result the
 * log does not hold (those cut short, or recorded under another sender) a second time. It has no
 * tables to rebuild either: what it knows is in the log (NotificationSent / NotificationFailed).
 */
export const notReplayable: Readonly<Record<string, string>> = {
  "notification-outbox":
    "the notification sender is not a projection: its checkpoint records which notifications were sent, and resetting it would send mails again"
}

export const projectionNames = (): ReadonlyArray<string> => [
  ...inlineProjections.map((p) => p.name),
  ...asyncProjections().map((p) => p.name)
]

export class ReplayRefused extends Data.TaggedError("ReplayRefused")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

/**
 * Replays the named projection, or every one (inline ones first, together, then each async
 * one). Refuses unknown names and the notification sender.
 */
export const replay = (name?: string, options: ReplayOptions = {}) =>
  Effect.gen(function*() {
    if (name !== undefined && notReplayable[name] !== undefined) {
      return yield* new ReplayRefused({ reason: `${name} is not replayed: ${notReplayable[name]}` })
    }
    const inline = inlineProjections.filter((p) => name === undefined || p.name === name)
    const async = asyncProjections(options).filter((p) => name === undefined || p.name === name)
    if (inline.length === 0 && async.length === 0) {
      return yield* new ReplayRefused({
        reason: `no projection ${JSON.stringify(name)}; the projections are: ${projectionNames().join(", ")}`
      })
    }
    // Both pin projections: the pin history's rebuild reads the log once for the two of them,
    // folding pin-state's events on the way (PinStateFold takes them in any order); pin-state is
    // then written, with the few events past that read, in the transaction that holds appends
    // back. So the log is parsed once, and appends wait only for that last part.
    if (inline.includes(PinState) && async.some((p) => p.name === PinHistory.name)) {
      const fold = new PinStateFold()
      const history = yield* PinHistory.rebuild({
        retention: options.historyRetention ?? PinHistory.defaultRetention,
        also: { types: PinState.types, take: (events) => fold.add(events) }
      })
      const rest = async.filter((p) => p.name !== PinHistory.name)
      return [
        ...yield* replayInline(inline, { fold, horizon: history.horizon }),
        { name: PinHistory.name, kind: "async", rows: history.rows ?? (yield* rowCount(PinHistory.tables)), detail: historyDetail(history) },
        ...yield* Effect.forEach(rest, replayAsync)
      ]
    }
    return [...(inline.length > 0 ? yield* replayInline(inline) : []), ...yield* Effect.forEach(async, replayAsync)]
  })

const replayAsync = (projection: AsyncProjection) =>
  Effect.gen(function*() {
    const detail = yield* projection.replay
    return { name: projection.name, kind: "async", rows: yield* rowCount(projection.tables), detail } satisfies Rebuilt
  })
