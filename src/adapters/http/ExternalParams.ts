import { Result } from "effect"
import type { PinValuesWrite } from "../../actors/HttpWrites.ts"
import type { PinType } from "../../domain/Pins.ts"
import { numericValue } from "../../eventstore/projections/PinHistory.ts"
import { parsePin, pinValues, wellFormed } from "./LegacyHttp.ts"

/**
 * What the Blynk IoT device API's requests say (blynk2-device-api.md §2.2–§2.4), read from their
 * query strings and bodies: pure parsers, each answering the request or the error to send.
 * Pinledger has no datastream templates: `dataStreamId=N` names virtual pin N.
 */

/** An answer other than 200: `{"error":{"message":…}}` with this status. */
export interface ApiError {
  readonly status: number
  readonly message: string
}

export type Parsed<A> = Result.Result<A, ApiError>

export type Query = ReadonlyArray<{ readonly key: string; readonly value: string | undefined }>

export interface PinName {
  readonly pinType: PinType
  readonly pin: number
}

const bad = (message: string, status = 400): Parsed<never> => Result.fail({ status, message })

export const WRONG_PIN = "Wrong pin format."
export const WRONG_DATASTREAM = "Wrong dataStreamId format."
export const NO_VALUE = "No value provided."

/** The endpoint a path after `/external/api/` names: case and trailing slashes do not matter (`logevent`, `update/`). */
export const endpointOf = (rest: string): string => rest.toLowerCase().replace(/\/+$/, "")

/** The first `token` parameter's value; undefined when missing or empty (`No token provided.`). */
export const tokenOf = (query: Query): string | undefined => {
  const token = query.find((p) => p.key === "token")?.value
  return token === undefined || token === "" ? undefined : token
}

/** `dataStreamId=N`: virtual pin N (0–255). */
export const parseDataStreamId = (text: string | undefined): PinName | undefined => {
  if (text === undefined || !/^\d{1,3}$/.test(text)) return undefined
  const pin = Number(text)
  return pin <= 255 ? { pinType: "v", pin } : undefined
}

/** The key a pin has in JSON answers (`get`, `getAll`): lower case, `v1`, `d3`, `a0`. */
export const pinKeyName = (p: PinName) => `${p.pinType}${p.pin}`

const pinOrder: Readonly<Record<PinType, number>> = { a: 0, d: 1, v: 2 }

/** `getAll`'s order: analog, digital, then virtual pins, each by number. */
export const comparePins = (a: PinName, b: PinName) => pinOrder[a.pinType] - pinOrder[b.pinType] || a.pin - b.pin

const samePin = (a: PinName, b: PinName) => a.pinType === b.pinType && a.pin === b.pin

/**
 * `get`: the pins named by bare keys (`&v1&V2`; a value after `=` is ignored) and by
 * `dataStreamId=N`, in order, each once.
 */
export const parseGet = (query: Query): Parsed<ReadonlyArray<PinName>> => {
  const pins: Array<PinName> = []
  for (const { key, value } of query) {
    if (key === "token") continue
    const pin = key === "dataStreamId" ? parseDataStreamId(value) : parsePin(key)
    if (pin === undefined) return bad(key === "dataStreamId" ? WRONG_DATASTREAM : WRONG_PIN)
    if (!pins.some((p) => samePin(p, pin))) pins.push(pin)
  }
  return pins.length === 0 ? bad(WRONG_PIN) : Result.succeed(pins)
}

/** Values of repeated parameters as the pin state keeps them (a value holding NULs is several). */
const valuesOf = (values: ReadonlyArray<string>): readonly [string, ...Array<string>] | undefined => {
  const [first, ...rest] = pinValues(values)
  return first === undefined ? undefined : [first, ...rest]
}

/**
 * `update` and the GET `batch/update`, in their three forms: `dataStreamId=N&value=…` or
 * `pin=V1&value=…` (repeated `value` for a multi-value pin), else `{pin}={value}` pairs (a key
 * repeated for a multi-value pin, several pins at once). One write per pin, in order of first
 * appearance.
 */
export const parseUpdate = (query: Query): Parsed<readonly [PinValuesWrite, ...Array<PinValuesWrite>]> => {
  const params = query.filter((p) => p.key !== "token")
  const named = params.filter((p) => p.key === "dataStreamId" || p.key === "pin")
  if (named.length > 0) {
    if (named.length > 1) return bad(WRONG_PIN)
    const { key, value } = named[0]!
    const pin = key === "dataStreamId" ? parseDataStreamId(value) : parsePin(value)
    if (pin === undefined) return bad(key === "dataStreamId" ? WRONG_DATASTREAM : WRONG_PIN)
    const values = valuesOf(params.filter((p) => p.key === "value").map((p) => p.value ?? ""))
    return values === undefined ? bad(NO_VALUE) : Result.succeed([{ ...pin, values }])
  }
  const writes: Array<{ pin: PinName; values: Array<string> }> = []
  for (const { key, value } of params) {
    const pin = parsePin(key)
    if (pin === undefined) return bad(WRONG_PIN)
    if (value === undefined) return bad(NO_VALUE)
    const found = writes.find((w) => samePin(w.pin, pin))
    if (found) found.values.push(value)
    else writes.push({ pin, values: [value] })
  }
  const [first, ...rest] = writes.map((w): PinValuesWrite => ({ ...w.pin, values: valuesOf(w.values)! }))
  return first === undefined ? bad("No pin for update provided.") : Result.succeed([first, ...rest])
}

/**
 * Properties `update/property` may set: the widget properties of the Blynk docs (spec §2.2, notes
 * on update/property), the legacy list among them.
 */
export const externalProperties: ReadonlySet<string> = new Set([
  "label", "color", "isDisabled", "isHidden", "onLabel", "offLabel", "onColor", "offColor", "onBackColor", "offBackColor",
  "backColor", "labels", "min", "max", "step", "isOnPlay", "url", "urls", "valueFormatting", "suffix",
  "maximumFractionDigits", "opacity", "scale", "rotation", "sortType", "icons", "onImageUrl", "offImageUrl", "page",
  "sound", "isMuted", "loop", "autoplay", "contentDesign"
])

export interface PropertyRequest {
  readonly pin: number
  readonly properties: readonly [{ readonly property: string; readonly values: readonly [string, ...Array<string>] }, ...Array<{ readonly property: string; readonly values: readonly [string, ...Array<string>] }>]
}

/**
 * `update/property`: `pin=V1` (or `dataStreamId=N`), then `{property}={value}`, a property
 * repeated for a list (`labels=a&labels=b`, or the indexed `url=2&url=<u>`). Properties belong
 * to virtual pins.
 */
export const parseProperty = (query: Query): Parsed<PropertyRequest> => {
  const params = query.filter((p) => p.key !== "token")
  const named = params.filter((p) => p.key === "dataStreamId" || p.key === "pin")
  if (named.length !== 1) return bad(WRONG_PIN)
  const { key, value } = named[0]!
  const pin = key === "dataStreamId" ? parseDataStreamId(value) : parsePin(value)
  if (pin === undefined) return bad(key === "dataStreamId" ? WRONG_DATASTREAM : WRONG_PIN)
  if (pin.pinType !== "v") return bad(WRONG_PIN)
  const properties: Array<{ property: string; values: Array<string> }> = []
  for (const p of params) {
    if (p.key === "pin" || p.key === "dataStreamId") continue
    if (!externalProperties.has(p.key)) return bad(`Unknown property ${JSON.stringify(p.key)}.`)
    if (p.value === undefined) return bad(NO_VALUE)
    const found = properties.find((x) => x.property === p.key)
    if (found) found.values.push(p.value)
    else properties.push({ property: p.key, values: [p.value] })
  }
  const [first, ...rest] = properties.map((p) => ({ property: p.property, values: valuesOf(p.values)! }))
  return first === undefined ? bad("No properties for update provided.") : Result.succeed({ pin: pin.pin, properties: [first, ...rest] })
}

/** The pin of the POST `batch/update` and of `data/get`: `pin=v1` or `dataStreamId=N`; undefined when neither is given. */
export const parseOnePin = (query: Query): Parsed<PinName | undefined> => {
  const named = query.filter((p) => p.key === "dataStreamId" || p.key === "pin")
  if (named.length === 0) return Result.succeed(undefined)
  if (named.length > 1) return bad(WRONG_PIN)
  const { key, value } = named[0]!
  const pin = key === "dataStreamId" ? parseDataStreamId(value) : parsePin(value)
  return pin === undefined ? bad(key === "dataStreamId" ? WRONG_DATASTREAM : WRONG_PIN) : Result.succeed(pin)
}

export interface BatchLimits {
  /** Most points in one request (spec §2.3: 10,000). */
  readonly maxPoints: number
  /** How old a point may be, ms (spec §2.3: a month). */
  readonly maxAgeMs: number
  /** How far ahead of the server's clock a point may be, ms. */
  readonly maxAheadMs: number
}

/** spec §2.3's limits; an hour ahead for clocks a little fast. */
export const defaultBatchLimits: BatchLimits = { maxPoints: 10_000, maxAgeMs: 30 * 86_400_000, maxAheadMs: 3_600_000 }

export interface TimedPoint {
  readonly ts: number
  readonly values: readonly [string, ...Array<string>]
}

export const BATCH_SHAPE = "The body must be a JSON array of [timestampMs, value] pairs."

/** A point's value as text: strings, finite numbers and booleans; an array (a location `[lon, lat]`) is several values. */
const pointValues = (value: unknown): readonly [string, ...Array<string>] | undefined => {
  const scalar = (v: unknown) =>
    typeof v === "string" || typeof v === "boolean" || (typeof v === "number" && Number.isFinite(v)) ? String(v) : undefined
  if (!Array.isArray(value)) {
    const one = scalar(value)
    return one === undefined ? undefined : valuesOf([one])
  }
  const items = value.map(scalar)
  return items.length === 0 || items.some((v) => v === undefined) ? undefined : valuesOf(items as Array<string>)
}

/**
 * The body of the POST `batch/update` (spec §2.3): `[[tsMs, value], …]`, at most `maxPoints`,
 * each at most `maxAgeMs` before `now` and `maxAheadMs` after it. All or nothing: one bad point
 * refuses the request. Sorted by time (stable), so the latest is the pin's value after it.
 */
export const parseBatchBody = (body: unknown, limits: BatchLimits, now: number): Parsed<readonly [TimedPoint, ...Array<TimedPoint>]> => {
  if (!Array.isArray(body)) return bad(BATCH_SHAPE)
  if (body.length > limits.maxPoints) return bad(`Too much data in batch. Maximum batch size is ${limits.maxPoints} points.`)
  const points: Array<TimedPoint> = []
  for (const item of body) {
    if (!Array.isArray(item) || item.length !== 2) return bad(BATCH_SHAPE)
    const [ts, value] = item as [unknown, unknown]
    const values = pointValues(value)
    if (typeof ts !== "number" || !Number.isSafeInteger(ts) || ts < 0 || values === undefined) return bad(BATCH_SHAPE)
    if (ts < now - limits.maxAgeMs) {
      return bad(`Timestamp ${ts} is too old: points may be at most ${Math.round(limits.maxAgeMs / 86_400_000)} days old.`)
    }
    if (ts > now + limits.maxAheadMs) return bad(`Timestamp ${ts} is in the future.`)
    points.push({ ts, values })
  }
  const [first, ...rest] = points.sort((a, b) => a.ts - b.ts)
  return first === undefined ? bad("No data in batch.") : Result.succeed([first, ...rest])
}

/** `logEvent`: the code (`Event code is not provided.` when missing or blank) and the optional description, as the log can hold them. */
export const parseLogEvent = (query: Query): Parsed<{ readonly code: string; readonly description: string | undefined }> => {
  const clean = (s: string) => wellFormed(s).replaceAll("\0", " ")
  const code = query.find((p) => p.key === "code")?.value
  if (code === undefined || code.trim() === "") return bad("Event code is not provided.")
  const description = query.find((p) => p.key === "description")?.value
  return Result.succeed({ code: clean(code), description: description === undefined ? undefined : clean(description) })
}

/**
 * A stored value in a JSON answer: a number when its text is a finite number (an integer only
 * while exact, so long ids stay text), else the text; several values an array.
 */
export const jsonValue = (values: ReadonlyArray<string>): number | string | Array<number | string> => {
  const one = (text: string): number | string => {
    const n = numericValue(text)
    if (n === null) return text
    return /^[+-]?\d+$/.test(text.trim()) && !Number.isSafeInteger(n) ? text : n
  }
  return values.length === 1 ? one(values[0]!) : values.map(one)
}

// data/get (spec §2.4)

const DAY = 86_400_000

/** `period` and how far back it reaches. */
export const periods: Readonly<Record<string, number>> = {
  HOUR: 3_600_000,
  DAY,
  WEEK: 7 * DAY,
  MONTH: 30 * DAY,
  THREE_MONTHS: 90 * DAY,
  SIX_MONTHS: 180 * DAY,
  ONE_YEAR: 365 * DAY
}

/** `granularityType`: the raw samples or a rollup. */
export const granularities = { RAW_DATA: "raw", MINUTE: "minute", HOURLY: "hour", DAILY: "day" } as const
export const sourceTypes = ["AVG", "MIN", "MAX", "SUM", "COUNT"] as const
export const formats = ["TS", "ISO_US", "ISO_SIMPLE"] as const
export const outputs = ["FILE", "JSON"] as const

export type Source = typeof sourceTypes[number]
export type TimeFormat = typeof formats[number]

export interface ExportRequest {
  readonly period: string
  /** How far back from now. */
  readonly spanMs: number
  readonly granularity: typeof granularities[keyof typeof granularities]
  readonly source: Source
  readonly timeZone: string
  readonly format: TimeFormat
  readonly sendEvents: boolean
  readonly output: typeof outputs[number]
  /** One pin, or every pin of the device with history. */
  readonly pin: PinName | undefined
}

/**
 * The Java enum each parameter is read into, named in the 500 answer to a value it lacks (spec
 * §2.2: `No enum constant cc.blynk.server.core.model.widgets.outputs.graph.Period.YEAR`; only
 * `Period` is named by the docs, the other names are Pinledger's).
 */
const enumClass: Readonly<Record<string, string>> = {
  period: "cc.blynk.server.core.model.widgets.outputs.graph.Period",
  granularityType: "cc.blynk.server.core.model.widgets.outputs.graph.GraphGranularityType",
  sourceType: "cc.blynk.server.core.model.widgets.outputs.graph.SourceType",
  format: "cc.blynk.server.core.model.widgets.outputs.graph.DateFormat",
  output: "cc.blynk.server.core.model.widgets.outputs.graph.OutputType"
}

/** Whether `Intl` knows a time zone (IANA names, `UTC`, offsets like `+02:00`). */
export const isTimeZone = (name: string) => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: name })
    return true
  } catch {
    return false
  }
}

const INCORRECT = "Request with incorrect parameters"

/** `data/get`'s parameters with their defaults; enum values are matched without regard to case. */
export const parseExport = (query: Query): Parsed<ExportRequest> => {
  const param = (key: string) => query.find((p) => p.key === key)?.value
  const choose = <A extends string>(key: string, allowed: ReadonlyArray<A>, fallback: A): Parsed<A> => {
    const given = param(key)
    if (given === undefined || given === "") return Result.succeed(fallback)
    const found = allowed.find((a) => a === given.toUpperCase())
    return found === undefined ? bad(`No enum constant ${enumClass[key]}.${given}`, 500) : Result.succeed(found)
  }
  const period = choose("period", Object.keys(periods), "MONTH")
  if (Result.isFailure(period)) return Result.fail(period.failure)
  const granularity = choose("granularityType", Object.keys(granularities) as Array<keyof typeof granularities>, "RAW_DATA")
  if (Result.isFailure(granularity)) return Result.fail(granularity.failure)
  const source = choose("sourceType", sourceTypes, "AVG")
  if (Result.isFailure(source)) return Result.fail(source.failure)
  const format = choose("format", formats, "TS")
  if (Result.isFailure(format)) return Result.fail(format.failure)
  const output = choose("output", outputs, "FILE")
  if (Result.isFailure(output)) return Result.fail(output.failure)
  const spanMs = periods[period.success]!
  // spec §2.4: RAW_DATA is not allowed with THREE_MONTHS (nor, here, with the longer periods).
  if (granularity.success === "RAW_DATA" && spanMs > periods["MONTH"]!) return bad(INCORRECT)
  const timeZone = param("tzName") || "UTC"
  if (!isTimeZone(timeZone)) return bad(INCORRECT)
  const events = (param("sendEvents") ?? "false").toLowerCase()
  if (events !== "true" && events !== "false") return bad(INCORRECT)
  const pin = parseOnePin(query)
  if (Result.isFailure(pin)) return Result.fail(pin.failure)
  return Result.succeed({
    period: period.success,
    spanMs,
    granularity: granularities[granularity.success],
    source: source.success,
    timeZone,
    format: format.success,
    sendEvents: events === "true",
    output: output.success,
    pin: pin.success
  })
}
