import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Ref, Schema, Scope } from "effect"
import * as Actor from "../../src/actors/Actor.ts"

class Poisoned extends Schema.TaggedError<Poisoned>()("Poisoned", {}) {}
class LogUnavailable extends Schema.TaggedError<LogUnavailable>()("LogUnavailable", {}) {}

/** A counter whose `Add` is "appended to the log" (a Ref) and whose `Bump` lives only in memory. */
type Msg =
  | { readonly _tag: "Add"; readonly n: number }
  | { readonly _tag: "Bump" }
  | { readonly _tag: "Get"; readonly reply: Deferred.Deferred<number> }
  | { readonly _tag: "Poison"; readonly reply: Deferred.Deferred<number> }
  | {
    readonly _tag: "Block"
    readonly started: Deferred.Deferred<void>
    readonly gate: Deferred.Deferred<void>
    readonly interrupted: Deferred.Deferred<void>
  }

const Get = (reply: Deferred.Deferred<number>): Msg => ({ _tag: "Get", reply })

const counter = (log: Ref.Ref<number>, options: {
  readonly name?: string
  readonly mailboxSize?: number
  readonly seen?: Ref.Ref<ReadonlyArray<number>>
  readonly initial?: Effect.Effect<number, LogUnavailable>
} = {}) =>
  Actor.make<number, Msg, Poisoned | LogUnavailable, never>({
    name: options.name ?? "counter",
    initial: options.initial ?? Ref.get(log),
    ...(options.mailboxSize === undefined ? {} : { mailboxSize: options.mailboxSize }),
    restartBackoff: { initial: "1 millis", max: "5 millis" },
    handle: (state, message) => {
      switch (message._tag) {
        case "Add":
          return Ref.update(log, (n) => n + message.n).pipe(
            Effect.andThen(options.seen ? Ref.update(options.seen, (s) => [...s, message.n]) : Effect.void),
            Effect.as(state + message.n)
          )
        case "Bump":
          return Effect.succeed(state + 1000)
        case "Get":
          return Deferred.succeed(message.reply, state).pipe(Effect.as(state))
        case "Poison":
          return Effect.fail(new Poisoned())
        case "Block":
          return Deferred.succeed(message.started, undefined).pipe(
            Effect.andThen(Deferred.await(message.gate)),
            Effect.onInterrupt(() => Deferred.succeed(message.interrupted, undefined)),
            Effect.as(state)
          )
      }
    }
  })

const blocker = Effect.gen(function*() {
  return {
    _tag: "Block" as const,
    started: yield* Deferred.make<void>(),
    gate: yield* Deferred.make<void>(),
    interrupted: yield* Deferred.make<void>()
  }
})

describe("actor", () => {
  it.effect("handles messages one at a time, in order, threading the state", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make(0)
      const seen = yield* Ref.make<ReadonlyArray<number>>([])
      const actor = yield* counter(log, { seen })
      for (const n of [1, 2, 3, 4, 5]) expect(yield* actor.tell({ _tag: "Add", n })).toBe(true)
      expect(yield* actor.ask(Get)).toBe(15)
      expect(yield* Ref.get(seen)).toEqual([1, 2, 3, 4, 5])
      expect(yield* actor.restarts).toBe(0)
    }))

  it.effect("tell to a full mailbox returns false at once and drops the message", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make(0)
      const actor = yield* counter(log, { mailboxSize: 2 })
      const block = yield* blocker
      expect(yield* actor.tell(block)).toBe(true)
      yield* Deferred.await(block.started) // the worker holds it: the mailbox is empty
      expect(yield* actor.tell({ _tag: "Add", n: 1 })).toBe(true)
      expect(yield* actor.tell({ _tag: "Add", n: 2 })).toBe(true)
      expect(yield* actor.tell({ _tag: "Add", n: 4 })).toBe(false)
      yield* Deferred.succeed(block.gate, undefined)
      expect(yield* actor.ask(Get)).toBe(3)
    }))

  it.live("a crash fails the asker with ActorCrashed and the state is rebuilt from the log", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make(0)
      const actor = yield* counter(log)
      yield* actor.tell({ _tag: "Add", n: 5 })
      yield* actor.tell({ _tag: "Bump" }) // in memory only
      expect(yield* actor.ask(Get)).toBe(1005)
      const crashed = yield* Effect.flip(actor.ask((reply: Deferred.Deferred<number>): Msg => ({ _tag: "Poison", reply })))
      expect(crashed).toBeInstanceOf(Actor.ActorCrashed)
      expect(crashed).toMatchObject({ _tag: "ActorCrashed", actor: "counter" })
      // Rebuilt from the log: the Add survives, the in-memory Bump does not.
      expect(yield* actor.ask(Get)).toBe(5)
      yield* actor.tell({ _tag: "Add", n: 2 })
      expect(yield* actor.ask(Get)).toBe(7)
      expect(yield* actor.restarts).toBe(1)
    }))

  it.live("a failing initial state is retried until it succeeds; messages wait meanwhile", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make(10)
      const attempts = yield* Ref.make(0)
      const initial = Effect.gen(function*() {
        const n = yield* Ref.updateAndGet(attempts, (k) => k + 1)
        if (n <= 3) return yield* new LogUnavailable()
        return yield* Ref.get(log)
      })
      const actor = yield* counter(log, { initial })
      expect(yield* actor.tell({ _tag: "Add", n: 1 })).toBe(true)
      expect(yield* actor.ask(Get)).toBe(11)
      expect(yield* Ref.get(attempts)).toBe(4)
      expect(yield* actor.restarts).toBe(0)
    }))

  it.live("a killed worker is restarted from the log; another actor is unaffected", () =>
    Effect.gen(function*() {
      const logA = yield* Ref.make(0)
      const logB = yield* Ref.make(0)
      const a = yield* counter(logA, { name: "a" })
      const b = yield* counter(logB, { name: "b" })
      for (const actor of [a, b]) {
        yield* actor.tell({ _tag: "Add", n: 3 })
        yield* actor.tell({ _tag: "Bump" })
      }
      // a is busy with an ask when it is killed: the asker gets ActorCrashed, not a hang.
      const block = yield* blocker
      const asking = yield* Effect.forkChild(a.ask((_reply: Deferred.Deferred<number>) => block))
      yield* Deferred.await(block.started)
      yield* a.kill
      yield* Deferred.await(block.interrupted)
      const crashed = yield* Effect.flip(Fiber.join(asking))
      expect(crashed).toMatchObject({ _tag: "ActorCrashed", actor: "a" })

      expect(yield* a.ask(Get)).toBe(3)
      expect(yield* a.restarts).toBe(1)
      expect(yield* b.ask(Get)).toBe(1003)
      expect(yield* b.restarts).toBe(0)
    }))

  it.effect("closing the scope stops the actor and fails pending asks with ActorStopped", () =>
    Effect.gen(function*() {
      const log = yield* Ref.make(0)
      const scope = yield* Scope.make()
      const actor = yield* counter(log).pipe(Scope.provide(scope))
      const block = yield* blocker
      const inFlight = yield* Effect.forkChild(actor.ask((_reply: Deferred.Deferred<number>) => block))
      yield* Deferred.await(block.started)
      const queued = yield* Effect.forkChild(actor.ask(Get), { startImmediately: true })

      yield* Scope.close(scope, Exit.void)
      yield* Deferred.await(block.interrupted) // the worker was interrupted, not left running

      for (const fiber of [inFlight, queued]) {
        const stopped = yield* Effect.flip(Fiber.join(fiber))
        expect(stopped).toBeInstanceOf(Actor.ActorStopped)
      }
      expect(yield* actor.tell({ _tag: "Add", n: 1 })).toBe(false)
      const later = yield* Effect.flip(actor.ask(Get))
      expect(later).toMatchObject({ _tag: "ActorStopped", actor: "counter" })
      expect(yield* Ref.get(log)).toBe(0)
    }))
})

describe("actor fast path (handleSync)", () => {
  type Fast =
    | { readonly _tag: "Inc" }
    | { readonly _tag: "Boom" }
    | { readonly _tag: "Get"; readonly reply: Deferred.Deferred<number> }

  it.live("handles synchronous messages in order with effectful ones; a throw restarts from initial and loses only that message", () =>
    Effect.scoped(Effect.gen(function*() {
      const log = yield* Ref.make(100)
      const actor = yield* Actor.make<number, Fast, never, never>({
        name: "fast",
        initial: Ref.get(log),
        restartBackoff: { initial: "1 millis", max: "5 millis" },
        handleSync: (state, message) => {
          if (message._tag === "Inc") return state + 1
          if (message._tag === "Boom") throw new Error("boom")
          return undefined
        },
        handle: (state, message) =>
          message._tag === "Get" ? Effect.as(Deferred.succeed(message.reply, state), state) : Effect.succeed(state)
      })
      for (let i = 0; i < 1000; i++) actor.offer({ _tag: "Inc" })
      expect(yield* actor.ask<number, never>((reply) => ({ _tag: "Get", reply }))).toBe(1100)
      actor.offer({ _tag: "Inc" })
      actor.offer({ _tag: "Boom" })
      actor.offer({ _tag: "Inc" })
      // The crash rebuilt the state from `initial` (100); the Inc after the Boom was kept.
      expect(yield* actor.ask<number, never>((reply) => ({ _tag: "Get", reply }))).toBe(101)
      expect(yield* actor.restarts).toBe(1)
    })))
})
