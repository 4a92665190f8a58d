import { Clock, Effect } from "effect"

/**
 * The real clock moved forward by what a test says: token expiry and throttle windows are tested
 * by advancing it, never by waiting. Timers (`sleep`) keep real time.
 */
export const shiftedClock = () => {
  const real = Effect.runSync(Clock.clockWith(Effect.succeed))
  let offsetMs = 0
  const nowMs = () => real.currentTimeMillisUnsafe() + offsetMs
  const clock: Clock.Clock = {
    currentTimeMillisUnsafe: nowMs,
    currentTimeMillis: Effect.sync(nowMs),
    currentTimeNanosUnsafe: () => real.currentTimeNanosUnsafe() + BigInt(offsetMs) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => real.currentTimeNanosUnsafe() + BigInt(offsetMs) * 1_000_000n),
    monotonicTimeNanosUnsafe: () => real.monotonicTimeNanosUnsafe(),
    monotonicTimeNanos: real.monotonicTimeNanos,
    sleep: (duration) => real.sleep(duration)
  }
  return {
    clock,
    /** Moves the clock forward. */
    advance: (ms: number) => {
      offsetMs += ms
    },
    /** Back to real time. */
    reset: () => {
      offsetMs = 0
    }
  }
}
