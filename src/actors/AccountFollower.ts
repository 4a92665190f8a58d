import { Cause, Duration, Effect, Layer, Queue } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import { Database } from "../eventstore/Database.ts"
import { eventsChannel } from "../eventstore/EventStore.ts"
import { type Checkpoint, readSettledHeads, settledHorizon } from "../eventstore/Subscription.ts"
import * as SubscriberLag from "../eventstore/SubscriberLag.ts"
import { Directory } from "./Directory.ts"

export interface AccountFollowerOptions {
  /** Least time between two reads of the log: under load every commit notifies, and this is no hot path. */
  readonly minIntervalMillis?: number
  /** Read even without a notification this often (a notification lost while reconnecting). */
  readonly pollMillis?: number
}

/**
 * Tells running user actors when another process (the CLI on the same PostgreSQL) appended to
 * their account's stream, so that a device reprovisioned or deleted from the command line is
 * closed at once, as it is when an app does it. It follows the settled log from where it stood
 * when the server started (actors started later read their stream themselves); the actors'
 * own appends are already known to them and are ignored there by version.
 */
export const layer = (options: AccountFollowerOptions = {}): Layer.Layer<never, never, Directory | SqlClient | Database> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const directory = yield* Directory
    const database = yield* Database
    const minInterval = Duration.millis(options.minIntervalMillis ?? 250)
    const poll = Duration.millis(options.pollMillis ?? 1000)

    const follow = Effect.gen(function*() {
      const wake = yield* database.listen(eventsChannel)
      let at: Checkpoint = yield* settledHorizon
      SubscriberLag.track(database, "account-follower", at)
      while (true) {
        const heads = yield* readSettledHeads(at, 5000)
        const last = heads.at(-1)
        if (last === undefined) {
          yield* Queue.take(wake).pipe(Effect.timeoutOption(poll))
          yield* Effect.sleep(minInterval)
          yield* Queue.clear(wake)
          continue
        }
        const latest = new Map<string, number>()
        for (const h of heads) if (h.streamId.startsWith("user-")) latest.set(h.streamId, Math.max(h.version, latest.get(h.streamId) ?? 0))
        for (const [stream, version] of latest) {
          const actor = yield* directory.running(stream)
          if (actor !== undefined) yield* actor.ref.tell({ _tag: "CatchUp", version })
        }
        at = { txId: last.txId, position: last.position }
        SubscriberLag.track(database, "account-follower", at)
      }
    })

    yield* Effect.forkScoped(Effect.forever(
      Effect.scoped(follow).pipe(
        Effect.catchCause((cause) =>
          Cause.hasInterruptsOnly(cause)
            ? Effect.failCause(cause)
            : Effect.logWarning("account follower failed; starting again", Cause.pretty(cause))
        ),
        Effect.andThen(Effect.sleep(poll))
      )
    ))
  }))
