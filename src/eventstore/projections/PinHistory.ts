import { Cause, Clock, Duration, Effect, Exit, Fiber, Layer, Queue } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { DashboardDeleted, DeviceDeleted, GraphDataDeleted } from "../../domain/Account.ts"
import { granularityMillis, type Granularity } from "../../domain/Graphs.ts"
import { pinCode, type PinType } from "../../domain/Pins.ts"
import { accountOfDevice } from "../../domain/Streams.ts"
import { Database } from "../Database.ts"
import type { RecordedEvent } from "../Event.ts"
import * as SqlArrays from "../SqlArrays.ts"
import * as Subscription from "../Subscription.ts"
import { decoder } from "./Decode.ts"

/**
 * The `pin_history` projection (DESIGN.md): every written value with its time (raw samples,
 * strings included), and minute, hour and day rollups (sum, min, max, count: the average is
 * sum / count) of the numeric ones, per (account, dashboard, device, pin type, pin). It follows
 * the settled log with a checkpoint of its own, so it lags the log a little and never slows an
 * append; `rebuild` empties it and replays the log into it.
 *
 * Tables (migrations "pin history", "pin history order"): `pl_history_series` names each pin once
 * (a small integer id, so the big tables stay narrow); `pl_history_raw` indexed by (series, ts,
 * event position, index in the event's writes: samples of the same time in the order written) and
 * the rollups keyed by (series, bucket start), so a chart's window is one range scan of an index.
 *
 * Rollups are folded in JavaScript, value after value in log order, starting from the stored
 * row: a rebuild then computes bit for bit the same sums as the live projection, whatever the
 * batch boundaries were (floating-point addition is not associative).
 */

export const name = "pin-history"

/** NOTIFY channel signalled at each commit of the projection (`awaitCaughtUp` listens to it). */
export const channel = "pl_history"

export const rollupTables: Readonly<Record<Granularity, string>> = {
  minute: "pl_history_minute",
  hour: "pl_history_hour",
  day: "pl_history_day"
}

/** Every table the projection alone writes, emptied by `rebuild`. */
export const tables = ["pl_history_series", "pl_history_raw", "pl_history_minute", "pl_history_hour", "pl_history_day"] as const

/** The event types it reads. */
export const eventTypes: ReadonlySet<string> = new Set(["PinsWritten", "DeviceDeleted", "DashboardDeleted", "GraphDataDeleted"])

const PINS_WRITTEN = "PinsWritten"

/** How many days each table keeps (0 = for ever); older rows go at the next cleanup. */
export interface Retention {
  readonly rawDays: number
  readonly minuteDays: number
  readonly hourDays: number
  readonly dayDays: number
}

export const defaultRetention: Retention = { rawDays: 7, minuteDays: 30, hourDays: 365, dayDays: 0 }

const DAY = granularityMillis.day

interface Cutoffs {
  readonly raw: number
  readonly minute: number
  readonly hour: number
  readonly day: number
}

/** The oldest time (raw) or bucket start (rollups) each table keeps at `now`. */
const cutoffsAt = (retention: Retention, now: number): Cutoffs => {
  const cut = (days: number) => (days > 0 ? now - days * DAY : Number.NEGATIVE_INFINITY)
  return { raw: cut(retention.rawDays), minute: cut(retention.minuteDays), hour: cut(retention.hourDays), day: cut(retention.dayDays) }
}

/** An event as the projection reads it: `time` is when its writes happened (epoch ms). */
export interface HistoryEvent {
  /** Its position in the log: with the write's index in it, orders samples of the same time. */
  readonly position: number
  readonly streamId: string
  readonly type: string
  readonly data: unknown
  readonly time: number
}

/** The writes' time: the metadata's (when they reached the server), else the commit's (epoch ms). */
const writesTime = (metadataTime: string | null | undefined, recordedMs: number) => {
  const t = Date.parse(metadataTime ?? "")
  return Number.isFinite(t) ? t : recordedMs
}

export const fromRecorded = (e: RecordedEvent): HistoryEvent => ({
  position: e.position,
  streamId: e.streamId,
  type: e.type,
  data: e.data,
  time: writesTime(e.metadata?.time, e.recordedAt.getTime())
})

interface Sample {
  /** The pin's device, as `seriesPrefix` makes it: one string per event, hashed once. */
  readonly prefix: string
  /** The pin within the device (`pinCode`). */
  readonly code: number
  /** The series id, once resolved (-1 before). */
  series: number
  readonly account: string
  readonly dashId: number
  readonly deviceId: number
  readonly pinType: PinType
  readonly pin: number
  readonly ts: number
  /** Its event's position and its index in the event's writes: the order of samples of the same time. */
  readonly position: number
  readonly index: number
  readonly value: string
  /** Values after the first, for multi-value writes (`vw 1 a b c`), as JSON. */
  readonly more: string | null
  readonly num: number | null
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/** A value as a number for the rollups, if it is one (only single values are numbers; -0 is 0). */
export const numericValue = (text: string): number | null => {
  const t = text.trim()
  if (!NUMBER.test(t)) return null
  const n = Number(t)
  return Number.isFinite(n) ? n + 0 : null
}

const seriesPrefix = (account: string, dashId: number, deviceId: number) => `${account}|${dashId}|${deviceId}|`


const isPinType = (t: unknown): t is PinType => t === "v" || t === "d" || t === "a"

/** A device's account and series prefix, made once per stream and dashboard/device (the prefix's hash with them). */
interface DeviceNames {
  readonly dashId: number
  readonly deviceId: number
  readonly account: string
  readonly prefix: string
}

const namesOf = (devices: Map<string, DeviceNames>, streamId: string, dashId: number, deviceId: number): DeviceNames => {
  const known = devices.get(streamId)
  if (known !== undefined && known.dashId === dashId && known.deviceId === deviceId) return known
  const account = accountOfDevice(streamId)
  const names = { dashId, deviceId, account, prefix: seriesPrefix(account, dashId, deviceId) }
  devices.set(streamId, names)
  return names
}

/** The samples of a `PinsWritten`, read without the schema machinery (the hot path of a rebuild). */
const samplesOf = (e: HistoryEvent, into: Array<Sample>, devices: Map<string, DeviceNames>): number => {
  if (!e.streamId.startsWith("device-")) return 0
  const d = e.data as { dashId?: unknown; deviceId?: unknown; writes?: unknown; timestamps?: unknown } | null
  if (d === null || typeof d !== "object" || !Number.isInteger(d.dashId) || !Number.isInteger(d.deviceId) || !Array.isArray(d.writes)) return 0
  const dashId = d.dashId as number
  const deviceId = d.deviceId as number
  const writes = d.writes as ReadonlyArray<unknown>
  const times = Array.isArray(d.timestamps) && d.timestamps.length === writes.length ? (d.timestamps as ReadonlyArray<unknown>) : undefined
  const { account, prefix } = namesOf(devices, e.streamId, dashId, deviceId)
  let n = 0
  for (let i = 0; i < writes.length; i++) {
    const w = writes[i]
    if (!Array.isArray(w) || w.length < 3 || !isPinType(w[0]) || !Number.isInteger(w[1])) continue
    const single = w.length === 3
    if (single ? typeof w[2] !== "string" : !w.every((v, k) => k < 2 || typeof v === "string")) continue
    const own = times?.[i]
    const ts = typeof own === "number" && Number.isFinite(own) ? Math.trunc(own) : e.time
    const pin = w[1] as number
    into.push({
      prefix,
      code: pinCode(w[0], pin),
      series: -1,
      account,
      dashId,
      deviceId,
      pinType: w[0],
      pin,
      ts,
      position: e.position,
      index: i,
      value: w[2] as string,
      more: single ? null : JSON.stringify(w.slice(3)),
      num: single ? numericValue(w[2] as string) : null
    })
    n++
  }
  return n
}

const decodeDeviceDeleted = decoder(DeviceDeleted)
const decodeDashboardDeleted = decoder(DashboardDeleted)
const decodeGraphDataDeleted = decoder(GraphDataDeleted)

/** What a deletion removes: a dashboard's pins, a device's, or the listed ones. */
interface Deletion {
  readonly account: string
  readonly dashId: number
  readonly deviceId?: number
  readonly pins?: ReadonlyArray<readonly [number, string, number]>
}

const deletionOf = (e: HistoryEvent): Deletion | undefined => {
  if (!e.streamId.startsWith("user-")) return undefined
  switch (e.type) {
    case "DeviceDeleted": {
      const d = decodeDeviceDeleted(e.data)
      return d && { account: e.streamId, dashId: d.dashId, deviceId: d.deviceId }
    }
    case "DashboardDeleted": {
      const d = decodeDashboardDeleted(e.data)
      return d && { account: e.streamId, dashId: d.dashId }
    }
    case "GraphDataDeleted": {
      const d = decodeGraphDataDeleted(e.data)
      return d && { account: e.streamId, dashId: d.dashId, pins: d.pins }
    }
    default:
      return undefined
  }
}

interface Rollup {
  total: number
  min: number
  max: number
  count: number
}

/**
 * A rollup row being written. With `values` undefined, the fields hold the row (a fresh table's,
 * folded as the numbers come); otherwise the stored row is still to be read, and `values` (in log
 * order) are folded onto it then.
 */
interface Group extends Rollup {
  readonly series: number
  readonly bucket: number
  values: Array<number> | undefined
  /**
   * Written early by a fresh writer (`#spill`): 0 not yet, 1 as it is, 2 changed since (its row
   * is deleted and written again with the rest).
   */
  written: 0 | 1 | 2
}

const fold = (r: Rollup, v: number) => {
  r.total += v
  if (v < r.min) r.min = v
  if (v > r.max) r.max = v
  r.count++
}

const granularities: ReadonlyArray<Granularity> = ["minute", "hour", "day"]

type SeriesRow = { readonly series_id: number; readonly account_stream: string; readonly dash_id: number; readonly device_id: number; readonly pin_type: string; readonly pin: number }

const keyArrays = (arrays: SqlArrays.Arrays, keys: ReadonlyArray<Sample>) => ({
  a: arrays.texts(keys.map((k) => k.account)),
  d: arrays.numbers(keys.map((k) => k.dashId)),
  v: arrays.numbers(keys.map((k) => k.deviceId)),
  t: arrays.texts(keys.map((k) => k.pinType)),
  p: arrays.numbers(keys.map((k) => k.pin))
})

/**
 * Raw rows gathered for one insert, column by column: numbers in typed arrays (NaN for a missing
 * `num`; a store there is several times cheaper than a push onto an array), grown as needed and
 * reused from one insert to the next; `take` hands them out as the arrays the statement binds.
 */
class RawRows {
  size = 0
  #series = new Float64Array(1024)
  #ts = new Float64Array(1024)
  #position = new Float64Array(1024)
  #index = new Float64Array(1024)
  #num = new Float64Array(1024)
  #value: Array<string> = new Array(1024).fill("")
  #more: Array<string | null> = new Array(1024).fill(null)

  add(s: Sample) {
    if (this.size === this.#ts.length) this.#grow()
    const i = this.size++
    this.#series[i] = s.series
    this.#ts[i] = s.ts
    this.#position[i] = s.position
    this.#index[i] = s.index
    this.#num[i] = s.num === null ? Number.NaN : s.num
    this.#value[i] = s.value
    this.#more[i] = s.more
  }

  #grow() {
    const wider = (from: Float64Array) => {
      const to = new Float64Array(from.length * 2)
      to.set(from)
      return to
    }
    this.#series = wider(this.#series)
    this.#ts = wider(this.#ts)
    this.#position = wider(this.#position)
    this.#index = wider(this.#index)
    this.#num = wider(this.#num)
    const n = this.#value.length
    this.#value = this.#value.concat(new Array(n).fill(""))
    this.#more = this.#more.concat(new Array(n).fill(null))
  }

  /** The rows' columns, bound now (the arrays are filled again after). */
  take(a: SqlArrays.Arrays) {
    const n = this.size
    this.size = 0
    return {
      n,
      series: a.column("int4", this.#series, n),
      ts: a.column("int8", this.#ts, n),
      position: a.column("int8", this.#position, n),
      index: a.column("int4", this.#index, n),
      num: a.column("float8", this.#num, n),
      value: a.texts(this.#value.slice(0, n)),
      more: a.texts(this.#more.slice(0, n))
    }
  }
}

/**
 * One granularity's rollup groups being gathered. Buckets are counted (`index` × `size` ms is the
 * bucket's start, as `bucketOf` makes it): a minute's count since 1970 is a small integer, a far
 * cheaper map key than its time in milliseconds.
 */
class Level {
  readonly granularity: Granularity
  /** Buckets starting before it are past the retention. */
  readonly cutoff: number
  readonly size: number
  /** series → bucket count → group. */
  readonly groups = new Map<number, Map<number, Group>>()
  /** By series id: the group its last value went to (one of `groups`'). */
  recent: Array<Group | undefined> = []
  /**
   * Groups a pin's values have moved on from (to another bucket) while the writer is fresh: the
   * ones `Writer.#spill` writes early. A value that comes for one of them later marks it `written` 2.
   */
  left: Array<Group> = []
  /** Groups written early and changed since, to be written again. */
  changed: Array<Group> = []

  constructor(granularity: Granularity, cutoff: number) {
    this.granularity = granularity
    this.cutoff = cutoff
    this.size = granularityMillis[granularity]
  }

  /** Adds a value to its group (fresh: the writer has no rows stored); 1 if it is kept, 0 if past the retention. */
  add(series: number, ts: number, num: number, fresh: boolean): number {
    const index = Math.floor(ts / this.size)
    const bucket = index * this.size
    if (bucket < this.cutoff) return 0
    // A pin's values mostly fall in the bucket of the one before.
    let group = this.recent[series]
    if (group === undefined || group.bucket !== bucket) {
      if (group !== undefined && group.written === 0 && fresh) this.left.push(group)
      let buckets = this.groups.get(series)
      if (buckets === undefined) this.groups.set(series, (buckets = new Map()))
      group = buckets.get(index)
      if (group === undefined) {
        group = { series, bucket, total: 0, min: Infinity, max: -Infinity, count: 0, values: fresh ? undefined : [], written: 0 }
        buckets.set(index, group)
      }
      this.recent[series] = group
    }
    if (group.written === 1) {
      group.written = 2
      this.changed.push(group)
    }
    if (group.values === undefined) fold(group, num)
    else group.values.push(num)
    return 1
  }

  /** Everything gathered is written: starts afresh. */
  clear() {
    this.groups.clear()
    this.recent = []
    this.left = []
    this.changed = []
  }
}

export interface WriterOptions {
  /**
   * The tables were just emptied and this writer alone fills them (a rebuild): a pin or rollup
   * row it has not written does not exist yet, so it need not be looked up.
   */
  readonly fresh: boolean
  /** Raw rows gathered before they are inserted. */
  readonly rawBatch: number
  /** Rollup values gathered before the rollups are written. */
  readonly rollupBatch: number
  /**
   * Inserts are sent without waiting for them (one at a time in flight, the connection keeps
   * them in order), so the next batch is shaped while the database stores this one; `flush`
   * waits for the last. Only in a transaction (a rebuild's): the statements must share a connection.
   */
  readonly pipelined: boolean
}

/**
 * Writes samples in log order: series ids (cached), raw rows and rollup rows gathered and
 * written in bulk. Rollup values are folded one after the other onto the stored row, so the sums
 * come out the same however the log was cut into batches. `deleted` must be called (after
 * `flush`) when series were dropped; `flush` writes everything gathered.
 */
class Writer {
  readonly #cut: Cutoffs
  readonly #options: WriterOptions
  readonly #arrays: SqlArrays.Arrays
  /** No pin is in the table that is not in the cache. */
  #seriesFresh: boolean
  /** No rollup row is in the tables (this writer has not written any yet). */
  #rollupsFresh: boolean
  /** Series ids by `Sample.prefix`, then `Sample.code`. */
  readonly #ids = new Map<string, Map<number, number>>()
  readonly #raw = new RawRows()
  /** The rollup groups being gathered, minute, hour and day. */
  readonly #levels: ReadonlyArray<Level>
  #values = 0
  #inFlight: Fiber.Fiber<unknown, SqlError> | undefined
  /** Rows this writer has added to the tables, while `#rowsKnown` (nothing deleted or upserted). */
  #rows = 0
  #rowsKnown = true
  /** Per rollup table: its primary key's name and definition while it is dropped. */
  readonly #droppedKeys: Partial<Record<Granularity, ReadonlyArray<{ readonly conname: string; readonly def: string }>>> = {}

  constructor(cut: Cutoffs, options: WriterOptions, arrays: SqlArrays.Arrays) {
    this.#cut = cut
    this.#options = options
    this.#arrays = arrays
    this.#levels = granularities.map((g) => new Level(g, cut[g]))
    this.#seriesFresh = options.fresh
    this.#rollupsFresh = options.fresh
  }

  /** Takes samples (in log order), writing whatever has gathered past the batch sizes. */
  add(samples: ReadonlyArray<Sample>): Effect.Effect<void, SqlError, SqlClient> {
    const self = this
    return Effect.gen(function*() {
      if (samples.length === 0) return
      yield* self.#resolve(samples)
      const rawCut = self.#cut.raw
      const raw = self.#raw
      const [minute, hour, day] = self.#levels as [Level, Level, Level]
      const fresh = self.#rollupsFresh
      let values = 0
      for (let i = 0; i < samples.length; i++) {
        const s = samples[i]!
        const series = s.series
        if (s.ts >= rawCut) raw.add(s)
        const num = s.num
        if (num === null) continue
        values += minute.add(series, s.ts, num, fresh) + hour.add(series, s.ts, num, fresh) + day.add(series, s.ts, num, fresh)
      }
      self.#values += values
      if (raw.size >= self.#options.rawBatch) yield* self.#send(Effect.andThen(self.#rawInsert(), self.#spill()))
      if (self.#values >= self.#options.rollupBatch) yield* self.#writeRollups(false)
    })
  }

  /** How many rows the tables hold if this writer alone filled them and nothing was deleted. */
  get rows(): number | undefined {
    return this.#rowsKnown && this.#options.fresh ? this.#rows : undefined
  }

  /** Writes everything gathered. */
  get flush(): Effect.Effect<void, SqlError, SqlClient> {
    return this.#writeAll(false)
  }

  /**
   * Writes everything gathered, for the last time: a fresh writer's rollups (none written yet)
   * then go into their tables with the primary keys dropped and made again after, which is
   * quicker than keeping them up row by row.
   */
  get finish(): Effect.Effect<void, SqlError, SqlClient> {
    return this.#writeAll(true)
  }

  #writeAll(last: boolean): Effect.Effect<void, SqlError, SqlClient> {
    return Effect.suspend(() => Effect.andThen(Effect.andThen(this.#send(this.#rawInsert()), this.#writeRollups(last)), this.#settle))
  }

  /** Runs an insert, or (pipelined) sends it once the one before it is done. */
  #send(insert: Effect.Effect<unknown, SqlError, SqlClient>): Effect.Effect<void, SqlError, SqlClient> {
    if (!this.#options.pipelined) return Effect.asVoid(insert)
    const self = this
    return Effect.gen(function*() {
      yield* self.#settle
      self.#inFlight = yield* Effect.forkChild(insert)
    })
  }

  /** Waits for the insert in flight, if any (its failure is the caller's). */
  get #settle(): Effect.Effect<void, SqlError> {
    return Effect.suspend(() => {
      const fiber = this.#inFlight
      this.#inFlight = undefined
      return fiber === undefined ? Effect.void : Effect.asVoid(Fiber.join(fiber))
    })
  }

  /** After series were dropped (and `flush`): their ids are gone, and so is the certainty of `fresh`. */
  deleted() {
    this.#rowsKnown = false
    this.#ids.clear()
    this.#seriesFresh = false
    this.#rollupsFresh = false
  }

  /** Ids for the samples' pins: from the cache, else looked up, else made. */
  #resolve(samples: ReadonlyArray<Sample>) {
    const self = this
    return Effect.gen(function*() {
      const ids = self.#ids
      const unknown = new Map<string, Sample>()
      let unresolved = false
      for (const s of samples) {
        const id = ids.get(s.prefix)?.get(s.code)
        if (id !== undefined) s.series = id
        else {
          unresolved = true
          const k = `${s.prefix}${s.code}`
          if (!unknown.has(k)) unknown.set(k, s)
        }
      }
      if (!unresolved) return
      const sql = yield* SqlClient
      const remember = (rows: ReadonlyArray<SeriesRow>) => {
        for (const r of rows) {
          const prefix = seriesPrefix(r.account_stream, Number(r.dash_id), Number(r.device_id))
          const code = pinCode(r.pin_type as PinType, Number(r.pin))
          let byPin = ids.get(prefix)
          if (byPin === undefined) ids.set(prefix, (byPin = new Map()))
          byPin.set(code, Number(r.series_id))
          unknown.delete(`${prefix}${code}`)
        }
      }
      const lookup = () => {
        const k = keyArrays(self.#arrays, [...unknown.values()])
        // One index probe per pin (LIMIT 1 keeps the planner from scanning the table instead).
        return sql<SeriesRow>`SELECT s.* FROM unnest(${k.a}::text[], ${k.d}::int[], ${k.v}::int[], ${k.t}::text[], ${k.p}::int[]) AS k(a, d, v, t, p)
          CROSS JOIN LATERAL (SELECT series_id, account_stream, dash_id, device_id, pin_type, pin FROM pl_history_series
            WHERE account_stream = k.a AND dash_id = k.d AND device_id = k.v AND pin_type = k.t AND pin = k.p LIMIT 1) AS s`
      }
      if (!self.#seriesFresh) remember(yield* lookup())
      if (unknown.size > 0) {
        const k = keyArrays(self.#arrays, [...unknown.values()])
        const made = yield* sql<SeriesRow>`INSERT INTO pl_history_series (account_stream, dash_id, device_id, pin_type, pin)
          SELECT * FROM unnest(${k.a}::text[], ${k.d}::int[], ${k.v}::int[], ${k.t}::text[], ${k.p}::int[])
          ON CONFLICT DO NOTHING
          RETURNING series_id, account_stream, dash_id, device_id, pin_type, pin`
        self.#rows += made.length
        remember(made)
        // Made meanwhile by another writer (only if two ever ran at once).
        if (unknown.size > 0) remember(yield* lookup())
      }
      for (const s of samples) if (s.series < 0) s.series = ids.get(s.prefix)!.get(s.code)!
    })
  }

  /** The insert of the raw rows gathered (taken now, so that more can gather meanwhile). */
  #rawInsert(): Effect.Effect<void, SqlError, SqlClient> {
    if (this.#raw.size === 0) return Effect.void
    const { n, series, ts, position, index, value, more, num } = this.#raw.take(this.#arrays)
    this.#rows += n
    return Effect.flatMap(SqlClient, (sql) =>
      // unnest in the select list (zipped, the arrays being as long as each other): about twice
      // as fast as unnest in FROM, whose function scan stores every row before the insert reads it.
      sql`INSERT INTO pl_history_raw (series_id, ts, position, write_index, value, more, num)
        SELECT unnest(${series}::int[]), unnest(${ts}::int8[]), unnest(${position}::int8[]),
          unnest(${index}::int[]), unnest(${value}::text[]), unnest(${more}::text[])::jsonb,
          unnest(${num}::float8[])`)
  }

  /**
   * A fresh writer's early write of the groups its pins have moved on from (taken now): their
   * rows go in while the log is still being read, instead of all at the end. The tables' primary
   * keys are dropped first (made again by `#writeRollups`), as there is nothing to conflict with;
   * a group that takes a value after it was written is written again by `#writeRollups`.
   */
  #spill(): Effect.Effect<void, SqlError, SqlClient> {
    if (!this.#rollupsFresh) return Effect.void
    const statements: Array<Effect.Effect<void, SqlError, SqlClient>> = []
    for (const level of this.#levels) {
      const left = level.left
      if (left.length === 0) continue
      level.left = []
      const groups: Array<Group> = []
      for (const group of left) {
        if (group.written !== 0) continue
        group.written = 1
        groups.push(group)
      }
      if (groups.length === 0) continue
      statements.push(this.#dropKeys(level.granularity), this.#insertGroups(level.granularity, groups, false))
    }
    return Effect.all(statements, { discard: true })
  }

  /** Drops a rollup table's primary key (once), keeping its definition for `#restoreKeys`. */
  #dropKeys(g: Granularity): Effect.Effect<void, SqlError, SqlClient> {
    if (this.#droppedKeys[g] !== undefined) return Effect.void
    const dropped: Array<{ conname: string; def: string }> = []
    this.#droppedKeys[g] = dropped
    return Effect.gen(function*() {
      const sql = yield* SqlClient
      const keys = yield* sql<{ conname: string; def: string }>`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
        WHERE conrelid = ${rollupTables[g]}::regclass AND contype = 'p'`
      for (const k of keys) {
        yield* sql`ALTER TABLE ${sql(rollupTables[g])} DROP CONSTRAINT ${sql(k.conname)}`
        dropped.push(k)
      }
    })
  }

  /** Makes the primary keys `#dropKeys` dropped again (quicker than keeping them up row by row). */
  #restoreKeys(): Effect.Effect<void, SqlError, SqlClient> {
    const statements: Array<Effect.Effect<void, SqlError, SqlClient>> = []
    for (const g of granularities) {
      const dropped = this.#droppedKeys[g]
      if (dropped === undefined) continue
      delete this.#droppedKeys[g]
      statements.push(Effect.flatMap(SqlClient, (sql) =>
        Effect.forEach(dropped, (k) =>
          sql.unsafe(`ALTER TABLE ${rollupTables[g]} ADD CONSTRAINT "${k.conname.replace(/"/g, '""')}" ${k.def}`), { discard: true })))
    }
    return Effect.all(statements, { discard: true })
  }

  /** The insert of rollup rows (their values taken now), upserting them or not. */
  #insertGroups(g: Granularity, groups: ReadonlyArray<Group>, upsert: boolean): Effect.Effect<void, SqlError, SqlClient> {
    const a = this.#arrays
    const n = groups.length
    if (upsert) this.#rowsKnown = false
    else this.#rows += n
    const series = new Float64Array(n), buckets = new Float64Array(n), totals = new Float64Array(n)
    const mins = new Float64Array(n), maxs = new Float64Array(n), counts = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      const x = groups[i]!
      series[i] = x.series
      buckets[i] = x.bucket
      totals[i] = x.total
      mins[i] = x.min
      maxs[i] = x.max
      counts[i] = x.count
    }
    return Effect.flatMap(SqlClient, (sql) =>
      sql`INSERT INTO ${sql(rollupTables[g])} (series_id, bucket, total, min, max, count)
        SELECT unnest(${a.column("int4", series, n)}::int[]), unnest(${a.column("int8", buckets, n)}::int8[]),
          unnest(${a.column("float8", totals, n)}::float8[]), unnest(${a.column("float8", mins, n)}::float8[]),
          unnest(${a.column("float8", maxs, n)}::float8[]), unnest(${a.column("int4", counts, n)}::int[])
        ${sql.literal(upsert ? "ON CONFLICT (series_id, bucket) DO UPDATE SET total = EXCLUDED.total, min = EXCLUDED.min, max = EXCLUDED.max, count = EXCLUDED.count" : "")}`)
  }

  /**
   * Writes the rollup groups gathered (those not written early as they are). A fresh writer's
   * groups are plain rows, the last time (or once it has written early) with the primary keys
   * dropped and made again after; the others are folded onto their stored rows and upserted.
   */
  #writeRollups(last: boolean): Effect.Effect<void, SqlError, SqlClient> {
    const self = this
    return Effect.gen(function*() {
      if (self.#values === 0) return
      const sql = yield* SqlClient
      const a = self.#arrays
      for (const level of self.#levels) {
        const g = level.granularity
        const groups: Array<Group> = []
        for (const buckets of level.groups.values()) for (const group of buckets.values()) if (group.written !== 1) groups.push(group)
        const changed = level.changed
        level.clear()
        if (changed.length > 0) {
          self.#rows -= changed.length
          const table = sql(rollupTables[g])
          yield* self.#send(sql`DELETE FROM ${table} USING unnest(${a.numbers(changed.map((x) => x.series))}::int[],
            ${a.numbers(changed.map((x) => x.bucket))}::int8[]) AS k(s, b) WHERE ${table}.series_id = k.s AND ${table}.bucket = k.b`)
        }
        if (groups.length === 0) continue
        const unread = groups.filter((x) => x.values !== undefined)
        // Nothing stored yet (a rebuild's first write): plain rows, no conflict to look for.
        const upsert = unread.length > 0 || !self.#rollupsFresh
        if (unread.length > 0) {
          const stored = yield* sql<{ i: unknown; total: number; min: number; max: number; count: number }>`
            SELECT k.i, r.total, r.min, r.max, r.count
            FROM unnest(${a.numbers(unread.map((x) => x.series))}::int[], ${a.numbers(unread.map((x) => x.bucket))}::int8[])
              WITH ORDINALITY AS k(s, b, i)
            CROSS JOIN LATERAL (SELECT total, min, max, count FROM ${sql(rollupTables[g])} WHERE series_id = k.s AND bucket = k.b LIMIT 1) AS r`
          for (const r of stored) {
            const x = unread[Number(r.i) - 1]!
            x.total = Number(r.total)
            x.min = Number(r.min)
            x.max = Number(r.max)
            x.count = Number(r.count)
          }
          for (const x of unread) for (const v of x.values!) fold(x, v)
        }
        if (!upsert && last) yield* self.#send(self.#dropKeys(g))
        yield* self.#send(self.#insertGroups(g, groups, upsert))
      }
      yield* self.#send(self.#restoreKeys())
      self.#values = 0
      // Rows now exist that this writer no longer holds: later ones must be read first.
      self.#rollupsFresh = false
    })
  }
}

/** Drops the series a deletion names, with all their rows. */
const deleteSeries = (d: Deletion) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const cascade = sql.literal(`,
      r AS (DELETE FROM pl_history_raw WHERE series_id IN (SELECT series_id FROM gone)),
      m AS (DELETE FROM pl_history_minute WHERE series_id IN (SELECT series_id FROM gone)),
      h AS (DELETE FROM pl_history_hour WHERE series_id IN (SELECT series_id FROM gone)),
      dd AS (DELETE FROM pl_history_day WHERE series_id IN (SELECT series_id FROM gone))
      SELECT count(*)::int AS n FROM gone`)
    if (d.pins !== undefined) {
      if (d.pins.length === 0) return
      yield* sql`WITH gone AS (
        DELETE FROM pl_history_series s
        USING unnest(${SqlArrays.numbers(d.pins.map((p) => p[0]))}::int[], ${SqlArrays.texts(d.pins.map((p) => p[1]))}::text[],
          ${SqlArrays.numbers(d.pins.map((p) => p[2]))}::int[]) AS k(v, t, p)
        WHERE s.account_stream = ${d.account} AND s.dash_id = ${d.dashId} AND s.device_id = k.v AND s.pin_type = k.t AND s.pin = k.p
        RETURNING s.series_id)${cascade}`
    } else {
      yield* sql`WITH gone AS (
        DELETE FROM pl_history_series WHERE account_stream = ${d.account} AND dash_id = ${d.dashId}
          AND (${d.deviceId ?? -1}::int < 0 OR device_id = ${d.deviceId ?? -1}::int)
        RETURNING series_id)${cascade}`
    }
  })

/**
 * Takes events in log order, chunk after chunk, through a `Writer`; a deletion first writes
 * what came before it. `end` writes the rest.
 */
const applier = (cut: Cutoffs, options: WriterOptions, arrays: SqlArrays.Arrays) => {
  const writer = new Writer(cut, options, arrays)
  const devices = new Map<string, DeviceNames>()
  let writes = 0
  const feed = (events: ReadonlyArray<HistoryEvent>): Effect.Effect<void, SqlError, SqlClient> =>
    Effect.gen(function*() {
      let samples: Array<Sample> = []
      for (const e of events) {
        if (e.type === PINS_WRITTEN) {
          writes += samplesOf(e, samples, devices)
          continue
        }
        const deletion = eventTypes.has(e.type) ? deletionOf(e) : undefined
        if (deletion === undefined) continue
        yield* writer.add(samples)
        samples = []
        yield* writer.flush
        yield* deleteSeries(deletion)
        writer.deleted()
      }
      yield* writer.add(samples)
    })
  return { feed, end: writer.finish, writes: () => writes, rows: () => writer.rows }
}

/** A live batch: everything written at its end, stored rows read first. */
const liveWriter: WriterOptions = { fresh: false, rawBatch: Number.POSITIVE_INFINITY, rollupBatch: Number.POSITIVE_INFINITY, pipelined: false }

/**
 * Applies events, in log order, to the tables at `now` (rows already past their retention are
 * not written). Returns the number of pin writes seen.
 */
export const apply = (events: ReadonlyArray<HistoryEvent>, now: number, retention: Retention): Effect.Effect<number, SqlError, SqlClient> =>
  Effect.gen(function*() {
    const a = applier(cutoffsAt(retention, now), liveWriter, yield* SqlArrays.forDatabase)
    yield* a.feed(events)
    yield* a.end
    return a.writes()
  })

/** The subscription's handler: the batch, and a NOTIFY (sent at commit) for `awaitCaughtUp`. */
export const handle = (retention: Retention) => (events: ReadonlyArray<RecordedEvent>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const relevant = events.filter((e) => eventTypes.has(e.type))
    if (relevant.length > 0) yield* apply(relevant.map(fromRecorded), yield* Clock.currentTimeMillis, retention)
    yield* sql`SELECT pg_notify(${channel}, '')`
  })

/** Rows older than their table's retention at `now`, deleted series by series (the primary keys serve it). */
export const cleanup = (retention: Retention, now: number): Effect.Effect<number, SqlError, SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const cut = cutoffsAt(retention, now)
    const series = (yield* sql<{ series_id: number }>`SELECT series_id FROM pl_history_series ORDER BY series_id`).map((r) => Number(r.series_id))
    let deleted = 0
    const targets: ReadonlyArray<readonly [string, string, number]> = [
      ["pl_history_raw", "ts", cut.raw],
      ["pl_history_minute", "bucket", cut.minute],
      ["pl_history_hour", "bucket", cut.hour],
      ["pl_history_day", "bucket", cut.day]
    ]
    for (const [table, column, cutoff] of targets) {
      if (cutoff === Number.NEGATIVE_INFINITY) continue
      for (let i = 0; i < series.length; i += 500) {
        const rows = yield* sql<{ n: number }>`WITH gone AS (
          DELETE FROM ${sql(table)} WHERE series_id = ANY(${SqlArrays.numbers(series.slice(i, i + 500))}::int[])
            AND ${sql(column)} < ${Math.floor(cutoff)}::int8 RETURNING 1)
          SELECT count(*)::int AS n FROM gone`
        deleted += Number(rows[0]?.n ?? 0)
      }
    }
    return deleted
  }).pipe(Effect.withSpan("PinHistory.cleanup"))

/**
 * Events `rebuild` fetches at once; raw rows it inserts at once; rollup values it gathers before
 * writing the rollups (about 24 bytes each: a million is a few tens of MB).
 */
const REBUILD_CHUNK = 5000
const REBUILD_RAW_BATCH = 50_000
const REBUILD_ROLLUP_BATCH = 3_000_000

export interface RebuildResult {
  /** Events of the types the projection reads, replayed. */
  readonly events: number
  /** Pin writes among them. */
  readonly writes: number
  /** The settled log it read: every transaction below this id (as text). */
  readonly horizon: string
  /** The rows its tables hold, when it knows (it wrote them all and deleted none). */
  readonly rows: number | undefined
}

const quoted = (names: Iterable<string>) => [...names].map((n) => `'${n.replace(/'/g, "''")}'`).join(", ")

/** The settled log's events (below `horizon`) of these types, in the subscription's order. */
const replayQuery = (types: ReadonlySet<string>, horizon: string) => {
  if (!/^[0-9]+$/.test(horizon)) throw new Error(`not a transaction id: ${horizon}`)
  // What the readers of a PinsWritten look at, taken out of it (no other field printed and parsed);
  // the other events whole. Positions as float8 (exact below 2^53): read as numbers, where int8
  // would be text or bigint.
  return `SELECT position::float8 AS position, stream_id, event_type,
    CASE WHEN event_type = '${PINS_WRITTEN}' THEN NULL ELSE data END AS data,
    CASE WHEN event_type = '${PINS_WRITTEN}' THEN data->'writes' END AS writes,
    CASE WHEN event_type = '${PINS_WRITTEN}' THEN data->'dashId' END AS dash_id,
    CASE WHEN event_type = '${PINS_WRITTEN}' THEN data->'deviceId' END AS device_id,
    CASE WHEN event_type = '${PINS_WRITTEN}' THEN data->'timestamps' END AS timestamps,
    metadata->>'time' AS time, recorded_at
  FROM pl_events
  WHERE tx_id < '${horizon}'::xid8 AND event_type IN (${quoted(types)})
  ORDER BY tx_id, position`
}

/** Below it, every transaction had ended when the snapshot was taken: the settled log. */
const horizonQuery = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS tx_text"


interface ReplayRow {
  readonly position: unknown
  readonly stream_id: string
  readonly event_type: string
  readonly data: unknown
  readonly writes: unknown
  readonly dash_id: unknown
  readonly device_id: unknown
  readonly timestamps: unknown
  readonly time: string | null
  readonly recorded_at: Date
}

const json = (value: unknown) => (typeof value === "string" ? JSON.parse(value) : value)

/**
 * A PinsWritten as its readers see it, from the fields the query took out: its dashboard, device,
 * writes and their times (`samplesOf`, `PinStateFold`).
 */
const pinsWritten = (r: ReplayRow) => {
  const timestamps = json(r.timestamps)
  const data: { dashId: unknown; deviceId: unknown; writes: unknown; timestamps?: unknown } = {
    dashId: json(r.dash_id),
    deviceId: json(r.device_id),
    writes: json(r.writes)
  }
  if (timestamps !== null && timestamps !== undefined) data.timestamps = timestamps
  return data
}

const toEvents = (rows: ReadonlyArray<ReplayRow>): ReadonlyArray<HistoryEvent> =>
  rows.map((r): HistoryEvent => {
    // The one string every reader compares with most, as the constant (compared, and hashed, at once).
    const type = r.event_type === PINS_WRITTEN ? PINS_WRITTEN : r.event_type
    return {
      position: Number(r.position),
      streamId: r.stream_id,
      type,
      data: type === PINS_WRITTEN ? pinsWritten(r) : json(r.data),
      time: writesTime(r.time, r.recorded_at.getTime())
    }
  })

/**
 * Reads the settled log's events of `types` for a rebuild in chunks of `chunk` events, in order,
 * and hands each to `use`; returns the horizon it read below (a transaction id, as text). On
 * PostgreSQL the reading runs on a connection of its own (a read-only snapshot), so the next chunk
 * is read while this one is written; on PGlite (one connection), through a cursor in the
 * rebuild's own transaction.
 */
const readLog = (chunk: number, types: ReadonlySet<string>, use: (events: ReadonlyArray<HistoryEvent>) => Effect.Effect<void, SqlError, SqlClient>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const database = yield* Effect.serviceOption(Database)
    const aside = database._tag === "Some" && database.value.kind === "postgres"
      ? yield* sql.reserve.pipe(Effect.timeoutOption("2 seconds"))
      : undefined
    if (aside === undefined || aside._tag === "None") {
      const horizon = (yield* sql.unsafe<{ tx_text: string }>(horizonQuery))[0]!.tx_text
      yield* sql.unsafe(`DECLARE pl_history_replay NO SCROLL CURSOR FOR ${replayQuery(types, horizon)}`)
      for (;;) {
        const rows = yield* sql.unsafe<ReplayRow>(`FETCH ${chunk} FROM pl_history_replay`)
        if (rows.length > 0) yield* use(toEvents(rows))
        if (rows.length < chunk) break
      }
      yield* sql.unsafe("CLOSE pl_history_replay")
      return horizon
    }
    const conn = aside.value
    const run = <Row>(statement: string) => conn.executeUnprepared(statement, [], undefined) as Effect.Effect<ReadonlyArray<Row>, SqlError>
    const queue = yield* Queue.bounded<ReadonlyArray<HistoryEvent>, SqlError | Cause.Done>(2)
    let horizon = ""
    const reader = Effect.gen(function*() {
      yield* run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
      horizon = (yield* run<{ tx_text: string }>(horizonQuery))[0]!.tx_text
      yield* run(`DECLARE pl_history_replay NO SCROLL CURSOR FOR ${replayQuery(types, horizon)}`)
      for (;;) {
        const rows = yield* run<ReplayRow>(`FETCH ${chunk} FROM pl_history_replay`)
        if (rows.length > 0) yield* Queue.offer(queue, toEvents(rows))
        if (rows.length < chunk) break
      }
      yield* run("COMMIT")
    }).pipe(
      // However it ends, the connection goes back to the pool outside a transaction.
      Effect.onExit((exit) => Exit.isSuccess(exit) ? Effect.void : Effect.ignore(run("ROLLBACK"))),
      Effect.matchCauseEffect({ onSuccess: () => Queue.end(queue), onFailure: (cause) => Queue.failCause(queue, cause) })
    )
    yield* Effect.forkScoped(reader)
    for (;;) {
      const next = yield* Queue.take(queue).pipe(Effect.catchIf(Cause.isDone, () => Effect.succeed(undefined)))
      if (next === undefined) break
      yield* use(next)
    }
    return horizon
  }).pipe(Effect.scoped)

/**
 * Empties the projection's tables and replays the settled log into them, then moves its
 * checkpoint to the last event replayed, all in one transaction: readers see the old tables
 * until it commits (TRUNCATE makes them wait meanwhile); a running subscriber's next commit
 * waits for it, then finds its checkpoint moved and starts again from there. Rows past their
 * retention at the time of the rebuild are not written. For `pinledger replay`.
 *
 * Fast because it reads the log once through a cursor (one plan, in (transaction, position)
 * order as the subscription reads it) on a connection of its own, writes samples in large
 * batches bound as binary arrays, writes the rollup rows a pin has moved on from while it still
 * reads (the rest at the end), and builds the raw table's index and the rollups' keys once at
 * the end instead of row by row.
 */
export const rebuild = (
  options: {
    readonly retention?: Retention | undefined
    /** Events fetched at once. */
    readonly chunk?: number | undefined
    /** Raw rows inserted at once. */
    readonly rawBatch?: number | undefined
    /** Rollup values gathered before the rollups are written. */
    readonly rollupBatch?: number | undefined
    /**
     * Another reader of the same events: they are read for it too (events of `types` as well as
     * the projection's), each handed to `take` once, in the subscription's order.
     */
    readonly also?: {
      readonly types: ReadonlySet<string>
      readonly take: (events: ReadonlyArray<HistoryEvent>) => void
    } | undefined
  } = {}
): Effect.Effect<RebuildResult, SqlError, SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const retention = options.retention ?? defaultRetention
    const chunk = Math.max(1, Math.floor(options.chunk ?? REBUILD_CHUNK))
    return yield* sql.withTransaction(Effect.gen(function*() {
      // The tables first, then the checkpoint, in the order a subscriber's batch takes them: a
      // batch under way is waited for and commits; the other way round each would wait for the other.
      yield* sql.unsafe(`TRUNCATE ${tables.join(", ")} RESTART IDENTITY`)
      yield* sql`INSERT INTO pl_checkpoints (subscriber, tx_id, position) VALUES (${name}, '0'::xid8, 0) ON CONFLICT (subscriber) DO NOTHING`
      yield* sql`SELECT subscriber FROM pl_checkpoints WHERE subscriber = ${name} FOR UPDATE`
      // The raw table's indexes, as the migrations made them, are built again after the load.
      const indexes = yield* sql<{ indexname: string; indexdef: string }>`
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'pl_history_raw'
          AND indexname NOT IN (SELECT conname FROM pg_constraint)`
      for (const index of indexes) yield* sql`DROP INDEX ${sql(index.indexname)}`
      const now = yield* Clock.currentTimeMillis
      const a = applier(cutoffsAt(retention, now), {
        fresh: true,
        rawBatch: options.rawBatch ?? REBUILD_RAW_BATCH,
        rollupBatch: options.rollupBatch ?? REBUILD_ROLLUP_BATCH,
        pipelined: true
      }, yield* SqlArrays.forDatabase)
      let last: number | undefined
      let events = 0
      const also = options.also
      const types = also === undefined ? eventTypes : new Set([...eventTypes, ...also.types])
      const horizon = yield* readLog(chunk, types, (read) => {
        also?.take(read)
        for (const e of read) if (e.type === PINS_WRITTEN || eventTypes.has(e.type)) events++
        last = read[read.length - 1]!.position
        return a.feed(read)
      })
      yield* a.end
      for (const index of indexes) yield* sql.unsafe(index.indexdef)
      // The checkpoint: the last event read (its transaction looked up once, not read with every event).
      const at: Subscription.Checkpoint = last === undefined ? Subscription.origin : {
        txId: BigInt((yield* sql<{ tx_text: string }>`SELECT tx_id::text AS tx_text FROM pl_events WHERE position = ${last}`)[0]!.tx_text),
        position: last
      }
      yield* sql`UPDATE pl_checkpoints SET tx_id = ${at.txId.toString()}::xid8, position = ${at.position}, updated_at = now()
        WHERE subscriber = ${name}`
      return { events, writes: a.writes(), horizon, rows: a.rows() }
    }))
  }).pipe(Effect.withSpan("PinHistory.rebuild"))

/**
 * Whether every event up to `position` that has committed has been projected (events that are
 * not settled yet, or were not in the log when the position was taken, aside).
 */
export const caughtUp = (position: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const at = yield* Subscription.loadCheckpoint(name)
    const rows = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pl_events
      WHERE position <= ${position} AND (tx_id, position) > (${at.txId.toString()}::xid8, ${at.position})`
    return Number(rows[0]?.n ?? 1) === 0
  })

/**
 * Waits until the projection has taken in every event up to `position` (e.g. the log's head
 * after an append): woken by each of its commits, with polling as the fallback.
 */
export const awaitCaughtUp = (position: number) =>
  Effect.scoped(Effect.gen(function*() {
    const database = yield* Database
    const wake = yield* database.listen(channel)
    while (!(yield* caughtUp(position))) {
      yield* Queue.take(wake).pipe(Effect.timeoutOption("1 second"))
    }
  }))

export interface PinHistoryOptions {
  readonly retention?: Retention | undefined
  /** Time between two cleanups (the first one runs at start). */
  readonly cleanupInterval?: Duration.Input | undefined
  readonly pollInterval?: Duration.Input | undefined
  readonly batchSize?: number | undefined
}

/** Runs the projection (and its periodic cleanup) for the life of the layer. */
export const layer = (options: PinHistoryOptions = {}): Layer.Layer<never, never, SqlClient | Database> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const retention = options.retention ?? defaultRetention
    yield* Effect.forkScoped(Subscription.run({
      name,
      handle: handle(retention),
      batchSize: options.batchSize ?? 2000,
      pollInterval: options.pollInterval
    }))
    const interval = Duration.fromInputUnsafe(options.cleanupInterval ?? "1 hour")
    const once = Clock.currentTimeMillis.pipe(
      Effect.flatMap((now) => cleanup(retention, now)),
      Effect.tap((n) => (n > 0 ? Effect.logInfo(`pin history: ${n} rows past their retention deleted`) : Effect.void)),
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause) ? Effect.failCause(cause) : Effect.logWarning("pin history cleanup failed", Cause.pretty(cause))
      )
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(once, Effect.sleep(interval))))
  }))

/** The projection as the CLI (`pinledger replay`) and the server see it. */
export const PinHistory = { name, tables, eventTypes, rebuild, cleanup, layer, awaitCaughtUp, defaultRetention } as const
