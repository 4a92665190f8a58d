import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { DashboardDeleted, DeviceDeleted } from "../../domain/Account.ts"
import { PinsWritten, type PinWrite, pinKey, PropertySet, propertyKey, propertyValues } from "../../domain/Pins.ts"
import type { InlineEvent, InlineProjection } from "../SqlEventStore.ts"
import { decoder } from "./Decode.ts"

const decodeWrites = decoder(PinsWritten)
const isWrite = (w: unknown): w is PinWrite =>
  Array.isArray(w) && w.length >= 3 && (w[0] === "v" || w[0] === "d" || w[0] === "a") && Number.isInteger(w[1]) &&
  w.every((x, i) => i < 2 || typeof x === "string")

/**
 * The many-writes event read without the schema machinery (the hot path: every batch of pin
 * writes passes here), falling back to the schema when the quick look is not sure.
 */
const pinsWrittenOf = (data: unknown): { dashId: number; deviceId: number; writes: ReadonlyArray<PinWrite> } | undefined => {
  if (typeof data === "object" && data !== null) {
    const d = data as { dashId?: unknown; deviceId?: unknown; writes?: unknown }
    if (Number.isInteger(d.dashId) && Number.isInteger(d.deviceId) && Array.isArray(d.writes) && d.writes.every(isWrite)) {
      return { dashId: d.dashId as number, deviceId: d.deviceId as number, writes: d.writes }
    }
  }
  return decodeWrites(data)
}
const decodeProperty = decoder(PropertySet)
const decodeDeviceDeleted = decoder(DeviceDeleted)
const decodeDashboardDeleted = decoder(DashboardDeleted)

/** `device-<digest>-<dash>-<device>` → `user-<digest>` (see domain/Streams.ts). */
const accountOf = (deviceStream: string) => `user-${deviceStream.slice("device-".length).split("-")[0]}`

/**
 * Folds events into the last value of each key, written with one upsert per `flush` (the last
 * write of a key winning); a deletion first writes what came before it.
 */
const folder = Effect.map(SqlClient, (sql) => {
  /** account → key → its last value: `values` from `from` on (a write is kept whole, not copied). */
  const latest = new Map<string, Map<string, { values: ReadonlyArray<unknown>; from: number; position: number }>>()
  let size = 0
  const flush = Effect.suspend((): Effect.Effect<unknown, SqlError> => {
    if (size === 0) return Effect.void
    const rows: Array<[string, string, ReadonlyArray<unknown>, number]> = []
    for (const [account, keys] of latest) {
      for (const [key, v] of keys) rows.push([account, key, v.from === 0 ? v.values : v.values.slice(v.from), v.position])
    }
    latest.clear()
    size = 0
    return sql`INSERT INTO pl_pin_state (account_stream, pin_key, vals, position)
      SELECT r->>0, r->>1, r->2, (r->>3)::bigint FROM jsonb_array_elements(${JSON.stringify(rows)}::jsonb) AS t(r)
      ON CONFLICT (account_stream, pin_key) DO UPDATE SET vals = EXCLUDED.vals, position = EXCLUDED.position`
  })
  const keysOf = (account: string) => {
    let keys = latest.get(account)
    if (keys === undefined) latest.set(account, (keys = new Map()))
    return keys
  }
  const put = (keys: Map<string, { values: ReadonlyArray<unknown>; from: number; position: number }>, key: string, values: ReadonlyArray<unknown>, from: number, position: number) => {
    const v = keys.get(key)
    if (v === undefined) {
      keys.set(key, { values, from, position })
      size++
    } else {
      v.values = values
      v.from = from
      v.position = position
    }
  }
  const feed = (events: ReadonlyArray<InlineEvent>) =>
    Effect.gen(function*() {
      for (const e of events) {
        switch (e.type) {
          case "PinsWritten": {
            const w = pinsWrittenOf(e.data)
            if (w === undefined) break
            const keys = keysOf(accountOf(e.streamId))
            for (const write of w.writes) put(keys, pinKey(w.dashId, w.deviceId, write[0], write[1]), write, 2, e.position)
            break
          }
          case "PropertySet": {
            const p = decodeProperty(e.data)
            if (p === undefined) break
            put(keysOf(accountOf(e.streamId)), propertyKey(p.dashId, p.deviceId, p.pin, p.property), propertyValues(p), 0, e.position)
            break
          }
          case "DeviceDeleted":
          case "DashboardDeleted": {
            const d: DeviceDeleted | DashboardDeleted | undefined = e.type === "DeviceDeleted"
              ? decodeDeviceDeleted(e.data)
              : decodeDashboardDeleted(e.data)
            if (d === undefined) break
            // Writes before the deletion go in first, so the deletion removes them too.
            yield* flush
            const prefix = "deviceId" in d ? `${d.dashId}-${d.deviceId}-` : `${d.dashId}-`
            yield* sql`DELETE FROM pl_pin_state WHERE account_stream = ${e.streamId}
              AND left(pin_key, ${prefix.length}) = ${prefix}`
            break
          }
        }
      }
      // Bounds what a rebuild holds (a key per pin): past it, written as it goes.
      if (size > 100_000) yield* flush
    })
  return { feed, end: Effect.asVoid(flush) }
})

/**
 * The last value of every pin (and widget property) of every account, written in the append's
 * transaction: a user actor starts from it instead of replaying the pin writes, and it holds
 * exactly what was acknowledged. One upsert per batch, the last write of a key winning; a
 * rebuild folds the whole log first and writes each key once.
 */
export const PinState: InlineProjection = {
  name: "pin-state",
  types: new Set(["PinsWritten", "PropertySet", "DeviceDeleted", "DashboardDeleted"]),
  tables: ["pl_pin_state"],
  apply: (events) =>
    Effect.gen(function*() {
      const f = yield* folder
      yield* f.feed(events)
      yield* f.end
    }),
  rebuilder: folder
}

/** Every stored pin value and property of an account: key → values. */
export const loadPinState = (accountStream: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ pin_key: string; vals: unknown }>`
      SELECT pin_key, vals FROM pl_pin_state WHERE account_stream = ${accountStream}`
    const pins = new Map<string, ReadonlyArray<string>>()
    for (const row of rows) {
      const vals = typeof row.vals === "string" ? JSON.parse(row.vals) : row.vals
      if (Array.isArray(vals)) pins.set(row.pin_key, vals.map(String))
    }
    return pins
  })
