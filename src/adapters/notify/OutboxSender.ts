import { Cause, Duration, Effect, Exit, Layer, Queue, Semaphore } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import { NotificationEvent, NotificationFailed, type NotificationRequested, NotificationSent } from "../../domain/Notifications.ts"
import { Database } from "../../eventstore/Database.ts"
import { InvalidEvent } from "../../eventstore/Errors.ts"
import type { RecordedEvent } from "../../eventstore/Event.ts"
import * as EventCodec from "../../eventstore/EventCodec.ts"
import { type EventStore, eventsChannel } from "../../eventstore/EventStore.ts"
import { readOutboxPage, resultsOf } from "../../eventstore/OutboxQueries.ts"
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from "../../eventstore/Subscription.ts"
import * as SubscriberLag from "../../eventstore/SubscriberLag.ts"
import { Mailer, preview } from "./Mailer.ts"

export interface SenderOptions {
  /** The checkpoint's name. */
  readonly name?: string | undefined
  /** Attempts per message before it is recorded as failed for good; default 5. */
  readonly attempts?: number | undefined
  /** Wait after the first failed attempt, doubling after each, up to `max`; default 5 s to 5 min. */
  readonly backoffMs?: { readonly initial: number; readonly max: number } | undefined
  /** Most time one attempt may take; default 60 s. */
  readonly attemptTimeoutMs?: number | undefined
  /** Messages being delivered at once; default 8. */
  readonly concurrency?: number | undefined
  readonly batchSize?: number | undefined
  /** Polling fallback, for notifications of new events lost while a connection was down. */
  readonly pollInterval?: Duration.Input | undefined
  /**
   * After a commit's notification, wait this long before reading (default 250 ms): under load
   * every commit notifies, and one read per such spell is plenty for notifications.
   */
  readonly settleMillis?: number | undefined
}

const codec = EventCodec.make(NotificationEvent)
const log = EventCodec.typed(codec)

const same = (a: Checkpoint, b: Checkpoint) => a.txId === b.txId && a.position === b.position

/** Saves the checkpoint at least this often while it moves, even with nothing delivered. */
const SAVE_EVERY_MS = 5000

/** Retries what only the database can make fail (reads, appends) until it works: a message is never given up for that. */
const persistently = <A, E, R>(what: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, never, R> =>
  Effect.gen(function*() {
    for (let n = 0;; n++) {
      const exit = yield* Effect.exit(effect)
      if (Exit.isSuccess(exit)) return exit.value
      yield* Effect.logWarning(`notifications: ${what} failed, retrying`, Cause.pretty(exit.cause))
      yield* Effect.sleep(Duration.millis(Math.min(500 * 2 ** n, 30_000)))
    }
  })

/**
 * Delivers what devices asked for (domain/Notifications.ts): follows the log from a checkpoint,
 * hands each `NotificationRequested` to its sender (e-mail through the Mailer; push, tweet and SMS
 * have no provider here and go to the log), and appends `NotificationSent` or, per failed
 * attempt, `NotificationFailed` to the request's stream. Failed attempts are retried with
 * backoff, up to a bound; a hanging one is cut off by a timeout. It runs apart from the actors,
 * so nothing here ever delays a device.
 *
 * The checkpoint never passes a request that is still being delivered, so a restart loses
 * nothing; a request whose result is already in the log is not sent again, so a restart from an
 * older checkpoint resends nothing either (only a message whose sending was cut off by the
 * restart itself, before its result was recorded, is sent again: at least once).
 */
export const run = (options: SenderOptions = {}): Effect.Effect<never, never, Mailer | EventStore | SqlClient | Database> =>
  Effect.gen(function*() {
    const name = options.name ?? "notification-outbox"
    const attempts = options.attempts ?? 5
    const backoff = options.backoffMs ?? { initial: 5000, max: 300_000 }
    const attemptTimeout = Duration.millis(options.attemptTimeoutMs ?? 60_000)
    const concurrency = options.concurrency ?? 8
    const batchSize = options.batchSize ?? 1000
    const pollInterval = Duration.fromInputUnsafe(options.pollInterval ?? "1 second")
    const settle = Duration.millis(options.settleMillis ?? 250)
    const mailer = yield* Mailer
    const database = yield* Database

    /** One attempt: who sent it, or why not. */
    const send = (request: NotificationRequested): Effect.Effect<string, string> => {
      if (request.kind === "email") {
        return mailer.send({ to: request.to ?? "", subject: request.subject ?? "", text: request.body }).pipe(
          Effect.as(mailer.transport),
          Effect.mapError((e) => e.reason)
        )
      }
      const to = request.to === undefined ? "" : ` to ${request.to}`
      return Effect.as(
        Effect.logInfo(
          `${request.kind}${to} from dashboard ${request.dashId} device ${request.deviceId} (logged, not sent: no ${request.kind} provider): ${JSON.stringify(preview(request.body))}`
        ),
        "log"
      )
    }

    const record = (row: RecordedEvent, event: NotificationSent | NotificationFailed) =>
      persistently(
        `recording ${event._tag} of ${event.requestId}`,
        log.append(row.streamId, "any", [event], {
          actor: "notifier",
          correlationId: event.requestId,
          causationId: String(row.position),
          time: new Date().toISOString()
        }).pipe(
          // The event is ours and small; if the store refuses what it holds, retrying cannot help.
          Effect.catchIf((e): e is InvalidEvent => e instanceof InvalidEvent, (e) => Effect.logError(`notifications: cannot record ${event._tag}`, e))
        )
      )

    const deliver = (row: RecordedEvent, request: NotificationRequested) =>
      Effect.gen(function*() {
        const earlier = yield* persistently(`reading the results of ${request.requestId}`, resultsOf(row.streamId, row.version, request.requestId))
        const results = earlier.flatMap((e) => {
          const decoded = Effect.runSyncExit(codec.decode(e))
          return Exit.isSuccess(decoded) ? [decoded.value] : []
        })
        if (results.some((e) => e._tag === "NotificationSent" || (e._tag === "NotificationFailed" && e.final))) return
        let attempt = results.filter((e) => e._tag === "NotificationFailed").length
        while (true) {
          attempt++
          const exit = yield* Effect.exit(send(request).pipe(
            Effect.timeoutOrElse({ duration: attemptTimeout, orElse: () => Effect.fail(`no answer within ${Duration.format(attemptTimeout)}`) })
          ))
          if (Exit.isSuccess(exit)) {
            return yield* record(row, new NotificationSent({ requestId: request.requestId, kind: request.kind, by: exit.value, attempt }))
          }
          const reason = Exit.isFailure(exit) ? String(Cause.squash(exit.cause)) : ""
          const final = attempt >= attempts
          yield* Effect.logWarning(`notifications: ${request.kind} ${request.requestId}, attempt ${attempt} of ${attempts}, failed: ${reason}`)
          yield* record(row, new NotificationFailed({ requestId: request.requestId, kind: request.kind, attempt, reason: reason.slice(0, 500), final }))
          if (final) return
          yield* Effect.sleep(Duration.millis(Math.min(backoff.initial * 2 ** (attempt - 1), backoff.max)))
        }
      })

    const session = Effect.gen(function*() {
      const scope = yield* Effect.scope
      // Listen before the first read, so that no commit between read and wait goes unnoticed.
      const wake = yield* database.listen(eventsChannel)
      const settled = yield* Queue.unbounded<void>()
      const permits = yield* Semaphore.make(concurrency)
      let read = yield* loadCheckpoint(name)
      SubscriberLag.track(database, name, read)
      let saved = read
      let savedAt = Date.now()
      let settledSinceSave = false
      // Requests being delivered, in log order, each with the checkpoint just before it.
      const inFlight: Array<{ readonly before: Checkpoint; done: boolean }> = []
      while (true) {
        const rows = yield* readOutboxPage(read, batchSize)
        for (const row of rows) {
          const before = read
          read = { txId: row.txId, position: row.position }
          if (row.type !== "NotificationRequested") continue
          const decoded = yield* Effect.exit(codec.decode(row))
          if (Exit.isFailure(decoded) || decoded.value._tag !== "NotificationRequested") {
            yield* Effect.logError(`notifications: unreadable request at ${row.position}, skipped`, Exit.isFailure(decoded) ? Cause.pretty(decoded.cause) : "")
            continue
          }
          const entry = { before, done: false }
          inFlight.push(entry)
          yield* permits.take(1)
          yield* Effect.forkIn(
            deliver(row, decoded.value).pipe(
              Effect.ensuring(Effect.suspend(() => {
                entry.done = true
                settledSinceSave = true
                return Effect.andThen(permits.release(1), Queue.offer(settled, undefined))
              }))
            ),
            scope
          )
        }
        SubscriberLag.track(database, name, read)
        while (inFlight[0]?.done === true) inFlight.shift()
        const safe = inFlight[0]?.before ?? read
        if (!same(safe, saved) && (settledSinceSave || Date.now() - savedAt >= SAVE_EVERY_MS)) {
          yield* saveCheckpoint(name, saved, safe)
          saved = safe
          savedAt = Date.now()
          settledSinceSave = false
        }
        if (rows.length === batchSize) continue
        const woken = yield* Effect.raceFirst(
          Effect.as(Queue.take(wake), "commit" as const),
          Effect.as(Queue.take(settled), "delivered" as const)
        ).pipe(Effect.timeoutOption(pollInterval))
        if (woken._tag === "Some" && woken.value === "commit") yield* Effect.sleep(settle)
        yield* Queue.clear(wake)
        yield* Queue.clear(settled)
      }
    })

    yield* Effect.logInfo(`notifications: sender started (e-mail through ${mailer.transport}; push, tweet and SMS to the log)`)
    while (true) {
      const exit = yield* Effect.exit(Effect.scoped(session))
      if (Exit.isFailure(exit) && !Cause.hasInterruptsOnly(exit.cause)) {
        yield* Effect.logWarning("notifications: sender failed; retrying from its checkpoint", Cause.pretty(exit.cause))
      }
      yield* Effect.sleep(Duration.seconds(1))
    }
  }).pipe(Effect.annotateLogs("subscriber", options.name ?? "notification-outbox"))

/** The sender as a service of the server: started with it, stopped with it. */
export const layer = (options: SenderOptions = {}): Layer.Layer<never, never, Mailer | EventStore | SqlClient | Database> =>
  Layer.effectDiscard(Effect.forkScoped(run(options)))
