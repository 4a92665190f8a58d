import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import * as Throttle from "../../src/actors/Throttle.ts"
import { backends, storeLayer } from "../support/backends.ts"

const settings = { maxFailures: 2, windowMs: 60_000, blockMs: 600_000 }
const meta = { time: "2026-11-23T00:00:00.000Z", actor: "test" }

describe("throttle memory", () => {
  it.effect("addresses with nothing in force are dropped past the cache limit; blocks stay, and a dropped address is read again from its stream", () =>
    Effect.gen(function*() {
      const storage = yield* backends[0]!.storage
      yield* Effect.gen(function*() {
        const throttle = yield* Throttle.Throttle
        // One blocked address, two with a single old failure each.
        yield* throttle.fail("login", "10.0.0.1", "a", meta)
        expect(yield* throttle.fail("login", "10.0.0.1", "a", meta)).toBe(true)
        yield* throttle.fail("login", "10.0.0.2", "b", meta)
        yield* throttle.fail("login", "10.0.0.3", "c", meta)
        expect(yield* throttle.tracked).toBe(3)
        // Past the window: the single failures are spent; the block (10 minutes) is not.
        yield* TestClock.adjust("2 minutes")
        yield* throttle.fail("login", "10.0.0.4", "d", meta)
        expect(yield* throttle.tracked).toBe(2)
        expect(yield* throttle.blocked("login", "10.0.0.1")).toBe(true)
        // 10.0.0.2 comes back: its old failure is read from the log, outside the window, so one
        // new failure does not block it, a second one does.
        expect(yield* throttle.fail("login", "10.0.0.2", "b", meta)).toBe(false)
        expect(yield* throttle.fail("login", "10.0.0.2", "b", meta)).toBe(true)
      }).pipe(Effect.provide(Throttle.layer(settings, 2).pipe(Layer.provide(storeLayer(storage)))))
    }).pipe(Effect.scoped))
})
