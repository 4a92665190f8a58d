import { Result } from "effect"
import { type Granularity, granularityMillis } from "../../domain/Graphs.ts"
import type { PinType } from "../../domain/Pins.ts"
import { type AuditQuery, defaultLimit as auditDefaultLimit, maxLimit as auditMaxLimit } from "../../eventstore/Audit.ts"
import { parseInstant } from "../TimeInput.ts"
import { parsePin } from "./LegacyHttp.ts"

/**
 * The owner API's path and query values (OwnerApi.ts declares them as text): each is read here,
 * and a value that cannot be used is refused with a message naming it and what it should be.
 * Pure functions: the time of "now" comes in.
 */

/** A value or why not. */
export type Parsed<A> = Result.Result<A, string>

/** A value as a message may quote it: short and in quotes. */
const quoted = (text: string) => JSON.stringify(text.length <= 40 ? text : `${text.slice(0, 39)}…`)

const MAX_ID = 2_147_483_647

/** A dashboard or device id: a whole number from 0 to 2^31 − 1. */
export const parseId = (name: string, text: string): Parsed<number> => {
  const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN
  return n <= MAX_ID ? Result.succeed(n) : Result.fail(`${name} must be a whole number from 0 to ${MAX_ID}, not ${quoted(text)}`)
}

export interface PinRef {
  readonly pinType: PinType
  readonly pin: number
}

/** `V5`, `v5`, `D8`, `A0`: a type letter and 0–255. */
export const parsePinName = (text: string): Parsed<PinRef> => {
  const pin = parsePin(text)
  return pin === undefined ? Result.fail(`pin must be V0–V255, D0–D255 or A0–A255, not ${quoted(text)}`) : Result.succeed(pin)
}

/** A whole number from `min` to `max`; `fallback` when not given. */
export const parseCount = (name: string, text: string | undefined, range: { readonly min: number; readonly max: number; readonly fallback: number }): Parsed<number> => {
  if (text === undefined) return Result.succeed(range.fallback)
  const n = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN
  return n >= range.min && n <= range.max
    ? Result.succeed(n)
    : Result.fail(`${name} must be a whole number from ${range.min} to ${range.max}, not ${quoted(text)}`)
}

/** A time: ISO 8601 or epoch ms (TimeInput.ts). */
export const parseTime = (name: string, text: string): Parsed<number> => {
  const ms = parseInstant(text)
  return ms === undefined
    ? Result.fail(`${name} must be an ISO 8601 date or time (2026-01-01, 2026-01-01T12:00:00Z) or epoch milliseconds, not ${quoted(text)}`)
    : Result.succeed(ms)
}

const optionalTime = (name: string, text: string | undefined): Parsed<number | undefined> =>
  text === undefined ? Result.succeed(undefined) : parseTime(name, text)

// ---------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------

export type Rollup = "raw" | Granularity

export const rollups: ReadonlyArray<Rollup> = ["raw", "minute", "hour", "day"]

const DAY = granularityMillis.day

/** How far back `from` is when it is not given. */
export const defaultSpan: Readonly<Record<Rollup, number>> = { raw: DAY, minute: DAY, hour: 30 * DAY, day: 365 * DAY }

export const HISTORY_MAX_LIMIT = 10_000
export const HISTORY_DEFAULT_LIMIT = 1000

export interface HistoryRequest {
  readonly rollup: Rollup
  /** Epoch ms, inclusive. */
  readonly from: number
  /** Epoch ms, exclusive. */
  readonly to: number
  readonly limit: number
}

export interface HistoryQuery {
  readonly rollup?: string | undefined
  readonly from?: string | undefined
  readonly to?: string | undefined
  readonly limit?: string | undefined
}

/** `rollup`, `from`, `to` and `limit` of a history request; `to` is `now` and `from` one span before it when not given. */
export const parseHistory = (query: HistoryQuery, now: number): Parsed<HistoryRequest> =>
  Result.gen(function*() {
    const rollup = query.rollup === undefined ? "raw" : rollups.find((r) => r === query.rollup)
    if (rollup === undefined) {
      return yield* Result.fail(`rollup must be one of ${rollups.join(", ")}, not ${quoted(query.rollup ?? "")}`)
    }
    const to = (yield* optionalTime("to", query.to)) ?? now
    const from = (yield* optionalTime("from", query.from)) ?? to - defaultSpan[rollup]
    if (from >= to) return yield* Result.fail(`from (${new Date(from).toISOString()}) must be before to (${new Date(to).toISOString()})`)
    const limit = yield* parseCount("limit", query.limit, { min: 1, max: HISTORY_MAX_LIMIT, fallback: HISTORY_DEFAULT_LIMIT })
    return { rollup, from, to, limit }
  })

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

export interface AuditRequestQuery {
  readonly type?: ReadonlyArray<string> | undefined
  readonly since?: string | undefined
  readonly until?: string | undefined
  readonly address?: string | undefined
  readonly dash?: string | undefined
  readonly device?: string | undefined
  readonly limit?: string | undefined
  readonly after?: string | undefined
}

/** The name of an event type as the log keeps it (eventstore/Event.ts). */
const EVENT_TYPE = /^[A-Za-z][A-Za-z0-9_.]{0,99}$/

/**
 * An audit query of the caller's account (the account is the caller's, added by the route), from
 * the request's query: each parameter read as what it is. What holds between them (since before
 * until, a device named by both ids, an address that is not blank) is Audit.queryAudit's check,
 * the same for the command line.
 */
export const parseAudit = (query: AuditRequestQuery): Parsed<Omit<AuditQuery, "email" | "appName">> =>
  Result.gen(function*() {
    const types = [...new Set((query.type ?? []).flatMap((t) => t.split(",")).map((t) => t.trim()).filter((t) => t !== ""))]
    const badType = types.find((t) => !EVENT_TYPE.test(t))
    if (badType !== undefined) return yield* Result.fail(`type must be event type names such as ShareRevoked, not ${quoted(badType)}`)
    const since = yield* optionalTime("since", query.since)
    const until = yield* optionalTime("until", query.until)
    const address = query.address?.trim()
    const dashId = query.dash === undefined ? undefined : yield* parseId("dash", query.dash)
    const deviceId = query.device === undefined ? undefined : yield* parseId("device", query.device)
    const limit = yield* parseCount("limit", query.limit, { min: 1, max: auditMaxLimit, fallback: auditDefaultLimit })
    const after = query.after === undefined ? undefined : yield* parseCount("after", query.after, { min: 0, max: Number.MAX_SAFE_INTEGER, fallback: 0 })
    return {
      ...(types.length > 0 ? { types } : {}),
      ...(since === undefined ? {} : { since: new Date(since) }),
      ...(until === undefined ? {} : { until: new Date(until) }),
      ...(address === undefined ? {} : { address }),
      ...(dashId === undefined ? {} : { dashId }),
      ...(deviceId === undefined ? {} : { deviceId }),
      limit,
      ...(after === undefined ? {} : { after })
    }
  })
