import { Data, Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { isSqlError, type SqlError } from "effect/sql/SqlError"
import { createHash } from "node:crypto"
import { constants, createReadStream, createWriteStream } from "node:fs"
import { access, rename, rm } from "node:fs/promises"
import { pipeline } from "node:stream/promises"
import { createGunzip, createGzip, gzipSync } from "node:zlib"
import { inlineProjections, rebuild } from "./projections/Inline.ts"

/**
 * `pinledger backup FILE` / `pinledger restore FILE`. The log is the backup: everything else is
 * rebuilt from it. The file is gzip'd JSON lines:
 *
 *   {"format":"pinledger-backup","version":1,"count":N,"head":H,"checksum":"sha256:…","createdAt":"…"}
 *   {"position" : 1, "stream" : "user-…", "version" : 1, "type" : "AccountRegistered", "schemaVersion" : 1,
 *    "recordedAt" : "2026-…", "data" : {…}, "metadata" : {…}}      (one line per event, position order)
 *
 * The checksum is the SHA-256 of the event lines exactly as written, each with its newline. The
 * lines are made by PostgreSQL (`json_build_object` over the stored jsonb and timestamptz), and
 * restore hands them back to PostgreSQL unparsed, so data and metadata come back exactly (no
 * round trip through JavaScript numbers) and recorded times keep their microseconds.
 *
 * Both directions stream: a page of events at a time, never the whole log in memory. The header
 * must come first but is known only at the end, so the events are written to a temporary gzip
 * file and the backup is then the header's gzip member followed by that file's bytes (a gzip file
 * may hold several members; gunzip reads them as one stream).
 */

export const FORMAT = "pinledger-backup"
export const FORMAT_VERSION = 1

export interface BackupHeader {
  readonly format: typeof FORMAT
  readonly version: number
  /** Events in the file. */
  readonly count: number
  /** The highest position among them (0 for an empty log). */
  readonly head: number
  /** `sha256:<hex>` of the event lines, each with its newline. */
  readonly checksum: string
  readonly createdAt: string
}

export class BackupFailed extends Data.TaggedError("BackupFailed")<{ readonly reason: string; readonly cause?: unknown }> {
  override get message() {
    return this.reason
  }
}

export class RestoreRefused extends Data.TaggedError("RestoreRefused")<{ readonly reason: string }> {
  override get message() {
    return this.reason
  }
}

const describe = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** A gzip file written line by line, with backpressure; a failed disk fails the next write. */
const gzipWriter = (path: string) => {
  const gzip = createGzip()
  // Owner-only: the log holds password hashes and device tokens.
  const done = pipeline(gzip, createWriteStream(path, { mode: 0o600 }))
  done.catch(() => {}) // observed through `write` and `end`
  return {
    write: (chunk: string) =>
      gzip.write(chunk) ? Promise.resolve() : Promise.race([new Promise<void>((resolve) => gzip.once("drain", resolve)), done]),
    end: () => {
      gzip.end()
      return done
    },
    abort: () => {
      gzip.destroy()
      return done.then(() => {}, () => {})
    }
  }
}

/** Events read per page; halved while pages get large (big dashboards), so memory stays bounded. */
const PAGE = 1000
const PAGE_CHARS = 8 * 1024 * 1024

/**
 * Writes every event of the log to `file`, as of one snapshot (a REPEATABLE READ, read-only
 * transaction: appends committed meanwhile are not in it, and it holds no lock, so a server may
 * keep running on PostgreSQL). The file appears whole or not at all (written aside, then renamed).
 */
export const backup = (file: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const eventsPart = `${file}.${process.pid}.events.tmp`
    const whole = `${file}.${process.pid}.tmp`
    const write = Effect.gen(function*() {
      const writer = gzipWriter(eventsPart)
      const hash = createHash("sha256")
      const written = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY`
        let after = 0
        let count = 0
        let page = PAGE
        for (;;) {
          const rows = yield* sql<{ position: unknown; line: string }>`
            SELECT position, json_build_object(
              'position', position, 'stream', stream_id, 'version', stream_version, 'type', event_type,
              'schemaVersion', schema_version, 'recordedAt', recorded_at, 'data', data, 'metadata', metadata
            )::text AS line
            FROM pl_events WHERE position > ${after} ORDER BY position LIMIT ${page}`
          if (rows.length === 0) break
          let chunk = ""
          for (const row of rows) chunk += `${row.line}\n`
          hash.update(chunk, "utf8")
          yield* Effect.tryPromise({
            try: () => writer.write(chunk),
            catch: (cause) => new BackupFailed({ reason: `cannot write ${eventsPart}: ${describe(cause)}`, cause })
          })
          count += rows.length
          after = Number(rows[rows.length - 1]!.position)
          page = chunk.length > PAGE_CHARS ? Math.max(10, Math.floor(page / 2)) : Math.min(PAGE, page * 2)
        }
        return { count, head: after }
      })).pipe(Effect.onError(() => Effect.promise(() => writer.abort())))
      yield* Effect.tryPromise({
        try: () => writer.end(),
        catch: (cause) => new BackupFailed({ reason: `cannot write ${eventsPart}: ${describe(cause)}`, cause })
      })
      const header: BackupHeader = {
        format: FORMAT,
        version: FORMAT_VERSION,
        count: written.count,
        head: written.head,
        checksum: `sha256:${hash.digest("hex")}`,
        createdAt: new Date().toISOString()
      }
      yield* Effect.tryPromise({
        try: async () => {
          await pipeline(
            async function*() {
              yield gzipSync(`${JSON.stringify(header)}\n`)
              yield* createReadStream(eventsPart)
            },
            createWriteStream(whole, { mode: 0o600 })
          )
          await rename(whole, file)
        },
        catch: (cause) => new BackupFailed({ reason: `cannot write ${file}: ${describe(cause)}`, cause })
      })
      return header
    })
    return yield* write.pipe(
      Effect.ensuring(Effect.promise(() => Promise.all([rm(eventsPart, { force: true }), rm(whole, { force: true })])))
    )
  }).pipe(Effect.withSpan("Backup.backup"))

/** The lines of a gzip'd file, as bytes without their newline; a damaged file fails the iteration. */
async function* linesOf(file: string): AsyncGenerator<Buffer> {
  const gunzip = createGunzip()
  const piped = pipeline(createReadStream(file), gunzip)
  piped.catch(() => {}) // the same error reaches the loop below through gunzip
  let rest: Buffer = Buffer.alloc(0)
  for await (const chunk of gunzip as AsyncIterable<Buffer>) {
    let data = rest.length === 0 ? chunk : Buffer.concat([rest, chunk])
    let start = 0
    for (let nl = data.indexOf(10, start); nl !== -1; nl = data.indexOf(10, start)) {
      yield data.subarray(start, nl)
      start = nl + 1
    }
    data = data.subarray(start)
    rest = Buffer.from(data)
  }
  await piped
  // Every line of a backup ends with a newline: anything after the last one is a cut-off line.
  if (rest.length > 0) throw new Error("the last line is cut off")
}

const damaged = (file: string, what: string) =>
  new RestoreRefused({ reason: `${file} is damaged or is not a Pinledger backup (${what}); nothing was restored` })

const parseHeader = (file: string, line: Buffer | undefined): RestoreRefused | BackupHeader => {
  if (line === undefined) return damaged(file, "it is empty")
  let header: unknown
  try {
    header = JSON.parse(line.toString("utf8"))
  } catch {
    return damaged(file, "its first line is not a header")
  }
  const h = header as Partial<BackupHeader> | null
  if (h === null || typeof h !== "object" || h.format !== FORMAT) return damaged(file, "its first line is not a header")
  if (h.version !== FORMAT_VERSION) {
    return new RestoreRefused({ reason: `${file} is a backup of format version ${String(h.version)}; this Pinledger reads version ${FORMAT_VERSION}` })
  }
  const whole = (n: unknown) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0
  if (!whole(h.count) || !whole(h.head) || typeof h.checksum !== "string" || !/^sha256:[0-9a-f]{64}$/.test(h.checksum)) {
    return damaged(file, "its header is incomplete")
  }
  return h as BackupHeader
}

/** What the database holds that an empty one does not; undefined when it is empty. */
const contents = Effect.gen(function*() {
  const sql = yield* SqlClient
  const rows = yield* sql<{ events: unknown; head: unknown; checkpoints: unknown }>`
    SELECT (SELECT count(*) FROM pl_events) AS events, (SELECT coalesce(max(position), 0) FROM pl_events) AS head,
      (SELECT count(*) FROM pl_checkpoints) AS checkpoints`
  const events = Number(rows[0]?.events ?? 0)
  const checkpoints = Number(rows[0]?.checkpoints ?? 0)
  if (events > 0) return `it holds ${events} events (head ${Number(rows[0]?.head ?? 0)})`
  if (checkpoints > 0) return `it holds the checkpoints of ${checkpoints} subscriber(s)`
  return undefined
})

const refuseUnlessEmpty = Effect.gen(function*() {
  const held = yield* contents
  if (held !== undefined) {
    return yield* new RestoreRefused({
      reason: `restore needs an empty database, and this one is not: ${held}. Nothing was restored. Restore into a new ` +
        "database (an empty PINLEDGER_DATA_DIR, or a freshly created PostgreSQL database in DATABASE_URL)"
    })
  }
})

/** Lines per INSERT, and a bound on their size. */
const BATCH = 1000
const BATCH_BYTES = 4 * 1024 * 1024

export interface Restored {
  readonly header: BackupHeader
  /** The inline projections rebuilt. */
  readonly rebuilt: ReadonlyArray<string>
}

/**
 * Loads a backup into an empty (migrated) database and rebuilds the inline projections, all in
 * one transaction: a damaged file (bad gzip, cut off, a count or checksum that does not match
 * its header) leaves the database as empty as it was. Positions, stream versions and recorded
 * times are kept; transaction ids are this database's own (one, for the whole restore), so
 * subscriptions read the restored log in position order. Asynchronous projections and the
 * notification sender have no checkpoint afterwards, so they start from the beginning of the log
 * (the sender does not send again what the log says was sent).
 */
export const restore = (file: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    yield* refuseUnlessEmpty
    yield* Effect.tryPromise({
      try: () => access(file, constants.R_OK),
      catch: (cause) => new RestoreRefused({ reason: `cannot read ${file}: ${describe(cause)}` })
    })
    const lines = linesOf(file)
    const next = Effect.tryPromise({
      try: () => lines.next(),
      catch: (cause) => damaged(file, describe(cause))
    })
    const first = yield* next
    const header = parseHeader(file, first.done ? undefined : first.value)
    if (header instanceof RestoreRefused) return yield* header
    const load = sql.withTransaction(Effect.gen(function*() {
      // Nobody else writes the log, nor reads it half restored.
      yield* sql`LOCK TABLE pl_events IN ACCESS EXCLUSIVE MODE`
      yield* refuseUnlessEmpty
      const hash = createHash("sha256")
      let count = 0
      let batch: Array<string> = []
      let bytes = 0
      const flush = Effect.suspend(() => {
        if (batch.length === 0) return Effect.void
        const json = `[${batch.join(",")}]`
        batch = []
        bytes = 0
        return sql`INSERT INTO pl_events
            (position, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at)
          OVERRIDING SYSTEM VALUE
          SELECT (e->>'position')::bigint, e->>'stream', (e->>'version')::bigint, e->>'type', (e->>'schemaVersion')::int,
            (e->'data')::jsonb, (e->'metadata')::jsonb, (e->>'recordedAt')::timestamptz
          FROM json_array_elements(${json}::json) AS t(e)`.pipe(
          Effect.mapError((error) => damaged(file, `events near line ${count + 1} do not load: ${describeSql(error)}`)),
          Effect.asVoid
        )
      })
      for (;;) {
        const line = yield* next
        if (line.done) break
        hash.update(line.value)
        hash.update("\n")
        count++
        batch.push(line.value.toString("utf8"))
        bytes += line.value.length
        if (batch.length >= BATCH || bytes >= BATCH_BYTES) yield* flush
      }
      yield* flush
      if (count !== header.count) return yield* damaged(file, `it holds ${count} events, its header says ${header.count}`)
      if (`sha256:${hash.digest("hex")}` !== header.checksum) return yield* damaged(file, "its events do not match the header's checksum")
      const rows = yield* sql<{ head: unknown }>`SELECT coalesce(max(position), 0) AS head FROM pl_events`
      const head = Number(rows[0]?.head ?? 0)
      if (head !== header.head) return yield* damaged(file, `its last position is ${head}, its header says ${header.head}`)
      // Positions were given, not drawn: the next append must draw past them.
      if (head > 0) yield* sql`SELECT setval(pg_get_serial_sequence('pl_events', 'position'), ${head})`
      for (const projection of inlineProjections) yield* rebuild(projection)
      return { header, rebuilt: inlineProjections.map((p) => p.name) } satisfies Restored
    }))
    return yield* load.pipe(Effect.ensuring(Effect.promise(async () => {
      await lines.return(undefined)
    })))
  }).pipe(Effect.withSpan("Backup.restore"))

const describeSql = (error: SqlError): string => {
  const cause = error.reason.cause
  return isSqlError(error) && cause instanceof Error ? cause.message : error.message
}
