import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { parseIsoDate } from "../../../src/adapters/TimeInput.ts"

/**
 * `--since` / `--until` of `pinledger audit`. The log's times are shown in UTC, and a date alone
 * is midnight UTC: a date and time without an offset is UTC too, whatever the machine's zone.
 */

const pad = (n: number, width = 2) => String(n).padStart(width, "0")

const moment = fc.record({
  year: fc.integer({ min: 1970, max: 2100 }),
  month: fc.integer({ min: 1, max: 12 }),
  day: fc.integer({ min: 1, max: 28 }),
  hour: fc.integer({ min: 0, max: 23 }),
  minute: fc.integer({ min: 0, max: 59 }),
  second: fc.option(fc.integer({ min: 0, max: 59 })),
  millis: fc.option(fc.integer({ min: 0, max: 999 })),
  separator: fc.constantFrom("T", " ")
})

let zone: string | undefined
beforeAll(() => {
  zone = process.env.TZ
  // A zone away from UTC, so that reading a time as local time shows.
  process.env.TZ = "America/New_York"
})
afterAll(() => {
  if (zone === undefined) delete process.env.TZ
  else process.env.TZ = zone
})

describe("ISO dates of the audit flags", () => {
  it("a date is midnight UTC; a date and time without an offset is UTC; with one, it is kept (property)", () => {
    fc.assert(fc.property(moment, fc.constantFrom("", "Z", "+02:00", "-0530"), (m, offset) => {
      const day = `${m.year}-${pad(m.month)}-${pad(m.day)}`
      const seconds = m.second === null ? "" : `:${pad(m.second)}${m.millis === null ? "" : `.${pad(m.millis, 3)}`}`
      const time = `${pad(m.hour)}:${pad(m.minute)}${seconds}`
      const utc = Date.UTC(m.year, m.month - 1, m.day, m.hour, m.minute, m.second ?? 0, m.second === null ? 0 : m.millis ?? 0)
      const shift = offset === "+02:00" ? -2 * 3_600_000 : offset === "-0530" ? 5.5 * 3_600_000 : 0
      expect(parseIsoDate(day)?.getTime()).toBe(Date.UTC(m.year, m.month - 1, m.day))
      expect(parseIsoDate(`${day}${m.separator}${time}${offset}`)?.getTime()).toBe(utc + shift)
    }))
  })

  it("anything else is not a date", () => {
    for (const text of ["", "yesterday", "2026-1-1", "2026-01-01T", "2026-01-01T12", "01/02/2026", "2026-01-01T12:00Zulu", "2026-13-01"]) {
      expect(parseIsoDate(text), text).toBeUndefined()
    }
  })
})
