import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { type FloodDecision, FloodMeter } from "../../../src/adapters/blynk/FloodMeter.ts"

/** Feeds `count` frames spread over the second that starts at `atMs`. */
const second = (meter: FloodMeter, atMs: number, count: number): Array<FloodDecision> =>
  Array.from({ length: count }, (_, i) => meter.onFrame(atMs + Math.floor((i * 1000) / Math.max(count, 1))))

describe("flood meter (protocol.md §6.1)", () => {
  it("lets a steady sender at the limit through", () => {
    const meter = new FloodMeter(100, 0)
    for (let s = 0; s < 120; s++) {
      expect(second(meter, s * 1000, 100).every((d) => d === "accept")).toBe(true)
    }
    expect(meter.rate).toBeCloseTo(100, 5)
  })

  it("after a burst second, drops everything, with one notice a minute, until the average decays", () => {
    const meter = new FloodMeter(100, 0)
    // The first second has no completed second before it: all of it goes through.
    expect(second(meter, 0, 170).every((d) => d === "accept")).toBe(true)
    // From then on the average (170) is over the limit.
    const next = second(meter, 1000, 10)
    expect(next[0]).toBe("dropAndNotify")
    expect(next.slice(1).every((d) => d === "drop")).toBe(true)
    expect(meter.onFrame(30_000)).toBe("drop")
    // Silence lets it decay: 170 · e^(−n/60) ≤ 100 after n ≥ 60·ln 1.7 ≈ 31.8 s.
    expect(meter.onFrame(61_500)).toBe("accept")
  })

  it("notices at most once per minute while muted", () => {
    const meter = new FloodMeter(10, 0)
    second(meter, 0, 1000)
    const decisions: Array<FloodDecision> = []
    for (let s = 1; s < 180; s++) decisions.push(...second(meter, s * 1000, 50))
    const notices = decisions.filter((d) => d === "dropAndNotify").length
    expect(notices).toBe(3)
    expect(decisions.includes("accept")).toBe(false)
  })

  it("never accepts while the average is over the limit, and never throws", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.array(fc.integer({ min: 0, max: 5_000 }), { maxLength: 500 }), (limit, gaps) => {
        const meter = new FloodMeter(limit, 0)
        let now = 0
        for (const gap of gaps) {
          now += gap
          const decision = meter.onFrame(now)
          const after = meter.rate
          // The decision is taken on the average after folding completed seconds.
          if (after !== undefined && after > limit) expect(decision).not.toBe("accept")
          if (after === undefined || after <= limit) expect(decision).toBe("accept")
        }
      })
    )
  })
})
