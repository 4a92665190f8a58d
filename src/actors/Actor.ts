/**
 * The actor primitive: a fiber that owns its state and reads a bounded mailbox of typed messages.
 *
 * - Messages are handled one at a time, in mailbox order; the state never leaves the worker fiber.
 * - Replies go through a `Deferred` carried in the message (`ask` makes it and hands it to `make`).
 * - A supervisor fiber forks the worker and watches its exit. Any exit of the worker is a crash:
 *   a failure or defect of `handle`, or an interruption from outside (`kill`). After a crash the
 *   supervisor logs the cause, waits the backoff, and forks a fresh worker that rebuilds the state
 *   with `initial` (from the log, in the real system) and continues with the next message; the
 *   message being handled is dropped and, if it was an ask, the asker fails with `ActorCrashed`.
 * - A failing `initial` is retried with the same backoff; messages wait in the mailbox meanwhile.
 * - The backoff doubles with each consecutive failure (crash or failed `initial`), capped at `max`,
 *   and resets after a message is handled successfully.
 * - Closing the scope stops the actor: pending asks (queued, in flight, or waiting for room in the
 *   mailbox) fail with `ActorStopped`; later `tell` returns false, later `ask` fails with `ActorStopped`.
 */
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Queue, Ref, Schema } from "effect"
import type { Scope } from "effect"

/** The actor crashed (or was killed) while handling this ask; the actor itself has been restarted. */
export class ActorCrashed extends Schema.TaggedError<ActorCrashed>()("ActorCrashed", {
  actor: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `actor ${this.actor} crashed while handling the request: ${this.reason}`
  }
}

/** The actor was stopped (its scope closed) before it replied. */
export class ActorStopped extends Schema.TaggedError<ActorStopped>()("ActorStopped", {
  actor: Schema.String
}) {
  override get message() {
    return `actor ${this.actor} is stopped`
  }
}

export interface ActorOptions<S, M, E, R> {
  readonly name: string
  /** Builds the state at start and after every crash (from the log, in the real system). */
  readonly initial: Effect.Effect<S, E, R>
  /** Handles one message; the returned state replaces the old one. A failure or defect is a crash. */
  readonly handle: (state: S, message: M) => Effect.Effect<S, E, R>
  /**
   * A fast path for messages that need no effect: returns the new state, or undefined to leave the
   * message to `handle`. A throw is a crash, as a defect of `handle` is. Messages it takes are
   * handled in a plain loop, many per turn of the worker fiber, which matters on hot paths.
   */
  readonly handleSync?: ((state: S, message: M) => S | undefined) | undefined
  /** Capacity of the mailbox; default 1024. */
  readonly mailboxSize?: number
  /** Delay before a restart or a retry of `initial`, doubling per consecutive failure; default 10 ms to 5 s. */
  readonly restartBackoff?: { readonly initial: Duration.Input; readonly max: Duration.Input }
}

export interface ActorRef<M> {
  readonly name: string
  /** Enqueues a message; false when the mailbox is full (the message is dropped) or the actor is stopped. Never blocks. */
  readonly tell: (message: M) => Effect.Effect<boolean>
  /** `tell` as a plain call, for socket callbacks on the hot path. */
  readonly offer: (message: M) => boolean
  /** Enqueues a message, waiting while the mailbox is full; false once the actor is stopped. */
  readonly offerWait: (message: M) => Effect.Effect<boolean>
  /**
   * Makes a reply `Deferred`, enqueues the message `make` builds around it, and waits for the reply.
   * Waits for room while the mailbox is full (backpressure: the caller waits for the reply anyway;
   * add a timeout if that is not wanted). Fails with `ActorCrashed` if the actor crashes while
   * handling the message, with `ActorStopped` if the actor stops first. A handler that neither
   * completes nor fails the reply leaves the asker waiting: that is a bug of the handler.
   */
  readonly ask: <A, EA>(
    make: (reply: Deferred.Deferred<A, EA>) => M
  ) => Effect.Effect<A, EA | ActorCrashed | ActorStopped>
  /** How many times the worker was restarted after a crash (for tests and metrics). */
  readonly restarts: Effect.Effect<number>
  /**
   * Interrupts the current worker fiber, for tests and supervision; the supervisor treats it as a
   * crash and restarts the worker from `initial`. Returns once the worker has ended.
   */
  readonly kill: Effect.Effect<void>
}

/** A message in the mailbox; an ask carries the way to fail its asker if the actor crashes. */
interface Envelope<M> {
  readonly message: M
  readonly abort: Deferred.Deferred<never, ActorCrashed | ActorStopped> | undefined
}

export const make = <S, M, E, R>(
  options: ActorOptions<S, M, E, R>
): Effect.Effect<ActorRef<M>, never, R | Scope.Scope> =>
  Effect.gen(function*() {
    const { name } = options
    const mailbox = yield* Queue.bounded<Envelope<M>>(options.mailboxSize ?? 1024)
    const stopped = yield* Deferred.make<never, ActorStopped>()
    const restarts = yield* Ref.make(0)
    const failures = yield* Ref.make(0)
    const backoffInitial = Duration.toMillis(options.restartBackoff?.initial ?? Duration.millis(10))
    const backoffMax = Duration.toMillis(options.restartBackoff?.max ?? Duration.seconds(5))
    let current: Fiber.Fiber<never, E> | undefined

    const log = (what: string, cause: Cause.Cause<unknown>) =>
      Effect.logError(`actor ${name}: ${what}`, cause).pipe(Effect.annotateLogs({ actor: name }))

    /** Counts one more consecutive failure and waits the corresponding backoff. */
    const backoff = Effect.gen(function*() {
      const n = yield* Ref.updateAndGet(failures, (k) => k + 1)
      yield* Effect.sleep(Duration.millis(Math.min(backoffInitial * 2 ** (n - 1), backoffMax)))
    })

    const rebuild: Effect.Effect<S, E, R> = options.initial.pipe(
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.failCause(cause)
          : log("initial state failed, retrying", cause).pipe(Effect.andThen(backoff), Effect.andThen(Effect.suspend(() => rebuild)))
      )
    )

    const abortFor = (cause: Cause.Cause<unknown>) =>
      Effect.map(
        Deferred.isDone(stopped),
        (isStopped): ActorCrashed | ActorStopped =>
          isStopped ? new ActorStopped({ actor: name }) : new ActorCrashed({ actor: name, reason: Cause.pretty(cause) })
      )

    const failAsker = (envelope: Envelope<M>, cause: Cause.Cause<unknown>) => {
      const abort = envelope.abort
      return abort === undefined ? Effect.void : Effect.flatMap(abortFor(cause), (error) => Deferred.fail(abort, error))
    }

    // Taken from the mailbox, not yet handled. Kept outside the worker, so that a crash loses only
    // the message being handled and the next worker goes on with the rest.
    let taken: ReadonlyArray<Envelope<M>> = []
    let next = 0
    const handleSync = options.handleSync

    const worker: Effect.Effect<never, E, R> = Effect.gen(function*() {
      let state = yield* rebuild
      while (true) {
        if (next >= taken.length) {
          yield* Effect.uninterruptibleMask((restore) =>
            Effect.map(restore(Queue.takeBetween(mailbox, 1, 4096)), (envelopes) => {
              taken = envelopes
              next = 0
            })
          )
        }
        if (handleSync !== undefined) {
          while (next < taken.length) {
            const envelope = taken[next]!
            let after: S | undefined
            try {
              after = handleSync(state, envelope.message)
            } catch (defect) {
              next++
              const cause = Cause.die(defect)
              yield* failAsker(envelope, cause)
              return yield* Effect.failCause(cause)
            }
            if (after === undefined) break
            state = after
            next++
          }
          if (next >= taken.length) {
            yield* Ref.set(failures, 0)
            continue
          }
        }
        const envelope = taken[next++]!
        state = yield* Effect.uninterruptibleMask((restore) =>
          restore(Effect.suspend(() => options.handle(state, envelope.message))).pipe(
            Effect.onError((cause) => failAsker(envelope, cause))
          )
        )
        yield* Ref.set(failures, 0)
      }
    })

    const supervisor = Effect.gen(function*() {
      while (true) {
        const fiber = yield* Effect.forkChild(worker)
        current = fiber
        const exit = yield* Fiber.await(fiber)
        current = undefined
        // Stopping shuts the mailbox down, which ends the worker: that is no crash.
        if (yield* Deferred.isDone(stopped)) return
        yield* log("crashed, restarting", Exit.isFailure(exit) ? exit.cause : Cause.die("worker ended"))
        yield* backoff
        yield* Ref.update(restarts, (n) => n + 1)
      }
    })

    yield* Effect.forkScoped(supervisor)
    // Added after the fork, so it runs before the supervisor is interrupted.
    yield* Effect.addFinalizer(() =>
      Deferred.fail(stopped, new ActorStopped({ actor: name })).pipe(Effect.andThen(Queue.shutdown(mailbox)))
    )

    const ask = <A, EA>(
      build: (reply: Deferred.Deferred<A, EA>) => M
    ): Effect.Effect<A, EA | ActorCrashed | ActorStopped> =>
      Effect.gen(function*() {
        const reply = yield* Deferred.make<A, EA>()
        const abort = yield* Deferred.make<never, ActorCrashed | ActorStopped>()
        const accepted = yield* Queue.offer(mailbox, { message: build(reply), abort })
        if (!accepted) return yield* new ActorStopped({ actor: name })
        return yield* Effect.raceFirst(Deferred.await(reply), Deferred.await(abort))
      }).pipe((waiting) => Effect.raceFirst(waiting, Deferred.await(stopped)))

    return {
      name,
      tell: (message: M) => Effect.sync(() => Queue.offerUnsafe(mailbox, { message, abort: undefined })),
      offer: (message: M) => Queue.offerUnsafe(mailbox, { message, abort: undefined }),
      offerWait: (message: M) => Queue.offer(mailbox, { message, abort: undefined }),
      ask,
      restarts: Ref.get(restarts),
      kill: Effect.suspend(() => (current === undefined ? Effect.void : Fiber.interrupt(current)))
    } satisfies ActorRef<M>
  })
