import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Ref } from "effect"
import * as Actor from "../../../src/actors/Actor.ts"
import { Delivery } from "../../../src/adapters/blynk/Delivery.ts"

type Msg = { readonly _tag: "Item"; readonly n: number } | { readonly _tag: "Done"; readonly reply: Deferred.Deferred<ReadonlyArray<number>> }

describe("delivery to a full mailbox", () => {
  it.live("pauses the connection, keeps every message in order, and resumes once there is room", () =>
    Effect.scoped(Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const seen = yield* Ref.make<ReadonlyArray<number>>([])
      const ref = yield* Actor.make<null, Msg, never, never>({
        name: "slow",
        initial: Effect.succeed(null),
        mailboxSize: 2,
        handle: (state, message) =>
          message._tag === "Item"
            ? Deferred.await(gate).pipe(Effect.andThen(Ref.update(seen, (s) => [...s, message.n])), Effect.as(state))
            : Effect.flatMap(Ref.get(seen), (s) => Deferred.succeed(message.reply, s)).pipe(Effect.as(state))
      })
      const context = yield* Effect.context<never>()
      const run = Effect.runCallbackWith(context)
      const events: Array<string> = []
      const resumed = yield* Deferred.make<void>()
      const delivery = new Delivery<Msg>(
        { run: (effect, onExit) => void run(effect as Effect.Effect<unknown, unknown>, { onExit: onExit as never }) },
        () => ({
          pause: () => void events.push("pause"),
          resume: () => {
            events.push("resume")
            Deferred.doneUnsafe(resumed, Effect.void)
          }
        })
      )
      for (let n = 0; n < 20; n++) delivery.send({ ref }, { _tag: "Item", n })
      expect(events).toEqual(["pause"])
      yield* Deferred.succeed(gate, undefined)
      yield* Deferred.await(resumed)
      expect(events).toEqual(["pause", "resume"])
      const all = yield* ref.ask<ReadonlyArray<number>, never>((reply) => ({ _tag: "Done", reply }))
      expect(all).toEqual(Array.from({ length: 20 }, (_, n) => n))
    })))
})
