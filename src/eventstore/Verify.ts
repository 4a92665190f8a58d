import { Data, Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { mask } from "./Audit.ts"
import { inlineProjections, rebuild } from "./projections/Inline.ts"
import { lockOutAppends } from "./Replay.ts"
import type { InlineProjection } from "./SqlEventStore.ts"

/**
 * `pinledger verify`: do the inline projections say what the log says? In one transaction, with
 * appends locked out (Replay.ts: the live tables then match the log as of one moment), each live
 * table is copied to a temporary table, the projections are rebuilt from the log in place, the
 * rebuilt rows are compared with the copies, and the transaction is rolled back: nothing changes,
 * whatever the outcome. (Rebuilding in place rather than into look-alike tables: the projections'
 * SQL names their tables, and a temporary table shadowing one by name is not something cached
 * prepared statements reliably notice.) Appends wait meanwhile, as during `replay`.
 */

export interface RowDifference {
  readonly kind: "missing" | "extra" | "different"
  /** The row as the log rebuilds it (absent for `extra`), secrets masked. */
  readonly rebuilt?: unknown
  /** The row in the live table (absent for `missing`), secrets masked. */
  readonly live?: unknown
}

export interface TableReport {
  readonly projection: string
  readonly table: string
  /** Rows the log makes that the live table lacks. */
  readonly missing: number
  /** Rows in the live table the log does not make. */
  readonly extra: number
  /** Rows with the same key and other values. */
  readonly different: number
  /** Up to `examples` of them. */
  readonly examples: ReadonlyArray<RowDifference>
}

export interface VerifyReport {
  readonly tables: ReadonlyArray<TableReport>
  /** All missing, extra and different rows. */
  readonly differences: number
}

class Rollback extends Data.TaggedError("VerifyRollback")<{ readonly report: VerifyReport }> {}

const quote = (name: string) => `"${name.replace(/"/g, "\"\"")}"`

const parsed = (v: unknown): unknown => (typeof v === "string" ? JSON.parse(v) : v)

const primaryKey = (table: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ name: string }>`
      SELECT a.attname AS name FROM pg_index i
      JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
      WHERE i.indrelid = ${table}::regclass AND i.indisprimary
      ORDER BY array_position(i.indkey::int2[], a.attnum)`
    return rows.map((r) => r.name)
  })

/** The differences between `table` (rebuilt) and `copy` (the live rows). */
const compare = (projection: string, table: string, copy: string, examples: number) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const key = yield* primaryKey(table)
    const t = quote(table)
    const c = quote(copy)
    // With a key: rows matched by it, so a changed value is one "different" row. Without: as
    // multisets of whole rows.
    const diff = key.length > 0
      ? `SELECT CASE WHEN l.${quote(key[0]!)} IS NULL THEN 'missing' WHEN r.${quote(key[0]!)} IS NULL THEN 'extra' ELSE 'different' END AS kind,
           CASE WHEN r.${quote(key[0]!)} IS NULL THEN NULL ELSE to_jsonb(r) END AS rebuilt,
           CASE WHEN l.${quote(key[0]!)} IS NULL THEN NULL ELSE to_jsonb(l) END AS live
         FROM ${t} r FULL JOIN ${c} l ON ${key.map((k) => `r.${quote(k)} = l.${quote(k)}`).join(" AND ")}
         WHERE l.${quote(key[0]!)} IS NULL OR r.${quote(key[0]!)} IS NULL OR to_jsonb(r) <> to_jsonb(l)`
      : `SELECT 'missing' AS kind, to_jsonb(x) AS rebuilt, NULL::jsonb AS live FROM (SELECT * FROM ${t} EXCEPT ALL SELECT * FROM ${c}) x
         UNION ALL
         SELECT 'extra' AS kind, NULL::jsonb AS rebuilt, to_jsonb(x) AS live FROM (SELECT * FROM ${c} EXCEPT ALL SELECT * FROM ${t}) x`
    const counts = yield* sql.unsafe<{ kind: string; n: unknown }>(`SELECT kind, count(*) AS n FROM (${diff}) d GROUP BY kind`)
    const count = (kind: string) => Number(counts.find((r) => r.kind === kind)?.n ?? 0)
    const sample = yield* sql.unsafe<{ kind: RowDifference["kind"]; rebuilt: unknown; live: unknown }>(
      `SELECT kind, rebuilt, live FROM (${diff}) d ORDER BY kind LIMIT ${examples}`
    )
    return {
      projection,
      table,
      missing: count("missing"),
      extra: count("extra"),
      different: count("different"),
      examples: sample.map((r): RowDifference => ({
        kind: r.kind,
        ...(r.rebuilt === null ? {} : { rebuilt: mask(parsed(r.rebuilt)) }),
        ...(r.live === null ? {} : { live: mask(parsed(r.live)) })
      }))
    } satisfies TableReport
  })

/** Compares every inline projection with what the log rebuilds; changes nothing. */
export const verify = (options: { readonly projections?: ReadonlyArray<InlineProjection>; readonly examples?: number } = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const projections = options.projections ?? inlineProjections
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* lockOutAppends
      const copies: Array<{ projection: string; table: string; copy: string }> = []
      for (const projection of projections) {
        for (const table of projection.tables) {
          const copy = `pl_verify_live_${copies.length}`
          yield* sql.unsafe(`CREATE TEMPORARY TABLE ${quote(copy)} ON COMMIT DROP AS SELECT * FROM ${quote(table)}`)
          copies.push({ projection: projection.name, table, copy })
        }
      }
      for (const projection of projections) yield* rebuild(projection)
      const tables: Array<TableReport> = []
      for (const { copy, projection, table } of copies) tables.push(yield* compare(projection, table, copy, options.examples ?? 5))
      const differences = tables.reduce((n, t) => n + t.missing + t.extra + t.different, 0)
      // Whatever it found, nothing of the rebuild may stay.
      return yield* new Rollback({ report: { tables, differences } })
    })).pipe(Effect.catchTag("VerifyRollback", (rollback) => Effect.succeed(rollback.report)))
  }).pipe(Effect.withSpan("Verify.verify"))

const clip = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`)

/** The report as lines of text. */
export const formatReport = (report: VerifyReport): ReadonlyArray<string> => {
  const lines: Array<string> = []
  for (const t of report.tables) {
    const bad = t.missing + t.extra + t.different
    lines.push(
      bad === 0
        ? `${t.projection}: ${t.table}: ok`
        : `${t.projection}: ${t.table}: ${t.missing} missing, ${t.extra} extra, ${t.different} different`
    )
    for (const e of t.examples) {
      const show = (v: unknown) => clip(JSON.stringify(v), 300)
      lines.push(
        e.kind === "missing"
          ? `  missing (the log has it, the table does not): ${show(e.rebuilt)}`
          : e.kind === "extra"
          ? `  extra (in the table, not from the log): ${show(e.live)}`
          : `  different: live ${show(e.live)}, log ${show(e.rebuilt)}`
      )
    }
  }
  lines.push(report.differences === 0 ? "verify: every projection matches the log" : `verify: ${report.differences} difference(s)`)
  return lines
}
