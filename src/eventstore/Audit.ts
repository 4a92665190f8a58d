import { Data, Effect } from "effect"
import type { EventRow } from "./SqlEventStore.ts"
import { SqlClient } from "effect/sql/SqlClient"
import type { Fragment } from "effect/sql/Statement"
import { normalizeEmail } from "../domain/Account.ts"
import { accountStream, deviceStream, outboxStream } from "../domain/Streams.ts"

/**
 * Audit queries over the log itself (DESIGN.md: "who did what, when, from where"): by account,
 * device, event type, time range and remote address, a page at a time in position order. The
 * CLI (`pinledger audit`) prints the pages; the owner HTTP API can call `queryAudit` as it is.
 *
 * Speed on a big log. Every page is `ORDER BY position LIMIT n+1` and is meant to be answered by
 * walking one index in position order and stopping after n+1 matches, never by collecting every
 * match and sorting. So each way of selecting events has an index keyed by (selector, position)
 * (migration "audit indexes" in Migrations.ts), and a query that combines alternatives (an
 * account's own streams OR the throttle events naming its e-mail; an address with or without a
 * port) is a UNION ALL of one such ordered scan per alternative, each with its own LIMIT, merged:
 *
 * - account: `split_part(stream_id, '-', 2)` is the account digest in every stream of an
 *   account (`user-D`, `device-D-<dash>-<dev>`, `access-D`, `outbox-D`, domain/Streams.ts), so one
 *   index walk yields all of them in log order. (The stream-version index cannot: it is ordered by
 *   stream, and a LIKE on the device streams' prefix is not indexable under most collations.)
 * - failed logins naming the e-mail: a partial index on `lower(data->>'identity')` for
 *   `LoginFailed` only (a tiny fraction of the log).
 * - remote address: an index on the host part, `regexp_replace(remoteAddress, ':[0-9]+$', '')`
 *   (sessions record `host:port`, the HTTP API a bare host). A bare IPv6 address such as `::1`
 *   would lose its last group to that expression, so an address whose own "host part" differs
 *   from it also gets a second walk: the same index at that key, keeping exact matches.
 * - event type: a partial index on (event_type, position) without `PinsWritten`, by far the
 *   most frequent type, so that asking for a rare type (ShareRevoked) over a log of millions of
 *   pin writes walks only the rare ones; the query repeats the partial predicate literally so the
 *   planner can use it.
 * - time range: `recorded_at` follows position closely in an append-only table, which is what a
 *   BRIN index (a few pages for millions of rows, next to nothing per append) is made for.
 * Each index costs every append a little; pin writes (most of the log) pay for the account and
 * address indexes and the BRIN summary only.
 */

/** What to look for; every given field narrows the result. */
export interface AuditQuery {
  /** The account's streams (user-, device-*, access-, outbox-) and the failed logins naming the e-mail. */
  readonly email?: string | undefined
  readonly appName?: string | undefined
  /** With `email`: one device's stream, and its account's events about that device. */
  readonly dashId?: number | undefined
  readonly deviceId?: number | undefined
  readonly types?: ReadonlyArray<string> | undefined
  /** recorded_at >= since */
  readonly since?: Date | undefined
  /** recorded_at < until */
  readonly until?: Date | undefined
  /** The host part of metadata.remoteAddress (`10.0.0.7` matches `10.0.0.7:53211`), or a whole `host:port`. */
  readonly address?: string | undefined
  /** Page size: 1 to 1000 (50 by default). */
  readonly limit?: number | undefined
  /** Only events after this position (the previous page's `next`). */
  readonly after?: number | undefined
}

/** One event as an audit shows it: secrets in its data are masked. */
export interface AuditEntry {
  readonly position: number
  readonly recordedAt: Date
  readonly stream: string
  readonly version: number
  readonly type: string
  readonly schemaVersion: number
  readonly actor: string | undefined
  readonly session: string | undefined
  readonly remoteAddress: string | undefined
  /** The time the writer gave (metadata.time). */
  readonly time: string | undefined
  readonly data: unknown
  readonly summary: string
}

export interface AuditPage {
  readonly entries: ReadonlyArray<AuditEntry>
  /** The cursor for the next page (`after`), when there may be more. */
  readonly next: number | undefined
}

export class AuditQueryInvalid extends Data.TaggedError("AuditQueryInvalid")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

export const defaultLimit = 50
export const maxLimit = 1000

// ---------------------------------------------------------------------------------------------
// Masking and summaries
// ---------------------------------------------------------------------------------------------

/**
 * Keys whose values never leave the log through an audit: device and share tokens, clone codes,
 * password hashes, digests of mailed tokens, and whatever widget JSON calls a token, secret or
 * password (push tokens, the Twitter widget's credentials).
 */
const SECRET_KEY = /token|secret|passw|hash|digest|auth|apikey|api_key|credential|^code$/i

export const MASK = "***"

/** The value with every secret (by key, at any depth) replaced by `***`. */
export const mask = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(mask)
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(value)) out[k] = SECRET_KEY.test(k) ? MASK : mask(v)
    return out
  }
  return value
}

const clip = (s: string, n: number) => (s.length <= n ? s : `${s.slice(0, n - 1)}…`)

const scalar = (v: unknown): string => {
  if (typeof v === "string") {
    const c = clip(v, 40)
    return /^[^\s"=]+$/.test(c) ? c : JSON.stringify(c)
  }
  if (Array.isArray(v)) return `[${v.length}]`
  if (v !== null && typeof v === "object") return "{…}"
  return String(v)
}

/**
 * A one-line summary of an event's (already masked) data: its top-level fields as key=value,
 * nested JSON (dashboard layouts, widgets) only as its size; pin writes as `v1=23`.
 */
export const summarize = (type: string, data: unknown): string => {
  if (data === null || typeof data !== "object" || Array.isArray(data)) return data === undefined ? "" : scalar(data)
  const parts: Array<string> = []
  for (const [k, v] of Object.entries(data)) {
    if (k === "_tag") continue
    if (type === "PinsWritten" && k === "writes" && Array.isArray(v)) {
      const shown = v.slice(0, 5).map((w) =>
        Array.isArray(w) ? `${String(w[0])}${String(w[1])}=${w.slice(2).map((x) => clip(String(x), 20)).join(",")}` : "?"
      )
      parts.push(`writes=${v.length}${shown.length > 0 ? ` ${shown.join(" ")}` : ""}${v.length > 5 ? " …" : ""}`)
      continue
    }
    parts.push(`${k}=${scalar(v)}`)
  }
  return clip(parts.join(" "), 300)
}

/** An entry as one line of text: position, time, stream, type, actor, remote address, summary. */
export const formatLine = (e: AuditEntry): string =>
  [
    e.position,
    e.recordedAt.toISOString(),
    e.stream,
    e.type,
    `actor=${e.actor ?? "-"}`,
    `from=${e.remoteAddress ?? "-"}`,
    e.summary
  ].join(" ").trimEnd()

/** An entry as a JSON object (one line of `--json`). */
export const toJson = (e: AuditEntry) => ({
  position: e.position,
  recordedAt: e.recordedAt.toISOString(),
  stream: e.stream,
  version: e.version,
  type: e.type,
  schemaVersion: e.schemaVersion,
  actor: e.actor ?? null,
  session: e.session ?? null,
  remoteAddress: e.remoteAddress ?? null,
  time: e.time ?? null,
  data: e.data
})

// ---------------------------------------------------------------------------------------------
// The query
// ---------------------------------------------------------------------------------------------

/** The host part as the address index computes it; must stay the expression of migration 7. */
export const hostPart = (remote: string) => remote.replace(/:[0-9]+$/, "")
const HOST_EXPR = "regexp_replace(metadata->>'remoteAddress', ':[0-9]+$', '')"
const ACCOUNT_EXPR = "split_part(stream_id, '-', 2)"
const IDENTITY_EXPR = "lower(data->>'identity')"

const isoDate = (d: Date | undefined) => d === undefined || !Number.isNaN(d.getTime())

const validate = (q: AuditQuery): AuditQueryInvalid | undefined => {
  const device = q.dashId !== undefined || q.deviceId !== undefined
  if (device && (q.dashId === undefined || q.deviceId === undefined)) {
    return new AuditQueryInvalid({ reason: "a device is named by both dash and device" })
  }
  if (device && q.email === undefined) {
    return new AuditQueryInvalid({ reason: "device ids are per account: give the account's email with dash and device" })
  }
  if (q.email !== undefined && normalizeEmail(q.email) === "") return new AuditQueryInvalid({ reason: "email is empty" })
  if (q.limit !== undefined && (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > maxLimit)) {
    return new AuditQueryInvalid({ reason: `limit must be between 1 and ${maxLimit}` })
  }
  if (q.after !== undefined && (!Number.isInteger(q.after) || q.after < 0)) {
    return new AuditQueryInvalid({ reason: "after must be a position (a whole number, 0 or more)" })
  }
  if (!isoDate(q.since) || !isoDate(q.until)) return new AuditQueryInvalid({ reason: "since and until must be ISO dates" })
  if (q.since !== undefined && q.until !== undefined && q.since.getTime() >= q.until.getTime()) {
    return new AuditQueryInvalid({ reason: "since must be before until" })
  }
  if (q.address !== undefined && q.address.trim() === "") return new AuditQueryInvalid({ reason: "address is empty" })
  return undefined
}

/** The event table's row as every read selects it, without the transaction id (the audit does not page by it). */
type Row = Omit<EventRow, "tx_text">

const parsed = (v: unknown): unknown => (typeof v === "string" ? JSON.parse(v) : v)

const toEntry = (row: Row): AuditEntry => {
  const meta = (parsed(row.metadata) ?? {}) as Record<string, unknown>
  const text = (k: string) => (typeof meta[k] === "string" ? (meta[k] as string) : undefined)
  const data = mask(parsed(row.data))
  return {
    position: Number(row.position),
    recordedAt: row.recorded_at instanceof Date ? row.recorded_at : new Date(String(row.recorded_at)),
    stream: row.stream_id,
    version: Number(row.stream_version),
    type: row.event_type,
    schemaVersion: Number(row.schema_version),
    actor: text("actor"),
    session: text("session"),
    remoteAddress: text("remoteAddress"),
    time: text("time"),
    data,
    summary: summarize(row.event_type, data)
  }
}

/** The statement that reads one page (limit + 1 rows, to tell whether there is a next page). */
const statementFor = (query: AuditQuery) =>
  Effect.gen(function*() {
    const invalid = validate(query)
    if (invalid !== undefined) return yield* invalid
    const sql = yield* SqlClient
    const limit = query.limit ?? defaultLimit

    // Alternatives of one selector are OR-ed (one ordered index walk each); selectors are AND-ed.
    const groups: Array<ReadonlyArray<ReadonlyArray<Fragment>>> = []
    if (query.email !== undefined) {
      const email = normalizeEmail(query.email)
      const account = accountStream(email, query.appName ?? "Blynk")
      const digest = account.slice("user-".length)
      if (query.dashId !== undefined && query.deviceId !== undefined) {
        groups.push([
          [sql`stream_id = ${deviceStream(account, query.dashId, query.deviceId)}`],
          // The account's own events about the device (created, renamed, reprovisioned, deleted,
          // its dashboard deleted) and the notifications it asked for.
          [
            sql`stream_id IN (${account}, ${outboxStream(account)})`,
            sql`(data->>'dashId') = ${String(query.dashId)}`,
            sql`((data->>'deviceId') = ${String(query.deviceId)} OR event_type = 'DashboardDeleted')`
          ]
        ])
      } else {
        groups.push([
          [
            sql`${sql.literal(ACCOUNT_EXPR)} = ${digest}`,
            sql`split_part(stream_id, '-', 1) IN ('user', 'device', 'access', 'outbox')`
          ],
          // Throttle streams are per address; the failures name what was tried. The app name is
          // not in them: failed logins with this e-mail count for every app.
          [
            sql`event_type = 'LoginFailed'`,
            sql`${sql.literal(IDENTITY_EXPR)} IN (${email}, ${`share:${email}`})`
          ]
        ])
      }
    }
    if (query.address !== undefined) {
      const address = query.address.trim()
      const host = hostPart(address)
      const alternatives: Array<ReadonlyArray<Fragment>> = [[
        sql`${sql.literal(HOST_EXPR)} = ${address}`,
        sql`(metadata->>'remoteAddress') IS NOT NULL`
      ]]
      if (host !== address) {
        alternatives.push([
          sql`${sql.literal(HOST_EXPR)} = ${host}`,
          sql`(metadata->>'remoteAddress') IS NOT NULL`,
          sql`(metadata->>'remoteAddress') = ${address}`
        ])
      }
      groups.push(alternatives)
    }

    const common: Array<Fragment> = []
    const types = [...new Set((query.types ?? []).map((t) => t.trim()).filter((t) => t !== ""))]
    if (types.length > 0) {
      common.push(sql`event_type IN ${sql.in(types)}`)
      if (!types.includes("PinsWritten")) common.push(sql`event_type <> 'PinsWritten'`)
    }
    if (query.since !== undefined) common.push(sql`recorded_at >= ${query.since}`)
    if (query.until !== undefined) common.push(sql`recorded_at < ${query.until}`)
    if (query.after !== undefined) common.push(sql`position > ${query.after}`)

    // The cross product of the groups' alternatives: each branch one AND of conditions.
    let branches: Array<ReadonlyArray<Fragment>> = [common]
    for (const group of groups) branches = branches.flatMap((b) => group.map((alt) => [...alt, ...b]))

    const columns = sql.literal("position, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at")
    const where = (conditions: ReadonlyArray<Fragment>) => (conditions.length === 0 ? sql.literal("TRUE") : sql.and(conditions))
    const branch = (conditions: ReadonlyArray<Fragment>) =>
      sql<Row>`SELECT ${columns} FROM pl_events WHERE ${where(conditions)} ORDER BY position LIMIT ${limit + 1}`
    return branches.length === 1
      ? branch(branches[0]!)
      : sql<Row>`SELECT * FROM (${sql.join(" UNION ALL ", false)(branches.map((b) => sql`(${branch(b)})`))}) AS matches
          ORDER BY position LIMIT ${limit + 1}`
  })

/** One page of the events matching `query`, oldest first. */
export const queryAudit = (query: AuditQuery) =>
  Effect.gen(function*() {
    const limit = query.limit ?? defaultLimit
    const rows = yield* Effect.flatten(statementFor(query))
    const entries = rows.slice(0, limit).map(toEntry)
    return { entries, next: rows.length > limit ? entries.at(-1)?.position : undefined } satisfies AuditPage
  }).pipe(Effect.withSpan("Audit.query"))

/** The database's plan for a query (EXPLAIN, options such as `ANALYZE, BUFFERS` allowed): which indexes it walks. */
export const explainAudit = (query: AuditQuery, options = "") =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const [text, params] = (yield* statementFor(query)).compile()
    const rows = yield* sql.unsafe<Record<string, unknown>>(`EXPLAIN ${options === "" ? "" : `(${options}) `}${text}`, params)
    return rows.map((r) => String(Object.values(r)[0]))
  })
