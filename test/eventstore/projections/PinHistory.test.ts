import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Schedule } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import fc from "fast-check"
import { bucketOf, type Granularity } from "../../../src/domain/Graphs.ts"
import type { PinType, PinWrite } from "../../../src/domain/Pins.ts"
import { accountStream, deviceStream } from "../../../src/domain/Streams.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import * as HistoryQueries from "../../../src/eventstore/HistoryQueries.ts"
import * as PinHistory from "../../../src/eventstore/projections/PinHistory.ts"
import * as Subscription from "../../../src/eventstore/Subscription.ts"
import { backends, storeLayer } from "../../support/backends.ts"

const forever: PinHistory.Retention = { rawDays: 0, minuteDays: 0, hourDays: 0, dayDays: 0 }
const base = Date.parse("2026-05-01T10:00:00.000Z")
const MIN = 60_000
const HOUR = 3_600_000
const DAY = 86_400_000

const writesEvent = (dashId: number, deviceId: number, writes: ReadonlyArray<PinWrite>, timestamps?: ReadonlyArray<number>) => ({
  type: "PinsWritten",
  schemaVersion: 1,
  data: { _tag: "PinsWritten", dashId, deviceId, source: "hardware", writes, ...(timestamps ? { timestamps } : {}) }
})

/** Appends a device's writes at `time` (the event's metadata time). */
const write = (account: string, dashId: number, deviceId: number, time: number, writes: ReadonlyArray<PinWrite>, timestamps?: ReadonlyArray<number>) =>
  Effect.flatMap(EventStore, (store) =>
    store.append(deviceStream(account, dashId, deviceId), "any", [writesEvent(dashId, deviceId, writes, timestamps)], {
      time: new Date(time).toISOString(),
      actor: "device"
    }))

const accountEvent = (account: string, type: string, data: Record<string, unknown>) =>
  Effect.flatMap(EventStore, (store) =>
    store.append(account, "any", [{ type, schemaVersion: 1, data: { _tag: type, ...data } }], { time: new Date(base).toISOString(), actor: "app" }))

/** Runs the projection as the server does, until the scope closes. */
const running = (retention: PinHistory.Retention) =>
  Layer.build(PinHistory.layer({ retention, pollInterval: "100 millis", cleanupInterval: "1 hour" }))

const caughtUp = Effect.flatMap(EventStore, (store) => store.head).pipe(Effect.flatMap(PinHistory.awaitCaughtUp))

interface RawRow {
  readonly key: string
  readonly ts: number
  readonly value: string
  readonly more: ReadonlyArray<string> | null
  readonly num: number | null
}
interface RollupRow {
  readonly key: string
  readonly bucket: number
  readonly total: number
  readonly min: number
  readonly max: number
  readonly count: number
}
interface Snapshot {
  readonly series: ReadonlyArray<string>
  readonly raw: ReadonlyArray<RawRow>
  readonly minute: ReadonlyArray<RollupRow>
  readonly hour: ReadonlyArray<RollupRow>
  readonly day: ReadonlyArray<RollupRow>
}

const keyOf = (a: string, d: number, v: number, t: string, p: number) => `${a}|${d}|${v}|${t}|${p}`
const byJson = <A>(rows: ReadonlyArray<A>) => [...rows].sort((x, y) => (JSON.stringify(x) < JSON.stringify(y) ? -1 : 1))

/** Everything the projection holds, by pin names (series ids differ between builds), sorted. */
const snapshot = Effect.gen(function*() {
  const sql = yield* SqlClient
  const key = sql.literal("s.account_stream AS a, s.dash_id AS d, s.device_id AS v, s.pin_type AS t, s.pin AS p")
  type Named = { a: string; d: number; v: number; t: string; p: number }
  const series = yield* sql<Named>`SELECT ${key} FROM pl_history_series s`
  const raw = yield* sql<Named & { ts: unknown; value: string; more: unknown; num: number | null }>`
    SELECT ${key}, r.ts, r.value, r.more, r.num FROM pl_history_raw r JOIN pl_history_series s USING (series_id)`
  const orphans = yield* sql<{ n: number }>`SELECT (
    (SELECT count(*) FROM pl_history_raw WHERE series_id NOT IN (SELECT series_id FROM pl_history_series)) +
    (SELECT count(*) FROM pl_history_minute WHERE series_id NOT IN (SELECT series_id FROM pl_history_series)) +
    (SELECT count(*) FROM pl_history_hour WHERE series_id NOT IN (SELECT series_id FROM pl_history_series)) +
    (SELECT count(*) FROM pl_history_day WHERE series_id NOT IN (SELECT series_id FROM pl_history_series)))::int AS n`
  expect(Number(orphans[0]!.n)).toBe(0)
  const rollup = (g: Granularity) =>
    sql<Named & { bucket: unknown; total: number; min: number; max: number; count: number }>`
      SELECT ${key}, r.bucket, r.total, r.min, r.max, r.count FROM ${sql(PinHistory.rollupTables[g])} r JOIN pl_history_series s USING (series_id)`.pipe(
      Effect.map((rows) =>
        byJson(rows.map((r): RollupRow => ({
          key: keyOf(r.a, r.d, r.v, r.t, r.p),
          bucket: Number(r.bucket),
          total: Number(r.total),
          min: Number(r.min),
          max: Number(r.max),
          count: Number(r.count)
        })))
      )
    )
  return {
    series: series.map((r) => keyOf(r.a, r.d, r.v, r.t, r.p)).sort(),
    raw: byJson(raw.map((r): RawRow => {
      const more = typeof r.more === "string" ? JSON.parse(r.more) : r.more
      return { key: keyOf(r.a, r.d, r.v, r.t, r.p), ts: Number(r.ts), value: r.value, more: more ?? null, num: r.num === null ? null : Number(r.num) }
    })),
    minute: yield* rollup("minute"),
    hour: yield* rollup("hour"),
    day: yield* rollup("day")
  } satisfies Snapshot
})

for (const backend of backends) {
  describe(`pin history on ${backend.name}`, () => {
    it.live("writes become raw samples and minute/hour/day rollups; strings and multi-values are kept raw only", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          yield* running(forever)
          const account = accountStream("raw@example.com", "Blynk")
          const t0 = base + 5_000
          yield* write(account, 1, 0, t0, [["v", 1, "10"], ["v", 1, "20"], ["v", 2, "hello"]])
          yield* write(account, 1, 0, t0 + 30_000, [["v", 1, " 30 "], ["v", 3, "a", "b"], ["d", 4, "1"]])
          yield* write(account, 1, 0, t0 + MIN, [["v", 1, "-1.5e1"], ["v", 1, "12abc"]])
          // Each write with its own time (HTTP extra/pin): those times, not the event's.
          yield* write(account, 1, 0, t0 + 2 * HOUR, [["v", 1, "7"], ["v", 1, "9"]], [base + DAY, base + DAY + 1])
          yield* caughtUp
          const snap = yield* snapshot
          const k = (t: PinType, pin: number) => keyOf(account, 1, 0, t, pin)
          expect(snap.series).toEqual([k("d", 4), k("v", 1), k("v", 2), k("v", 3)].sort())
          expect(snap.raw).toEqual(byJson([
            { key: k("v", 1), ts: t0, value: "10", more: null, num: 10 },
            { key: k("v", 1), ts: t0, value: "20", more: null, num: 20 },
            { key: k("v", 2), ts: t0, value: "hello", more: null, num: null },
            { key: k("v", 1), ts: t0 + 30_000, value: " 30 ", more: null, num: 30 },
            { key: k("v", 3), ts: t0 + 30_000, value: "a", more: ["b"], num: null },
            { key: k("d", 4), ts: t0 + 30_000, value: "1", more: null, num: 1 },
            { key: k("v", 1), ts: t0 + MIN, value: "-1.5e1", more: null, num: -15 },
            { key: k("v", 1), ts: t0 + MIN, value: "12abc", more: null, num: null },
            { key: k("v", 1), ts: base + DAY, value: "7", more: null, num: 7 },
            { key: k("v", 1), ts: base + DAY + 1, value: "9", more: null, num: 9 }
          ]))
          expect(snap.minute).toEqual(byJson([
            { key: k("v", 1), bucket: base, total: 60, min: 10, max: 30, count: 3 },
            { key: k("d", 4), bucket: base, total: 1, min: 1, max: 1, count: 1 },
            { key: k("v", 1), bucket: base + MIN, total: -15, min: -15, max: -15, count: 1 },
            { key: k("v", 1), bucket: base + DAY, total: 16, min: 7, max: 9, count: 2 }
          ]))
          expect(snap.hour).toEqual(byJson([
            { key: k("v", 1), bucket: base, total: 45, min: -15, max: 30, count: 4 },
            { key: k("d", 4), bucket: base, total: 1, min: 1, max: 1, count: 1 },
            { key: k("v", 1), bucket: base + DAY, total: 16, min: 7, max: 9, count: 2 }
          ]))
          const day0 = bucketOf(base, "day")
          expect(snap.day).toEqual(byJson([
            { key: k("v", 1), bucket: day0, total: 45, min: -15, max: 30, count: 4 },
            { key: k("d", 4), bucket: day0, total: 1, min: 1, max: 1, count: 1 },
            { key: k("v", 1), bucket: day0 + DAY, total: 16, min: 7, max: 9, count: 2 }
          ]))
          // The reads the graphs and the CSV use.
          const pin = { accountStream: account, dashId: 1, deviceId: 0, pinType: "v" as const, pin: 1 }
          expect(yield* HistoryQueries.rollups(pin, "minute", base, base + 2 * MIN)).toEqual([
            { ts: base, avg: 20, sum: 60, min: 10, max: 30, count: 3 },
            { ts: base + MIN, avg: -15, sum: -15, min: -15, max: -15, count: 1 }
          ])
          expect((yield* HistoryQueries.lastRollups(pin, "minute", 2)).map((p) => p.ts)).toEqual([base + MIN, base + DAY])
          expect((yield* HistoryQueries.lastSamples(pin, 3, { numeric: true })).map((s) => s.num)).toEqual([-15, 7, 9])
          expect((yield* HistoryQueries.lastSamples({ ...pin, pin: 3 }, 5))).toEqual([{ ts: t0 + 30_000, value: "a", more: ["b"], num: null }])
          // Samples of the same time come back in the order they were written: in the event,
          // then event after event.
          const same = base + 3 * DAY
          const order = ["5", "3", "9", "1", "7", "2", "8", "4", "6"]
          yield* write(account, 1, 0, same, order.slice(0, 6).map((v): PinWrite => ["v", 8, v]))
          yield* write(account, 1, 0, same, order.slice(6).map((v): PinWrite => ["v", 8, v]))
          yield* caughtUp
          const pin8 = { ...pin, pin: 8 }
          expect((yield* HistoryQueries.samples(pin8, same, same + 1, 100)).map((s) => s.value)).toEqual(order)
          expect((yield* HistoryQueries.lastSamples(pin8, 100)).map((s) => s.value)).toEqual(order)
          expect((yield* HistoryQueries.lastSamples(pin8, 4)).map((s) => s.value)).toEqual(order.slice(5))
        }).pipe(Effect.provide(storeLayer(storage)), Effect.scoped)
      }))

    it.live("deleting a device, a dashboard or a chart's pins drops their history and nothing else", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          yield* running(forever)
          const alice = accountStream("alice@example.com", "Blynk")
          const bob = accountStream("bob@example.com", "Blynk")
          for (const account of [alice, bob]) {
            for (const [dash, device] of [[1, 0], [1, 1], [2, 0]] as const) {
              yield* write(account, dash, device, base, [["v", 1, "1"], ["v", 2, "2"], ["v", 3, "x"]])
            }
          }
          yield* caughtUp
          const before = yield* snapshot
          expect(before.series.length).toBe(18)
          yield* accountEvent(alice, "DeviceDeleted", { dashId: 1, deviceId: 1 })
          yield* accountEvent(alice, "GraphDataDeleted", { dashId: 2, widgetId: 9, pins: [[0, "v", 1], [0, "v", 3]] })
          yield* accountEvent(bob, "DashboardDeleted", { dashId: 1 })
          // Writes after a deletion make the pin's history anew.
          yield* write(bob, 1, 0, base + MIN, [["v", 1, "5"]])
          yield* caughtUp
          const after = yield* snapshot
          const gone = new Set([
            ...[1, 2, 3].map((p) => keyOf(alice, 1, 1, "v", p)),
            keyOf(alice, 2, 0, "v", 1),
            keyOf(alice, 2, 0, "v", 3),
            ...[1, 2, 3].flatMap((p) => [keyOf(bob, 1, 0, "v", p), keyOf(bob, 1, 1, "v", p)])
          ])
          expect(after.series).toEqual([...before.series.filter((k) => !gone.has(k)), keyOf(bob, 1, 0, "v", 1)].sort())
          for (const table of ["raw", "minute", "hour", "day"] as const) {
            const kept = before[table].filter((r) => !gone.has(r.key))
            expect(after[table].filter((r) => r.key !== keyOf(bob, 1, 0, "v", 1))).toEqual(kept)
          }
          expect(after.raw.filter((r) => r.key === keyOf(bob, 1, 0, "v", 1)).map((r) => r.value)).toEqual(["5"])
          expect(after.minute.filter((r) => r.key === keyOf(bob, 1, 0, "v", 1)).map((r) => r.bucket)).toEqual([base + MIN])
        }).pipe(Effect.provide(storeLayer(storage)), Effect.scoped)
      }))

    it.live("the cleanup deletes what is past each table's retention; writes already past it are not stored", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          const retention: PinHistory.Retention = { rawDays: 2, minuteDays: 5, hourDays: 20, dayDays: 0 }
          const account = accountStream("old@example.com", "Blynk")
          const now = Date.now()
          const at = (days: number) => now - days * DAY
          yield* write(account, 1, 0, at(1), [["v", 1, "1"]])
          yield* write(account, 1, 0, at(3), [["v", 1, "3"]])
          yield* write(account, 1, 0, at(10), [["v", 1, "10"]])
          yield* write(account, 1, 0, at(30), [["v", 1, "30"]])
          // Projected as if for ever, then cleaned up as configured.
          const forEver = yield* Effect.forkChild(Subscription.run({ name: PinHistory.name, handle: PinHistory.handle(forever), pollInterval: "100 millis" }))
          yield* caughtUp
          yield* Fiber.interrupt(forEver)
          expect((yield* snapshot).raw.length).toBe(4)
          const deleted = yield* PinHistory.cleanup(retention, now)
          const snap = yield* snapshot
          expect(snap.raw.map((r) => r.value)).toEqual(["1"])
          expect(snap.minute.map((r) => r.total).sort((a, b) => a - b)).toEqual([1, 3])
          expect(snap.hour.map((r) => r.total).sort((a, b) => a - b)).toEqual([1, 3, 10])
          expect(snap.day.map((r) => r.total).sort((a, b) => a - b)).toEqual([1, 3, 10, 30])
          expect(deleted).toBe(3 + 2 + 1)
          // The live projection with this retention does not write what the cleanup would delete.
          yield* PinHistory.rebuild({ retention })
          expect(yield* snapshot).toEqual(snap)
          yield* running(retention)
          yield* write(account, 1, 0, at(4), [["v", 1, "4"]])
          yield* caughtUp
          const later = yield* snapshot
          expect(later.raw).toEqual(snap.raw)
          expect(later.minute.map((r) => r.total).sort((a, b) => a - b)).toEqual([1, 3, 4])
        }).pipe(Effect.provide(storeLayer(storage)), Effect.scoped)
      }))

    it.live("a rebuild writes the minutes a pin has moved on from while it reads, and again those a later value comes back to", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          const account = accountStream("spill@example.com", "Blynk")
          yield* running(forever)
          // Minute 0, minute 1, back to minute 0 (after the rebuild wrote it early), minute 2.
          yield* write(account, 1, 0, base, [["v", 1, "1"]])
          yield* write(account, 1, 0, base + MIN, [["v", 1, "2"]])
          yield* write(account, 1, 0, base + 10_000, [["v", 1, "4"]])
          yield* write(account, 1, 1, base, [["v", 2, "100"]])
          yield* write(account, 1, 0, base + 2 * MIN, [["v", 1, "8"]])
          // One event at a time, each raw row written at once: early writes after every event.
          const rebuildEach = PinHistory.rebuild({ retention: forever, chunk: 1, rawBatch: 1 })
          const sql = yield* SqlClient
          const rowsNow = Effect.map(
            sql<{ n: number }>`SELECT ((SELECT count(*) FROM pl_history_series) + (SELECT count(*) FROM pl_history_raw) +
              (SELECT count(*) FROM pl_history_minute) + (SELECT count(*) FROM pl_history_hour) + (SELECT count(*) FROM pl_history_day))::int AS n`,
            (rows) => Number(rows[0]!.n)
          )
          yield* caughtUp
          const before = yield* snapshot
          const first = yield* rebuildEach
          expect(yield* snapshot).toEqual(before)
          // Nothing deleted: it counted the rows it wrote (the minute written twice once).
          expect(first.rows).toBe(yield* rowsNow)
          // A deletion writes what was gathered (keys dropped or not), then rows are continued.
          yield* accountEvent(account, "DeviceDeleted", { dashId: 1, deviceId: 1 })
          yield* write(account, 1, 0, base + 20_000, [["v", 1, "16"]])
          yield* write(account, 1, 0, base + 3 * MIN, [["v", 1, "32"]])
          yield* caughtUp
          const live = yield* snapshot
          const pin = keyOf(account, 1, 0, "v", 1)
          expect(live.minute.filter((r) => r.key.startsWith(account)).map((r) => [r.bucket - base, r.total, r.count])).toEqual([
            [0, 21, 3],
            [MIN, 2, 1],
            [2 * MIN, 8, 1],
            [3 * MIN, 32, 1]
          ])
          expect(live.series.filter((k) => k.startsWith(account))).toEqual([pin])
          const rebuilt = yield* rebuildEach
          expect(rebuilt.writes).toBeGreaterThanOrEqual(7)
          expect(rebuilt.rows).toBeUndefined()
          expect(yield* snapshot).toEqual(live)
          const keys = yield* sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_constraint WHERE contype = 'p'
            AND conrelid IN ('pl_history_minute'::regclass, 'pl_history_hour'::regclass, 'pl_history_day'::regclass)`
          expect(Number(keys[0]!.n)).toBe(3)
          // And the tables take live writes onto the rebuilt rows.
          yield* write(account, 1, 0, base + 30_000, [["v", 1, "64"]])
          yield* caughtUp
          expect((yield* snapshot).minute.find((r) => r.key === pin && r.bucket === base)).toMatchObject({ total: 85, count: 4 })
        }).pipe(Effect.provide(storeLayer(storage)), Effect.scoped)
      }))

    it.live("rebuilt from the log, the tables equal the live ones and a model of the writes (property)", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const context = yield* Layer.build(storeLayer(storage))
        let round = 0

        const writeOp = fc.record({
          _tag: fc.constant("write" as const),
          dash: fc.integer({ min: 1, max: 2 }),
          device: fc.integer({ min: 0, max: 1 }),
          /** Seconds after the base: mostly within minutes (rollup rows shared by many writes), some up to two days. */
          at: fc.oneof(
            { weight: 3, arbitrary: fc.integer({ min: 0, max: 10 * 60 }) },
            { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 * 24 * 60 * 60 - 1 }) }
          ).map((s) => base + s * 1000),
          ownTimes: fc.boolean(),
          writes: fc.array(
            fc.record({
              t: fc.constantFrom<PinType>("v", "v", "v", "d"),
              pin: fc.integer({ min: 0, max: 1 }),
              values: fc.oneof(
                fc.integer({ min: -1000, max: 1000 }).map((n) => [String(n)]),
                // Decimals whose sums round differently in another order: a fold that regroups shows.
                fc.integer({ min: -100_000, max: 100_000 }).map((n) => [String(n / 1000)]),
                fc.constantFrom(["0.1"], ["0.2"], ["0.3"], ["1e16"], ["-1e16"], ["3.14159"]),
                fc.double({ min: -1e6, max: 1e6, noNaN: true, noDefaultInfinity: true }).map((n) => [String(n)]),
                fc.constantFrom(["on"], ["1e3"], [" 2.5"], ["x", "y"], ["3", "4"], [""]),
                fc.string({ maxLength: 6 }).map((s) => [s])
              ),
              offset: fc.integer({ min: 0, max: 5 * 60_000 })
            }),
            { minLength: 1, maxLength: 6 }
          )
        })
        const op = fc.oneof(
          { weight: 8, arbitrary: writeOp },
          { weight: 1, arbitrary: fc.record({ _tag: fc.constant("deleteDevice" as const), dash: fc.integer({ min: 1, max: 2 }), device: fc.integer({ min: 0, max: 2 }) }) },
          { weight: 1, arbitrary: fc.record({ _tag: fc.constant("deleteDashboard" as const), dash: fc.integer({ min: 1, max: 2 }) }) },
          {
            weight: 1,
            arbitrary: fc.record({
              _tag: fc.constant("deleteGraph" as const),
              dash: fc.integer({ min: 1, max: 2 }),
              pins: fc.array(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.constantFrom("v", "d", "a"), fc.integer({ min: 0, max: 3 })), { maxLength: 3 })
            })
          }
        )
        type Op = typeof op extends fc.Arbitrary<infer T> ? T : never
        const scenario = (ops: ReadonlyArray<{ account: number; op: Op }>, cuts: ReadonlyArray<number>, batchSize: number, rebuildChunk: number) =>
          Effect.gen(function*() {
            const accounts = [0, 1].map((i) => accountStream(`prop${++round}-${i}@example.com`, "Blynk"))
            // The model: what the tables must hold for this round's accounts.
            const model = { raw: [] as Array<RawRow>, rollups: { minute: new Map(), hour: new Map(), day: new Map() } as Record<Granularity, Map<string, RollupRow>>, series: new Set<string>() }
            const drop = (match: (key: string) => boolean) => {
              for (const k of [...model.series]) if (match(k)) model.series.delete(k)
              model.raw = model.raw.filter((r) => !match(r.key))
              for (const g of ["minute", "hour", "day"] as const) for (const [k, r] of model.rollups[g]) if (match(r.key)) model.rollups[g].delete(k)
            }
            // The live projection catches up at the cut points only, so its batches hold many
            // events and rows it stored before (the fold must continue them exactly).
            const catchUp = Effect.gen(function*() {
              const subscriber = yield* Effect.forkChild(Subscription.run({
                name: PinHistory.name,
                handle: PinHistory.handle(forever),
                batchSize,
                pollInterval: "100 millis"
              }))
              yield* caughtUp
              yield* Fiber.interrupt(subscriber)
            })
            for (const [i, { account: which, op: o }] of ops.entries()) {
              if (cuts.includes(i)) yield* catchUp
              const account = accounts[which]!
              switch (o._tag) {
                case "write": {
                  const writes = o.writes.map((w): PinWrite => [w.t, w.pin, ...(w.values as [string, ...Array<string>])])
                  const times = o.ownTimes ? o.writes.map((w) => o.at + w.offset) : undefined
                  yield* write(account, o.dash, o.device, o.at, writes, times)
                  o.writes.forEach((w, i) => {
                    const key = keyOf(account, o.dash, o.device, w.t, w.pin)
                    const ts = times?.[i] ?? o.at
                    const num = w.values.length === 1 ? PinHistory.numericValue(w.values[0]!) : null
                    model.series.add(key)
                    model.raw.push({ key, ts, value: w.values[0]!, more: w.values.length > 1 ? w.values.slice(1) : null, num })
                    if (num === null) return
                    for (const g of ["minute", "hour", "day"] as const) {
                      const bucket = bucketOf(ts, g)
                      const r = model.rollups[g].get(`${key}@${bucket}`) ?? { key, bucket, total: 0, min: Infinity, max: -Infinity, count: 0 }
                      model.rollups[g].set(`${key}@${bucket}`, { key, bucket, total: r.total + num, min: Math.min(r.min, num), max: Math.max(r.max, num), count: r.count + 1 })
                    }
                  })
                  break
                }
                case "deleteDevice":
                  yield* accountEvent(account, "DeviceDeleted", { dashId: o.dash, deviceId: o.device })
                  drop((k) => k.startsWith(`${account}|${o.dash}|${o.device}|`))
                  break
                case "deleteDashboard":
                  yield* accountEvent(account, "DashboardDeleted", { dashId: o.dash })
                  drop((k) => k.startsWith(`${account}|${o.dash}|`))
                  break
                case "deleteGraph": {
                  yield* accountEvent(account, "GraphDataDeleted", { dashId: o.dash, widgetId: 1, pins: o.pins })
                  const keys = new Set(o.pins.map(([v, t, p]) => keyOf(account, o.dash, v, t, p)))
                  drop((k) => keys.has(k))
                  break
                }
              }
            }
            yield* catchUp
            const live = yield* snapshot
            const mine = (rows: ReadonlyArray<{ key: string }>) => rows.filter((r) => accounts.some((a) => r.key.startsWith(`${a}|`)))
            expect(mine(live.series.map((key) => ({ key }))).map((r) => r.key)).toEqual([...model.series].sort())
            expect(mine(live.raw)).toEqual(byJson(model.raw))
            for (const g of ["minute", "hour", "day"] as const) expect(mine(live[g])).toEqual(byJson([...model.rollups[g].values()]))

            // Small batches in the rebuild too, so that it also continues rows it wrote itself.
            const rebuilt = yield* PinHistory.rebuild({ retention: forever, chunk: rebuildChunk, rawBatch: rebuildChunk, rollupBatch: rebuildChunk * 2 })
            expect(rebuilt.events).toBeGreaterThanOrEqual(ops.length)
            expect(yield* snapshot).toEqual(live)
          })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              fc.array(fc.record({ account: fc.integer({ min: 0, max: 1 }), op }), { minLength: 5, maxLength: 40 }),
              fc.array(fc.integer({ min: 1, max: 39 }), { maxLength: 3 }),
              fc.integer({ min: 1, max: 40 }),
              fc.integer({ min: 1, max: 40 }),
              (ops, cuts, batchSize, rebuildChunk) =>
                Effect.runPromise(scenario(ops, cuts, batchSize, rebuildChunk).pipe(Effect.scoped, Effect.provideContext(context)))
            ),
            // No shrinking: every run adds to the log that each rebuild replays.
            { numRuns: 30, endOnFailure: true }
          )
        )
      }), 240_000)

    if (backend.name === "postgres") {
      it.live("a rebuild while the server's subscriber is inside a batch: the batch commits first, no deadlock, nothing twice", () =>
        Effect.gen(function*() {
          const storage = yield* backend.storage
          yield* Effect.gen(function*() {
            const sql = yield* SqlClient
            const account = accountStream("busy@example.com", "Blynk")
            // A write is settled once every transaction that began before it has ended, in the
            // whole cluster (test files running at once included): nothing announces it, so it is
            // polled for.
            const settled = (from: Subscription.Checkpoint) =>
              Subscription.readSettled(from, 100).pipe(
                Effect.flatMap((events) => (events.length > 0 ? Effect.succeed(events) : Effect.fail("not yet" as const))),
                Effect.retry(Schedule.spaced("20 millis")),
                Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => Effect.die(new Error("the write never settled")) })
              )
            yield* write(account, 1, 0, base, [["v", 1, "1"]])
            // The subscriber has a checkpoint (its first batch), then takes the next write.
            const first = yield* settled(Subscription.origin)
            yield* sql.withTransaction(Effect.andThen(
              PinHistory.handle(forever)(first),
              Subscription.saveCheckpoint(PinHistory.name, Subscription.origin, first.at(-1)!)
            ))
            yield* write(account, 1, 0, base + MIN, [["v", 1, "2"]])
            const batch = yield* settled(first.at(-1)!)
            // Its batch is written (its tables locked) when the rebuild starts; it saves its
            // checkpoint only after the rebuild waits for those tables.
            const inside = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            const subscriber = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
              yield* PinHistory.handle(forever)(batch)
              yield* Deferred.succeed(inside, undefined)
              yield* Deferred.await(release)
              yield* Subscription.saveCheckpoint(PinHistory.name, first.at(-1)!, batch.at(-1)!)
            })))
            yield* Effect.addFinalizer(() => Deferred.succeed(release, undefined))
            yield* Deferred.await(inside)
            const rebuilding = yield* Effect.forkChild(PinHistory.rebuild({ retention: forever }))
            // No event says the rebuild waits on a lock: its waiting lock is polled for.
            yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = 'pl_history_series'::regclass`.pipe(
              Effect.flatMap((rows) => (Number(rows[0]?.n ?? 0) > 0 ? Effect.void : Effect.fail("not yet" as const))),
              Effect.retry(Schedule.spaced("20 millis")),
              Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => Effect.die(new Error("the rebuild never waited for the batch")) })
            )
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(subscriber)
            const rebuilt = yield* Fiber.join(rebuilding)
            expect(rebuilt).toMatchObject({ events: 2, writes: 2 })
            expect(yield* Subscription.loadCheckpoint(PinHistory.name)).toEqual({ txId: batch.at(-1)!.txId, position: batch.at(-1)!.position })
            const snap = yield* snapshot
            expect(snap.raw.map((r) => r.value)).toEqual(["1", "2"])
            expect(snap.hour.map((r) => [r.total, r.count])).toEqual([[3, 2]])
          }).pipe(Effect.provide(storeLayer(storage)), Effect.scoped)
        }))
    }
  })
}
