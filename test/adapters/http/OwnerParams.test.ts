import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { cutRaw } from "../../../src/adapters/http/OwnerRoutes.ts"
import {
  defaultSpan,
  HISTORY_DEFAULT_LIMIT,
  HISTORY_MAX_LIMIT,
  parseAudit,
  parseCount,
  parseHistory,
  parseId,
  parsePinName,
  rollups
} from "../../../src/adapters/http/OwnerParams.ts"
import { pinName } from "../../../src/adapters/http/LegacyHttp.ts"
import { MAX_MILLIS, parseInstant, parseIsoDate } from "../../../src/adapters/TimeInput.ts"

const value = <A>(parsed: Result.Result<A, string>): A => {
  if (Result.isFailure(parsed)) throw new Error(`refused: ${parsed.failure}`)
  return parsed.success
}
const failure = <A>(parsed: Result.Result<A, string>): string => {
  if (Result.isSuccess(parsed)) throw new Error(`accepted: ${JSON.stringify(parsed.success)}`)
  return parsed.failure
}

/** Any text a URL could carry, and texts close to the valid ones. */
const anyText = fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.stringMatching(/^[vVdDaAx]?-?\d{0,20}(\.\d)?$/))
const time = fc.integer({ min: 0, max: 253_402_300_799_999 }) // up to 9999-12-31

describe("owner API path values", () => {
  it("ids: every whole number from 0 to 2^31 − 1 as written, nothing else; never throws", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2_147_483_647 }), (n) => {
      expect(value(parseId("dashId", String(n)))).toBe(n)
    }))
    fc.assert(fc.property(anyText, (text) => {
      const parsed = parseId("dashId", text)
      if (Result.isSuccess(parsed)) {
        expect(text).toMatch(/^\d{1,10}$/)
        expect(parsed.success).toBeLessThanOrEqual(2_147_483_647)
      } else {
        expect(parsed.failure).toMatch(/^dashId must be a whole number from 0 to 2147483647, not "/)
      }
    }))
    for (const bad of ["", "-1", "1.5", "2147483648", " 1", "1e3", "0x10"]) failure(parseId("deviceId", bad))
  })

  it("pins: V, D or A (either case) and 0–255, named back as `V5`; anything else is refused; never throws", () => {
    const pin = fc.record({ pinType: fc.constantFrom("v" as const, "d" as const, "a" as const), pin: fc.integer({ min: 0, max: 255 }) })
    fc.assert(fc.property(pin, fc.boolean(), (p, lower) => {
      const name = pinName(p)
      expect(name).toMatch(/^[VDA]\d{1,3}$/)
      expect(value(parsePinName(lower ? name.toLowerCase() : name))).toEqual(p)
    }))
    fc.assert(fc.property(anyText, (text) => {
      const parsed = parsePinName(text)
      if (Result.isSuccess(parsed)) expect(pinName(parsed.success).toLowerCase()).toBe(text.toLowerCase().replace(/^([vda])0+(\d)/, "$1$2"))
      else expect(parsed.failure).toMatch(/^pin must be V0–V255, D0–D255 or A0–A255, not "/)
    }))
    for (const bad of ["V256", "X1", "V", "1", "V-1", "V1.0", " V1"]) failure(parsePinName(bad))
  })
})

describe("typed times (ISO 8601 or epoch ms)", () => {
  it("epoch milliseconds and ISO dates and times read back as the same instant; other texts are refused; never throws", () => {
    fc.assert(fc.property(time, (ms) => {
      expect(parseInstant(String(ms))).toBe(ms)
      const iso = new Date(ms).toISOString()
      expect(parseInstant(iso)).toBe(ms)
      expect(parseIsoDate(iso)?.getTime()).toBe(ms)
      // A date alone is midnight UTC.
      expect(parseInstant(iso.slice(0, 10))).toBe(Math.floor(ms / 86_400_000) * 86_400_000)
    }))
    fc.assert(fc.property(anyText, (text) => {
      const ms = parseInstant(text)
      if (ms !== undefined) {
        expect(Number.isFinite(ms)).toBe(true)
        expect(Math.abs(ms)).toBeLessThanOrEqual(MAX_MILLIS)
      }
    }))
    for (const bad of ["yesterday", "1.5", "-5", "2026-13-01", "2026-1-1", "9".repeat(17), "2026-01-01T25:00Z", ""]) {
      expect(parseInstant(bad), bad).toBeUndefined()
    }
    expect(parseInstant("2026-01-01T12:00:00+02:00")).toBe(Date.UTC(2026, 0, 1, 10))
  })
})

describe("history query", () => {
  const now = Date.UTC(2026, 5, 1)

  it("takes any rollup, range and limit it is given, in order, and fills in what is left out", () => {
    const request = fc.record({
      rollup: fc.constantFrom(...rollups),
      from: time,
      span: fc.integer({ min: 1, max: 10 ** 12 }),
      limit: fc.integer({ min: 1, max: HISTORY_MAX_LIMIT })
    })
    fc.assert(fc.property(request, fc.boolean(), ({ rollup, from, span, limit }, iso) => {
      const to = from + span
      const text = (ms: number) => (iso && to <= 253_402_300_799_999 ? new Date(ms).toISOString() : String(ms))
      expect(value(parseHistory({ rollup, from: text(from), to: text(to), limit: String(limit) }, now))).toEqual({ rollup, from, to, limit })
      expect(value(parseHistory({ rollup }, now))).toEqual({ rollup, from: now - defaultSpan[rollup], to: now, limit: HISTORY_DEFAULT_LIMIT })
      expect(value(parseHistory({ rollup, to: String(to) }, now)).from).toBe(to - defaultSpan[rollup])
      // An empty or reversed range is refused.
      expect(failure(parseHistory({ rollup, from: String(to), to: String(from) }, now))).toMatch(/must be before to/)
    }))
    expect(value(parseHistory({}, now)).rollup).toBe("raw")
  })

  it("refuses what it cannot use with a message naming it; never throws", () => {
    const query = fc.record({ rollup: anyText, from: anyText, to: anyText, limit: anyText }, { requiredKeys: [] })
    fc.assert(fc.property(query, (q) => {
      const parsed = parseHistory(q, now)
      if (Result.isSuccess(parsed)) {
        expect(rollups).toContain(parsed.success.rollup)
        expect(parsed.success.from).toBeLessThan(parsed.success.to)
        expect(parsed.success.limit).toBeGreaterThanOrEqual(1)
        expect(parsed.success.limit).toBeLessThanOrEqual(HISTORY_MAX_LIMIT)
      } else {
        expect(parsed.failure).toMatch(/^(rollup|from|to|limit)\b/)
      }
    }))
    expect(failure(parseHistory({ rollup: "week" }, now))).toBe(`rollup must be one of raw, minute, hour, day, not "week"`)
    expect(failure(parseHistory({ limit: String(HISTORY_MAX_LIMIT + 1) }, now))).toMatch(/^limit must be a whole number from 1 to 10000/)
  })

  it("counts: in range or the fallback", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 0, max: 1000 }), (n, min) => {
      const parsed = parseCount("limit", String(n), { min, max: 1000, fallback: 7 })
      expect(Result.isSuccess(parsed)).toBe(n >= min)
    }))
    expect(value(parseCount("limit", undefined, { min: 1, max: 2, fallback: 7 }))).toBe(7)
  })

  it("raw pages end between milliseconds, and the next page starts where this one stopped", () => {
    const samples = fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 40 }).map((ts) => ts.sort((a, b) => a - b).map((t, i) => ({ ts: t, i })))
    fc.assert(fc.property(samples, fc.integer({ min: 1, max: 10 }), (all, limit) => {
      // Paging through everything: each page is what the query gives for [from, …), limit + 1 rows.
      const seen: Array<number> = []
      let from = 0
      for (let guard = 0; guard < 100; guard++) {
        const { page, next } = cutRaw(all.filter((s) => s.ts >= from).slice(0, limit + 1), limit)
        expect(page.length).toBeLessThanOrEqual(limit)
        seen.push(...page.map((s) => s.i))
        if (next === null) break
        expect(next).toBeGreaterThan(from)
        from = next
      }
      // Nothing twice, in order; only a millisecond with more than `limit` samples loses its rest.
      expect(seen).toEqual([...seen].sort((a, b) => a - b))
      const crowded = new Set(all.filter((s) => all.filter((t) => t.ts === s.ts).length > limit).map((s) => s.ts))
      expect(seen.filter((i) => !crowded.has(all[i]!.ts))).toEqual(all.filter((s) => !crowded.has(s.ts)).map((s) => s.i))
    }))
  })
})

describe("audit query", () => {
  const typeName = fc.stringMatching(/^[A-Z][A-Za-z0-9]{0,20}$/)

  it("types repeated or comma-separated, the range, the address, the device and the page, as given", () => {
    const query = fc.record({
      types: fc.array(typeName, { maxLength: 5 }),
      // Leaving room for `until` before the year 10000.
      since: fc.option(fc.integer({ min: 0, max: 253_390_000_000_000 }), { nil: undefined }),
      span: fc.integer({ min: 1, max: 10 ** 10 }),
      device: fc.option(fc.tuple(fc.nat({ max: 2_147_483_647 }), fc.nat({ max: 2_147_483_647 })), { nil: undefined }),
      limit: fc.integer({ min: 1, max: 1000 }),
      after: fc.option(fc.nat(), { nil: undefined })
    })
    fc.assert(fc.property(query, fc.boolean(), (q, split) => {
      const type = split ? [q.types.join(",")] : q.types
      const parsed = value(parseAudit({
        type,
        ...(q.since === undefined ? {} : { since: String(q.since), until: new Date(q.since + q.span).toISOString() }),
        address: " 10.0.0.7 ",
        ...(q.device === undefined ? {} : { dash: String(q.device[0]), device: String(q.device[1]) }),
        limit: String(q.limit),
        ...(q.after === undefined ? {} : { after: String(q.after) })
      }))
      expect(parsed.types ?? []).toEqual([...new Set(q.types)])
      expect(parsed.since?.getTime()).toBe(q.since)
      expect(parsed.until?.getTime()).toBe(q.since === undefined ? undefined : q.since + q.span)
      expect(parsed.address).toBe("10.0.0.7")
      expect([parsed.dashId, parsed.deviceId]).toEqual(q.device ?? [undefined, undefined])
      expect(parsed.limit).toBe(q.limit)
      expect(parsed.after).toBe(q.after)
    }))
    expect(value(parseAudit({}))).toEqual({ limit: 50 })
  })

  it("refuses what it cannot use with a message naming it; never throws", () => {
    const query = fc.record({
      type: fc.array(anyText, { maxLength: 3 }),
      since: anyText,
      until: anyText,
      address: anyText,
      dash: anyText,
      device: anyText,
      limit: anyText,
      after: anyText
    }, { requiredKeys: [] })
    fc.assert(fc.property(query, (q) => {
      const parsed = parseAudit(q)
      if (Result.isFailure(parsed)) expect(parsed.failure).toMatch(/^(type|since|until|address|a device|dash|device|limit|after)\b/)
    }))
    for (
      const [bad, message] of [
        [{ dash: "1.5" }, /^dash/],
        [{ device: "-1" }, /^device/],
        [{ type: ["Share Revoked"] }, /^type/],
        [{ since: "2026-13-45" }, /^since/],
        [{ limit: "1001" }, /^limit/],
        [{ after: "-1" }, /^after/]
      ] as const
    ) {
      expect(failure(parseAudit(bad))).toMatch(message)
    }
  })
})
