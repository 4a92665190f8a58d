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
 * error, as with a literal.
 */
export interface Arrays {
  readonly numbers: (values: ReadonlyArray<number | null>) => unknown
  readonly texts: (values: ReadonlyArray<string | null>) => unknown
}

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

export const literal: Arrays = { numbers, texts }

const array = (elementOid: number) => (values: ReadonlyArray<unknown>): unknown => Result.getOrThrow(PgTypes.array(values, elementOid))

export const binary: Arrays = {
  numbers: array(PgTypes.OID.float8),
  texts: array(PgTypes.OID.text)
}

/** The binding the database at hand takes best: binary on PostgreSQL, literals on PGlite (or when unknown). */
export const forDatabase: Effect.Effect<Arrays> = Effect.map(
  Effect.serviceOption(Database),
  (database) => (database._tag === "Some" && database.value.kind === "postgres" ? binary : literal)
)
