import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { Granularity } from "../domain/Graphs.ts"
import type { PinType } from "../domain/Pins.ts"
import { rollupTables } from "./projections/PinHistory.ts"

/**
 * Reads of the `pin_history` projection (projections/PinHistory.ts): a pin's rollups over a time
 * window, its last raw samples, its last minutes. Each is one range scan of a primary key or
 * index after the pin's series id, found by its unique key.
 */

/** A pin of an account: what a series of the history is named by. */
export interface PinRef {
  readonly accountStream: string
  readonly dashId: number
  readonly deviceId: number
  readonly pinType: PinType
  readonly pin: number
}

export interface RollupPoint {
  /** The period's start, epoch ms (UTC). */
  readonly ts: number
  readonly avg: number
  /** The sum of the period's values. */
  readonly sum: number
  readonly min: number
  readonly max: number
  readonly count: number
}

export interface RawSample {
  readonly ts: number
  /** The first value as written. */
  readonly value: string
  /** The values after the first (multi-value writes). */
  readonly more: ReadonlyArray<string>
  /** The value as a number, when it is one. */
  readonly num: number | null
}

const seriesFilter = (sql: SqlClient, p: PinRef) =>
  sql`s.account_stream = ${p.accountStream} AND s.dash_id = ${p.dashId} AND s.device_id = ${p.deviceId}
    AND s.pin_type = ${p.pinType} AND s.pin = ${p.pin}`

interface RollupRow {
  readonly bucket: unknown
  readonly total: number
  readonly min: number
  readonly max: number
  readonly count: number
}

const toPoint = (r: RollupRow): RollupPoint => {
  const count = Number(r.count)
  return { ts: Number(r.bucket), avg: Number(r.total) / count, sum: Number(r.total), min: Number(r.min), max: Number(r.max), count }
}

/** A pin's rollups with `from <= start < to`, oldest first (at most `limit`, when given). */
export const rollups = (pin: PinRef, granularity: Granularity, from: number, to: number, limit?: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<RollupRow>`
      SELECT r.bucket, r.total, r.min, r.max, r.count
      FROM pl_history_series s JOIN ${sql(rollupTables[granularity])} r ON r.series_id = s.series_id
      WHERE ${seriesFilter(sql, pin)} AND r.bucket >= ${Math.floor(from)}::int8 AND r.bucket < ${Math.floor(to)}::int8
      ORDER BY r.bucket ${limit === undefined ? sql.literal("") : sql`LIMIT ${limit}`}`
    return rows.map(toPoint)
  }).pipe(Effect.withSpan("HistoryQueries.rollups"))

/** A pin's last `limit` rollups (skipping the `skip` latest), oldest first. */
export const lastRollups = (pin: PinRef, granularity: Granularity, limit: number, skip = 0) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<RollupRow>`
      SELECT r.bucket, r.total, r.min, r.max, r.count
      FROM pl_history_series s JOIN ${sql(rollupTables[granularity])} r ON r.series_id = s.series_id
      WHERE ${seriesFilter(sql, pin)}
      ORDER BY r.bucket DESC LIMIT ${limit} OFFSET ${skip}`
    return rows.map(toPoint).reverse()
  }).pipe(Effect.withSpan("HistoryQueries.lastRollups"))

/** A pin's last `limit` raw samples (only numbers when `numeric`), oldest first. */
export const lastSamples = (pin: PinRef, limit: number, options: { readonly numeric?: boolean } = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ ts: unknown; value: string; more: unknown; num: number | null }>`
      SELECT r.ts, r.value, r.more, r.num
      FROM pl_history_series s JOIN pl_history_raw r ON r.series_id = s.series_id
      WHERE ${seriesFilter(sql, pin)} ${sql.literal(options.numeric ? "AND r.num IS NOT NULL" : "")}
      ORDER BY r.ts DESC, r.position DESC, r.write_index DESC LIMIT ${limit}`
    return rows.map((r): RawSample => {
      const more = typeof r.more === "string" ? JSON.parse(r.more) : r.more
      return { ts: Number(r.ts), value: r.value, more: Array.isArray(more) ? more.map(String) : [], num: r.num === null ? null : Number(r.num) }
    }).reverse()
  }).pipe(Effect.withSpan("HistoryQueries.lastSamples"))

/** A pin's raw samples with `from <= ts < to`, oldest first, at most `limit`. */
export const samples = (pin: PinRef, from: number, to: number, limit: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ ts: unknown; value: string; more: unknown; num: number | null }>`
      SELECT r.ts, r.value, r.more, r.num
      FROM pl_history_series s JOIN pl_history_raw r ON r.series_id = s.series_id
      WHERE ${seriesFilter(sql, pin)} AND r.ts >= ${Math.floor(from)}::int8 AND r.ts < ${Math.floor(to)}::int8
      ORDER BY r.ts, r.position, r.write_index LIMIT ${limit}`
    return rows.map((r): RawSample => {
      const more = typeof r.more === "string" ? JSON.parse(r.more) : r.more
      return { ts: Number(r.ts), value: r.value, more: Array.isArray(more) ? more.map(String) : [], num: r.num === null ? null : Number(r.num) }
    })
  }).pipe(Effect.withSpan("HistoryQueries.samples"))

/** The pins of a device that have a history, by pin type then number. */
export const devicePins = (device: { readonly accountStream: string; readonly dashId: number; readonly deviceId: number }) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ pin_type: PinType; pin: number }>`
      SELECT pin_type, pin FROM pl_history_series
      WHERE account_stream = ${device.accountStream} AND dash_id = ${device.dashId} AND device_id = ${device.deviceId}
      ORDER BY pin_type, pin`
    return rows.map((r): PinRef => ({ ...device, pinType: r.pin_type, pin: Number(r.pin) }))
  }).pipe(Effect.withSpan("HistoryQueries.devicePins"))
