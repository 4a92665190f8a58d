import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { DAY_MS, dayOf, decideLogEvent, type DeviceEventsToday, type EventLimits } from "../../src/domain/LoggedEvents.ts"
import { EventLogged } from "../../src/domain/Pins.ts"

const fresh: DeviceEventsToday = { day: 0, count: 0, lastByCode: new Map() }

describe("logEvent limits (blynk2-device-api.md §2.6)", () => {
  it("whatever comes, at most perDay accepted per UTC day, and never one code twice within the interval; refusals count for nothing", () => {
    const limits = fc.record({ perDay: fc.integer({ min: 0, max: 6 }), codeIntervalMs: fc.integer({ min: 0, max: 5000 }) })
    const start = Date.parse("2026-01-01T23:59:50Z")
    const step = fc.record({ code: fc.constantFrom("a", "b", "c", " ", ""), wait: fc.integer({ min: 0, max: 3000 }) })
    fc.assert(fc.property(limits, fc.array(step, { maxLength: 60 }), (l: EventLimits, steps) => {
      let state = fresh
      let now = start
      const accepted: Array<{ code: string; at: number }> = []
      for (const { code, wait } of steps) {
        now += wait
        const decided = decideLogEvent(l, state, { dashId: 1, deviceId: 0, code, description: undefined, now })
        if (decided._tag !== "Accepted") continue
        expect(decided.event).toEqual(new EventLogged({ dashId: 1, deviceId: 0, code }))
        accepted.push({ code, at: now })
        state = decided.next
      }
      const perDay = new Map<number, number>()
      for (const a of accepted) perDay.set(dayOf(a.at), (perDay.get(dayOf(a.at)) ?? 0) + 1)
      for (const n of perDay.values()) if (l.perDay > 0) expect(n).toBeLessThanOrEqual(l.perDay)
      for (const code of ["a", "b", "c"]) {
        const times = accepted.filter((a) => a.code === code).map((a) => a.at)
        for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(l.codeIntervalMs)
      }
      expect(accepted.every((a) => a.code.trim() !== "")).toBe(true)
    }))
  })

  it("the day's count starts again with a new UTC day; the description is at most 300 characters", () => {
    const limits = { perDay: 1, codeIntervalMs: 1000 }
    const now = Date.parse("2026-01-01T12:00:00Z")
    const full: DeviceEventsToday = { day: dayOf(now), count: 1, lastByCode: new Map() }
    const event = (over: Partial<Parameters<typeof decideLogEvent>[2]>) =>
      decideLogEvent(limits, full, { dashId: 1, deviceId: 0, code: "a", description: undefined, now, ...over })._tag
    expect(event({})).toBe("DayLimit")
    expect(event({ now: (dayOf(now) + 1) * DAY_MS })).toBe("Accepted")
    expect(decideLogEvent(limits, fresh, { dashId: 1, deviceId: 0, code: "a", description: "x".repeat(301), now })._tag).toBe("DescriptionTooLong")
    const ok = decideLogEvent(limits, fresh, { dashId: 1, deviceId: 0, code: "a", description: "x".repeat(300), now })
    expect(ok._tag === "Accepted" && ok.event.description).toBe("x".repeat(300))
  })
})
