import { Effect, Result } from "effect"
import * as PgTypes from "@effect/sql-pg/PgTypes"
import { Database } from "./Database.ts"

/**
 * Arrays bound as one parameter each and cast in the statement (`${arrays.numbers(xs)}::int[]`), so
 * a bulk insert through `unnest` costs one parameter per column. Two ways to bind them:
 *
 * - `literal`: PostgreSQL array literals (`{1,2,NULL}`, `{"a","b\"c"}`) as text, which PGlite
 *   takes (and PostgreSQL too);
 * - `binary`: PostgreSQL's binary array format through @effect/sql-pg, which neither side has to
 *   print or parse (a float's shortest text is costly both ways): what a rebuild of millions of
 *   rows spends much of its time on otherwise.
 *
 * `numbers` are bound as float8, exact for integers up to 2^53: the statement casts them to
 * int[] or int8[] where it wants integers, so a value out of a column's range is the database's
 * error, as with a literal. `column` binds a typed array's numbers as the column's own type
 * (checked here: a value out of range is a RangeError before anything is sent); in binary, packed
 * in one loop, which the client writes as it is (`pgTypes`, the PostgreSQL client's codecs).
 */
export interface Arrays {
  readonly numbers: (values: ReadonlyArray<number | null>) => unknown
  readonly texts: (values: ReadonlyArray<string | null>) => unknown
  /**
   * The first `n` of a column of numbers gathered in a typed array, as float8 (NaN as NULL), int4
   * or int8 (whole numbers in range, else a RangeError): read now, so the array can be reused.
   */
  readonly column: (type: ColumnType, values: Float64Array, n: number) => unknown
}

export type ColumnType = "float8" | "int4" | "int8"

/** Numbers (integers or floats; JavaScript's shortest round-trip text, which float8 reads back exactly), null as NULL. */
export const numbers = (values: ReadonlyArray<number | null>): string => {
  let out = "{"
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ","
    const v = values[i]
    out += v === null || v === undefined ? "NULL" : String(v)
  }
  return `${out}}`
}

const quote = (s: string) => `"${s.replace(/[\\"]/g, "\\$&")}"`

/** Strings, each quoted, null as NULL. */
export const texts = (values: ReadonlyArray<string | null>): string => {
  let out = "{"
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += ","
    const v = values[i]
    out += v === null || v === undefined ? "NULL" : quote(v)
  }
  return `${out}}`
}

export const literal: Arrays = {
  numbers,
  texts,
  column: (type, values, n) => {
    let out = "{"
    for (let i = 0; i < n; i++) {
      if (i > 0) out += ","
      const v = values[i]!
      out += Number.isNaN(v) && type === "float8" ? "NULL" : Object.is(v, -0) ? "-0" : String(checked(type, v))
    }
    return `${out}}`
  }
}

const int4Range = 2 ** 31

/** A column's value as its type takes it: a float8 as it is, an integer if it is one in range. */
const checked = (type: ColumnType, v: number) => {
  if (type === "float8") return v
  const limit = type === "int4" ? int4Range : 2 ** 53
  if (!Number.isInteger(v) || v < -limit || v >= limit) throw new RangeError(`${v} is not a value of an ${type} column`)
  return v
}

/**
 * An array already in PostgreSQL's binary format: what `binary.column` binds. The driver's own
 * array codec writes element by element from a JavaScript array; this is one copy of bytes made
 * in a tight loop from a typed array (a bulk insert's columns: millions of values in a rebuild).
 */
class Packed {
  readonly bytes: Uint8Array
  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }
}

const columnOids: Record<ColumnType, { readonly element: number; readonly array: number; readonly size: number }> = {
  float8: { element: PgTypes.OID.float8, array: PgTypes.OID.float8Array, size: 8 },
  int4: { element: PgTypes.OID.int4, array: PgTypes.OID.int4Array, size: 4 },
  int8: { element: PgTypes.OID.int8, array: PgTypes.OID.int8Array, size: 8 }
}

/** One-dimensional array: ndim, has-null flag, element type, length, lower bound; then each element's length and bytes. */
const pack = (type: ColumnType, values: Float64Array, n: number): Packed => {
  const { element, size } = columnOids[type]
  const bytes = new Uint8Array((n === 0 ? 12 : 20) + n * (4 + size))
  const view = new DataView(bytes.buffer)
  let hasNull = 0
  let at = n === 0 ? 12 : 20
  for (let i = 0; i < n; i++) {
    const v = values[i]!
    if (type === "float8") {
      if (Number.isNaN(v)) {
        view.setInt32(at, -1)
        at += 4
        hasNull = 1
        continue
      }
      view.setInt32(at, 8)
      view.setFloat64(at + 4, v)
    } else if (type === "int4") {
      view.setInt32(at, 4)
      view.setInt32(at + 4, checked(type, v))
    } else {
      checked(type, v)
      const high = Math.floor(v / 4294967296)
      view.setInt32(at, 8)
      view.setInt32(at + 4, high)
      view.setUint32(at + 8, v - high * 4294967296)
    }
    at += 4 + size
  }
  view.setInt32(0, n === 0 ? 0 : 1)
  view.setInt32(4, hasNull)
  view.setInt32(8, element)
  if (n > 0) {
    view.setInt32(12, n)
    view.setInt32(16, 1)
  }
  return new Packed(bytes.subarray(0, at))
}

const array = (elementOid: number) => (values: ReadonlyArray<unknown>): unknown => Result.getOrThrow(PgTypes.array(values, elementOid))

export const binary: Arrays = {
  numbers: array(PgTypes.OID.float8),
  texts: array(PgTypes.OID.text),
  column: (type, values, n) => parameter(columnOids[type].array, pack(type, values, n))
}

const parameter = (oid: number, value: unknown): PgTypes.Parameter => ({ [PgTypes.ParameterTypeId]: PgTypes.ParameterTypeId, oid, value })

/**
 * The codecs a PostgreSQL client needs for `binary.column` (PgClient's `types`): the array types'
 * own, except that a `Packed` array is written as the bytes it is.
 */
export const pgTypes = (): PgTypes.Registry => {
  const registry = PgTypes.makeRegistry()
  for (const { array: oid } of Object.values(columnOids)) {
    registry.register<unknown>(oid, {
      encode: (value) => (value instanceof Packed ? Result.succeed(value.bytes) : PgTypes.encode(value, oid)),
      decode: (bytes) => PgTypes.decode(bytes, oid, 1),
      write: (sink, value) => {
        // Anything else as the driver's own codec writes it.
        if (!(value instanceof Packed)) return PgTypes.writeParameter(sink, parameter(oid, value))
        sink.raw(value.bytes)
        return Result.void
      }
    })
  }
  return registry
}

/** The binding the database at hand takes best: binary on PostgreSQL, literals on PGlite (or when unknown). */
export const forDatabase: Effect.Effect<Arrays> = Effect.map(
  Effect.serviceOption(Database),
  (database) => (database._tag === "Some" && database.value.kind === "postgres" ? binary : literal)
)
