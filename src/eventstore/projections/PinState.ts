import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"
import { DashboardDeleted, DeviceDeleted } from "../../domain/Account.ts"
import { pinCode, PinsWritten, type PinWrite, pinKey, PropertySet, propertyKey, propertyValues } from "../../domain/Pins.ts"
import { accountOfDevice } from "../../domain/Streams.ts"
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


/**
 * What one event does to the projection: each value it sets goes to `put` (its key, the values
 * as `values` from `from` on, its place in the event); a device's or a dashboard's deletion comes
 * back as the prefix of the keys it removes. Events of other types, or unreadable, do nothing.
 */
const visit = (
  e: { readonly streamId: string; readonly type: string; readonly data: unknown },
  put: (account: string, key: string, values: ReadonlyArray<unknown>, from: number, index: number) => void
): string | undefined => {
  switch (e.type) {
    case "PinsWritten": {
      const w = pinsWrittenOf(e.data)
      if (w === undefined) return undefined
      const account = accountOfDevice(e.streamId)
      const writes = w.writes
      for (let i = 0; i < writes.length; i++) {
        const write = writes[i]!
        put(account, pinKey(w.dashId, w.deviceId, write[0], write[1]), write, 2, i)
      }
      return undefined
    }
    case "PropertySet": {
      const p = decodeProperty(e.data)
      if (p !== undefined) put(accountOfDevice(e.streamId), propertyKey(p.dashId, p.deviceId, p.pin, p.property), propertyValues(p), 0, 0)
      return undefined
    }
    case "DeviceDeleted":
    case "DashboardDeleted": {
      const d: DeviceDeleted | DashboardDeleted | undefined = e.type === "DeviceDeleted"
        ? decodeDeviceDeleted(e.data)
        : decodeDashboardDeleted(e.data)
      if (d === undefined) return undefined
      return "deviceId" in d ? `${d.dashId}-${d.deviceId}-` : `${d.dashId}-`
    }
    default:
      return undefined
  }
}

/**
 * Folds a batch of events, in log order, into the last value of each key, written with one upsert
 * (the last write of a key winning); a deletion first writes what came before it.
 */
const applyBatch = (events: ReadonlyArray<InlineEvent>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const latest = new Map<string, [string, string, ReadonlyArray<unknown>, number]>()
    const flush = Effect.suspend((): Effect.Effect<unknown, SqlError> => {
      if (latest.size === 0) return Effect.void
      const rows = JSON.stringify([...latest.values()])
      latest.clear()
      return upsert(sql, rows)
    })
    for (const e of events) {
      const prefix = visit(e, (account, key, values, from) =>
        latest.set(`${account}\u0000${key}`, [account, key, values.slice(from), e.position]))
      if (prefix === undefined) continue
      // Writes before the deletion go in first, so the deletion removes them too.
      yield* flush
      yield* sql`DELETE FROM pl_pin_state WHERE account_stream = ${e.streamId}
        AND left(pin_key, ${prefix.length}) = ${prefix}`
    }
    yield* flush
  })

/** Rows as JSON `[account, key, values, position]` arrays, upserted. */
const upsert = (sql: SqlClient, rows: string) =>
  sql`INSERT INTO pl_pin_state (account_stream, pin_key, vals, position)
    SELECT r->>0, r->>1, r->2, (r->>3)::bigint FROM jsonb_array_elements(${rows}::jsonb) AS t(r)
    ON CONFLICT (account_stream, pin_key) DO UPDATE SET vals = EXCLUDED.vals, position = EXCLUDED.position`

/** A write's `pinCode`, or -1 past the pins `PinStateFold` keeps by code. */
const smallCode = (write: PinWrite) => (write[1] >= 0 && write[1] < 1024 ? pinCode(write[0], write[1]) : -1)

/** A device stream's pins in `PinStateFold`: the entries of its account's keys, by `pinCode`. */
interface DevicePins {
  readonly dashId: number
  readonly deviceId: number
  readonly keys: Map<string, Kept>
  readonly byCode: Array<Kept | undefined>
}

/** A key's write, replaced by this one if it is further in the log. */
const keep = (kept: Kept, values: ReadonlyArray<unknown>, from: number, position: number, index: number) => {
  if (position > kept.position || (position === kept.position && index > kept.index)) {
    kept.values = values
    kept.from = from
    kept.position = position
    kept.index = index
  }
}

interface Kept {
  /** The value is `values` from `from` on (a write is kept whole, not copied). */
  values: ReadonlyArray<unknown>
  from: number
  position: number
  /** Its place in its event's writes: of two writes of a key in one event, the later wins. */
  index: number
}

/**
 * What the projection holds, folded from events taken in ANY order: of a key's writes the one
 * furthest in the log (position, then place in the event) wins, and a deletion removes the keys
 * it names whose last write came before it. The same as applying the events in log order (what
 * `apply` does), so a rebuild can take the log as another reader hands it out (the pin history's
 * rebuild, in the subscription's order) and the rest later. Holds a key per pin and property.
 */
export class PinStateFold {
  /** account → key → its last write. */
  readonly #keys = new Map<string, Map<string, Kept>>()
  /** account → the deletions in its stream: key prefix and position. */
  readonly #deletions = new Map<string, Array<{ readonly prefix: string; readonly position: number }>>()
  /** Device stream → its pins' entries of `#keys` by `pinCode` (the quick way for `PinsWritten`). */
  readonly #devices = new Map<string, DevicePins>()

  /** Takes events of the projection's types (others are ignored), in any order, each once. */
  add(events: ReadonlyArray<{ readonly position: number; readonly streamId: string; readonly type: string; readonly data: unknown }>) {
    for (const e of events) {
      if (e.type === "PinsWritten" && this.#addWrites(e.streamId, e.data, e.position)) continue
      const prefix = visit(e, (account, key, values, from, index) => this.#put(this.#keysOf(account), key, values, from, e.position, index))
      if (prefix === undefined) continue
      let deletions = this.#deletions.get(e.streamId)
      if (deletions === undefined) this.#deletions.set(e.streamId, (deletions = []))
      deletions.push({ prefix, position: e.position })
    }
  }

  /**
   * A `PinsWritten` of a device's usual dashboard and device, its writes all plainly valid, with
   * pins a small code covers: its keys found by code, without making a key per write (the bulk of
   * a rebuild's events). False when it is not sure: `visit` decides then.
   */
  #addWrites(streamId: string, data: unknown, position: number): boolean {
    if (typeof data !== "object" || data === null) return false
    const d = data as { dashId?: unknown; deviceId?: unknown; writes?: unknown }
    const writes = d.writes
    if (!Array.isArray(writes) || !Number.isInteger(d.dashId) || !Number.isInteger(d.deviceId)) return false
    for (let i = 0; i < writes.length; i++) if (!isWrite(writes[i]) || smallCode(writes[i]) < 0) return false
    let device = this.#devices.get(streamId)
    if (device === undefined) {
      const account = accountOfDevice(streamId)
      device = { dashId: d.dashId as number, deviceId: d.deviceId as number, keys: this.#keysOf(account), byCode: [] }
      this.#devices.set(streamId, device)
    }
    if (device.dashId !== d.dashId || device.deviceId !== d.deviceId) return false
    for (let i = 0; i < writes.length; i++) {
      const write = writes[i] as PinWrite
      const code = smallCode(write)
      const kept = device.byCode[code]
      if (kept === undefined) {
        const key = pinKey(device.dashId, device.deviceId, write[0], write[1])
        this.#put(device.keys, key, write, 2, position, i)
        device.byCode[code] = device.keys.get(key)!
      } else keep(kept, write, 2, position, i)
    }
    return true
  }

  #keysOf(account: string) {
    let keys = this.#keys.get(account)
    if (keys === undefined) this.#keys.set(account, (keys = new Map()))
    return keys
  }

  #put(keys: Map<string, Kept>, key: string, values: ReadonlyArray<unknown>, from: number, position: number, index: number) {
    const kept = keys.get(key)
    if (kept === undefined) keys.set(key, { values, from, position, index })
    else keep(kept, values, from, position, index)
  }

  /** The table's rows, as `[account, key, values, position]`. */
  *rows(): Generator<[string, string, ReadonlyArray<unknown>, number]> {
    for (const [account, keys] of this.#keys) {
      const deletions = this.#deletions.get(account) ?? []
      for (const [key, v] of keys) {
        if (deletions.some((d) => d.position > v.position && key.startsWith(d.prefix))) continue
        yield [account, key, v.from === 0 ? v.values : v.values.slice(v.from), v.position]
      }
    }
  }

  /** Writes what it holds into the (emptied) table. */
  get write(): Effect.Effect<void, SqlError, SqlClient> {
    const self = this
    return Effect.gen(function*() {
      const sql = yield* SqlClient
      let rows: Array<[string, string, ReadonlyArray<unknown>, number]> = []
      for (const row of self.rows()) {
        rows.push(row)
        if (rows.length === 50_000) {
          yield* upsert(sql, JSON.stringify(rows))
          rows = []
        }
      }
      if (rows.length > 0) yield* upsert(sql, JSON.stringify(rows))
    })
  }
}

const types: ReadonlySet<string> = new Set(["PinsWritten", "PropertySet", "DeviceDeleted", "DashboardDeleted"])

/**
 * The last value of every pin (and widget property) of every account, written in the append's
 * transaction: a user actor starts from it instead of replaying the pin writes, and it holds
 * exactly what was acknowledged. One upsert per batch, the last write of a key winning; a
 * rebuild folds the whole log first (`PinStateFold`) and writes each key once.
 */
export const PinState: InlineProjection = {
  name: "pin-state",
  types,
  tables: ["pl_pin_state"],
  apply: applyBatch,
  rebuilder: Effect.sync(() => {
    const fold = new PinStateFold()
    return { feed: (events) => Effect.sync(() => fold.add(events)), end: fold.write }
  })
}

/**
 * The rebuild's second half when the pin history's rebuild has folded the settled log into
 * `fold` (`pinledger replay`): empties the table, folds the events the history's snapshot did
 * not count as settled (transaction ids from `horizon` on: committed since, or then still
 * running), writes. In the transaction that holds appends back.
 */
export const rebuildRest = (fold: PinStateFold, horizon: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    yield* sql`DELETE FROM pl_pin_state`
    const rows = yield* sql<{ position: unknown; stream_id: string; event_type: string; data: unknown }>`
      SELECT position, stream_id, event_type, data FROM pl_events
      WHERE tx_id >= ${horizon}::xid8 AND event_type IN ${sql.in([...types])}`
    fold.add(rows.map((r) => ({
      position: Number(r.position),
      streamId: r.stream_id,
      type: r.event_type,
      data: typeof r.data === "string" ? JSON.parse(r.data) : r.data
    })))
    yield* fold.write
  })

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
