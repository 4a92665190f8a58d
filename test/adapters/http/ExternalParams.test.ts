import { describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import fc from "fast-check"
import { csvField, formatTime } from "../../../src/adapters/http/ExternalHistory.ts"
import {
  type BatchLimits,
  comparePins,
  endpointOf,
  jsonValue,
  parseBatchBody,
  parseExport,
  parseGet,
  parseLogEvent,
  parseProperty,
  parseUpdate,
  type PinName,
  pinKeyName,
  type Query,
  tokenOf
} from "../../../src/adapters/http/ExternalParams.ts"
import { queryOf } from "../../../src/adapters/http/LegacyHttp.ts"

/** A query string as a client would send it, read back as the server reads it. */
const roundTrip = (pairs: ReadonlyArray<readonly [string, string | undefined]>): Query =>
  queryOf(`/x?${pairs.map(([k, v]) => (v === undefined ? encodeURIComponent(k) : `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)).join("&")}`)

const pinArb: fc.Arbitrary<PinName> = fc.record({ pinType: fc.constantFrom("v" as const, "d" as const, "a" as const), pin: fc.integer({ min: 0, max: 255 }) })
/** A pin as a client may spell it: `V1`, `v1`, `D3`, `a0`. */
const spelled = (p: PinName, upper: boolean) => `${upper ? p.pinType.toUpperCase() : p.pinType}${p.pin}`
/** Values without NUL (a NUL splits a value in two, as the pin state keeps it). */
const valueArb = fc.string({ maxLength: 20 }).filter((s) => !s.includes("\0") && s.isWellFormed())

const same = (a: PinName, b: PinName) => a.pinType === b.pinType && a.pin === b.pin

describe("Blynk IoT API parameters (property tests)", () => {
  it("endpointOf ignores case and trailing slashes; tokenOf takes the first non-empty token", () => {
    fc.assert(fc.property(fc.constantFrom("get", "getAll", "update", "batch/update", "logEvent", "data/get"), fc.nat({ max: 3 }), fc.boolean(), (name, slashes, upper) => {
      expect(endpointOf(`${upper ? name.toUpperCase() : name}${"/".repeat(slashes)}`)).toBe(name.toLowerCase())
    }))
    fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom("token", "v1", "x"), fc.option(valueArb, { nil: undefined }))), (pairs) => {
      const first = pairs.find(([k]) => k === "token")?.[1]
      expect(tokenOf(roundTrip(pairs))).toBe(first === undefined || first === "" ? undefined : first)
    }))
  })

  it("get: any spelling of pins gives them back in order, each once; dataStreamId N is vN; anything else is refused", () => {
    fc.assert(fc.property(fc.array(fc.tuple(pinArb, fc.boolean(), fc.boolean()), { minLength: 1, maxLength: 10 }), (items) => {
      const pairs = items.map(([p, upper, asDs]) =>
        asDs && p.pinType === "v" ? (["dataStreamId", String(p.pin)] as const) : ([spelled(p, upper), undefined] as const)
      )
      const parsed = parseGet(roundTrip([["token", "t"], ...pairs]))
      const expected: Array<PinName> = []
      for (const [p] of items) if (!expected.some((e) => same(e, p))) expected.push(p)
      expect(parsed).toEqual(Result.succeed(expected))
    }))
    fc.assert(fc.property(fc.string({ maxLength: 8 }).filter((k) => !/^[vVdDaA]\d{1,3}$/.test(k) && k !== "token" && k !== ""), (key) => {
      expect(Result.isFailure(parseGet(roundTrip([[key, undefined]])))).toBe(true)
    }))
  })

  it("update: the pairs form groups repeated keys into one multi-value write per pin, in order; pin= and dataStreamId= forms give one", () => {
    fc.assert(fc.property(fc.array(fc.tuple(pinArb, fc.boolean(), valueArb), { minLength: 1, maxLength: 12 }), (items) => {
      const parsed = parseUpdate(roundTrip(items.map(([p, upper, v]) => [spelled(p, upper), v] as const)))
      const expected: Array<{ pinType: string; pin: number; values: Array<string> }> = []
      for (const [p, , v] of items) {
        const found = expected.find((e) => same(e as PinName, p))
        if (found) found.values.push(v)
        else expected.push({ ...p, values: [v] })
      }
      expect(parsed).toEqual(Result.succeed(expected))
    }))
    fc.assert(fc.property(pinArb, fc.array(valueArb, { minLength: 1, maxLength: 4 }), fc.boolean(), (p, values, upper) => {
      const viaPin = parseUpdate(roundTrip([["pin", spelled(p, upper)], ...values.map((v) => ["value", v] as const)]))
      expect(viaPin).toEqual(Result.succeed([{ ...p, values }]))
      const viaDs = parseUpdate(roundTrip([["dataStreamId", String(p.pin)], ...values.map((v) => ["value", v] as const)]))
      expect(viaDs).toEqual(Result.succeed([{ pinType: "v", pin: p.pin, values }]))
    }))
    // A NUL in a value makes several values, as the legacy API and the pin state have it.
    expect(parseUpdate(roundTrip([["v1", "a\0b"]]))).toEqual(Result.succeed([{ pinType: "v", pin: 1, values: ["a", "b"] }]))
  })

  it("update/property: repeated properties are lists, in order; only virtual pins and known properties", () => {
    const names = ["label", "labels", "color", "min", "urls", "url", "isDisabled"]
    fc.assert(fc.property(fc.integer({ min: 0, max: 255 }), fc.array(fc.tuple(fc.constantFrom(...names), valueArb), { minLength: 1, maxLength: 8 }), (pin, props) => {
      const parsed = parseProperty(roundTrip([["pin", `V${pin}`], ...props]))
      const expected: Array<{ property: string; values: Array<string> }> = []
      for (const [property, v] of props) {
        const found = expected.find((e) => e.property === property)
        if (found) found.values.push(v)
        else expected.push({ property, values: [v] })
      }
      expect(parsed).toEqual(Result.succeed({ pin, properties: expected }))
      expect(Result.isFailure(parseProperty(roundTrip([["pin", `D${pin}`], ...props])))).toBe(true)
    }))
  })

  const limits: BatchLimits = { maxPoints: 50, maxAgeMs: 30 * 86_400_000, maxAheadMs: 3_600_000 }
  const now = Date.parse("2026-06-01T12:00:00Z")

  it("batch body: points within the limits come back sorted by time (stable), values as text; one point outside them refuses all", () => {
    const scalar = fc.oneof(valueArb, fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean())
    const point = fc.tuple(fc.integer({ min: now - limits.maxAgeMs, max: now + limits.maxAheadMs }), fc.oneof(scalar, fc.array(scalar, { minLength: 1, maxLength: 3 })))
    fc.assert(fc.property(fc.array(point, { minLength: 1, maxLength: limits.maxPoints }), (points) => {
      const parsed = parseBatchBody(JSON.parse(JSON.stringify(points)), limits, now)
      expect(Result.isSuccess(parsed)).toBe(true)
      const got = Result.isSuccess(parsed) ? parsed.success : []
      const expected = points.map(([ts, v]) => ({ ts, values: (Array.isArray(v) ? v : [v]).map((x) => String(JSON.parse(JSON.stringify(x)))) }))
        .sort((a, b) => a.ts - b.ts)
      expect(got).toEqual(expected)
    }))
    fc.assert(fc.property(fc.array(point, { maxLength: 5 }), fc.oneof(fc.integer({ min: 0, max: now - limits.maxAgeMs - 1 }), fc.integer({ min: now + limits.maxAheadMs + 1, max: now + 400 * 86_400_000 })), fc.nat(), (points, bad, at) => {
      const body = [...points]
      body.splice(at % (body.length + 1), 0, [bad, 1])
      expect(Result.isFailure(parseBatchBody(body, limits, now))).toBe(true)
    }))
    expect(parseBatchBody(Array.from({ length: 51 }, () => [now, 1]), limits, now)).toEqual(
      Result.fail({ status: 400, message: "Too much data in batch. Maximum batch size is 50 points." })
    )
  })

  it("no input makes a parser throw", () => {
    const anyQuery = fc.array(fc.tuple(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom("token", "pin", "value", "dataStreamId", "period", "format", "tzName", "code")), fc.option(fc.string({ maxLength: 12 }), { nil: undefined })), { maxLength: 8 })
    fc.assert(fc.property(anyQuery, (pairs) => {
      const query = roundTrip(pairs)
      for (const parse of [parseGet, parseUpdate, parseProperty, parseExport, parseLogEvent]) {
        const result = parse(query) as Result.Result<unknown, { status: number; message: string }>
        if (Result.isFailure(result)) expect([400, 500]).toContain(result.failure.status)
      }
    }))
    fc.assert(fc.property(fc.jsonValue(), (body) => {
      const result = parseBatchBody(body, limits, now)
      if (Result.isFailure(result)) expect(result.failure.status).toBe(400)
    }))
  })

  it("export parameters: defaults, any case of the enums; an unknown value names its enum (500)", () => {
    expect(parseExport([])).toEqual(Result.succeed({
      period: "MONTH",
      spanMs: 30 * 86_400_000,
      granularity: "raw",
      source: "AVG",
      timeZone: "UTC",
      format: "TS",
      sendEvents: false,
      output: "FILE",
      pin: undefined
    }))
    fc.assert(fc.property(
      fc.constantFrom("HOUR", "DAY", "WEEK", "MONTH"),
      fc.constantFrom("RAW_DATA", "MINUTE", "HOURLY", "DAILY"),
      fc.constantFrom("AVG", "MIN", "MAX", "SUM", "COUNT"),
      fc.constantFrom("TS", "ISO_US", "ISO_SIMPLE"),
      fc.boolean(),
      (period, granularity, source, format, lower) => {
        const spell = (s: string) => (lower ? s.toLowerCase() : s)
        const parsed = parseExport(roundTrip([["period", spell(period)], ["granularityType", spell(granularity)], ["sourceType", spell(source)], ["format", spell(format)]]))
        expect(Result.isSuccess(parsed) && [parsed.success.period, parsed.success.source, parsed.success.format]).toEqual([period, source, format])
      }
    ))
    expect(parseExport(roundTrip([["period", "YEAR"]]))).toEqual(
      Result.fail({ status: 500, message: "No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.YEAR" })
    )
  })

  it("JSON values: finite numbers as numbers (integers only while exact), the rest as text, several as an array", () => {
    fc.assert(fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
      const text = String(x)
      expect(jsonValue([text])).toBe(/^-?\d+$/.test(text) && !Number.isSafeInteger(x) ? text : x + 0)
    }))
    fc.assert(fc.property(fc.string(), (s) => {
      const v = jsonValue([s])
      if (typeof v === "number") expect(Number.isFinite(v) && Number(s) === v).toBe(true)
      else expect(v).toBe(s)
    }))
    expect(jsonValue(["12345678901234567890"])).toBe("12345678901234567890")
    expect(jsonValue(["1", "x", "2.5"])).toEqual([1, "x", 2.5])
  })

  it("pins sort analog, digital, virtual, each by number; their keys are lower case", () => {
    fc.assert(fc.property(fc.array(pinArb), (pins) => {
      const sorted = [...pins].sort(comparePins)
      const rank = (p: PinName) => ({ a: 0, d: 1, v: 2 })[p.pinType] * 1000 + p.pin
      for (let i = 1; i < sorted.length; i++) expect(rank(sorted[i - 1]!)).toBeLessThanOrEqual(rank(sorted[i]!))
      for (const p of pins) expect(pinKeyName(p)).toBe(`${p.pinType}${p.pin}`)
    }))
  })

  it("logEvent: a code must have something but blanks; NULs become spaces (the log cannot hold them)", () => {
    expect(parseLogEvent(roundTrip([["code", "  "]]))).toEqual(Result.fail({ status: 400, message: "Event code is not provided." }))
    expect(parseLogEvent(roundTrip([["code", "a\0b"], ["description", "c\0d"]]))).toEqual(Result.succeed({ code: "a b", description: "c d" }))
  })
})

/** RFC 4180 fields of one record (what a spreadsheet reads back). */
const readCsvLine = (line: string): Array<string> => {
  const fields: Array<string> = []
  let i = 0
  for (;;) {
    let field = ""
    if (line[i] === "\"") {
      i++
      for (;;) {
        if (i >= line.length) throw new Error("unterminated quote")
        if (line[i] !== "\"") field += line[i++]
        else if (line[i + 1] === "\"") (field += "\"", i += 2)
        else {
          i++
          break
        }
      }
    } else {
      while (i < line.length && line[i] !== ",") field += line[i++]
    }
    fields.push(field)
    if (i >= line.length) return fields
    if (line[i] !== ",") throw new Error(`a quoted field goes on at ${i}`)
    i++
  }
}

describe("export formats (property tests)", () => {
  it("a CSV field reads back as written, whatever it holds", () => {
    fc.assert(fc.property(fc.array(fc.string({ unit: fc.constantFrom("a", ",", "\"", "\n", "\r", " ", "é") }), { minLength: 1, maxLength: 4 }), (fields) => {
      expect(readCsvLine(fields.map(csvField).join(","))).toEqual(fields)
    }))
  })

  it("ISO_SIMPLE in UTC is the ISO time to the second; ISO_US reads back to the same second; TS is the number", () => {
    fc.assert(fc.property(fc.integer({ min: Date.parse("2000-01-01"), max: Date.parse("2099-12-31") }), (ts) => {
      expect(formatTime(ts, "TS", "UTC")).toBe(ts)
      expect(formatTime(ts, "ISO_SIMPLE", "UTC")).toBe(new Date(ts).toISOString().slice(0, 19).replace("T", " "))
      const us = /^(\d\d)\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) (AM|PM)$/.exec(String(formatTime(ts, "ISO_US", "UTC")))!
      const hour = (Number(us[4]) % 12) + (us[7] === "PM" ? 12 : 0)
      const back = Date.UTC(Number(us[3]) + 2000, Number(us[1]) - 1, Number(us[2]), hour, Number(us[5]), Number(us[6]))
      expect(back).toBe(Math.floor(ts / 1000) * 1000)
    }))
    // A zone moves the wall clock: Kolkata is 5:30 ahead of UTC.
    expect(formatTime(Date.parse("2024-03-01T18:45:41Z"), "ISO_US", "Asia/Kolkata")).toBe("03/02/24 12:15:41 AM")
  })
})
