/**
 * PostgreSQL array literals (`{1,2,NULL}`, `{"a","b\"c"}`), bound as one text parameter and cast in
 * the statement (`${ints(xs)}::int[]`): a bulk insert through `unnest` then costs one parameter per
 * column, on PostgreSQL and PGlite alike, and the database parses arrays far faster than JSON.
 */

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
