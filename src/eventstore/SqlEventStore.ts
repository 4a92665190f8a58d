import { Cause, Deferred, Effect, Fiber, Layer, Option, Queue, Schema, Semaphore, Stream } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type * as Statement from "effect/sql/Statement"
import { isSqlError, SqlError, UnknownError } from "effect/sql/SqlError"
import { EventStoreUnavailable, InvalidEvent, WrongExpectedVersion } from "./Errors.ts"
import {
  type AppendResult,
  EventType,
  type ExpectedVersion,
  Metadata,
  type NewEvent,
  type RecordedEvent,
  StreamId
} from "./Event.ts"
import type { Database } from "./Database.ts"
import { EventStore, eventsChannel } from "./EventStore.ts"
import { migrate } from "./Migrations.ts"
import * as StoreMetrics from "./StoreMetrics.ts"

export interface SqlEventStoreOptions {
  /** Most appends one group-commit transaction takes. */
  readonly maxBatch?: number | undefined
  /**
   * Group-commit transactions in flight at once, each on its own connection: while one waits for
   * its commit to reach the disk, the next is already inserting. Batches that share a stream still
   * commit one after the other (stream locks).
   */
  readonly writers?: number | undefined
  /** Largest encoded event (data), in bytes. */
  readonly maxEventBytes?: number | undefined
  /** Projections written in the append's own transaction (see `InlineProjection`). */
  readonly inline?: ReadonlyArray<InlineProjection> | undefined
}

/** An appended event as an inline projection sees it. */
export interface InlineEvent {
  readonly position: number
  readonly streamId: string
  readonly version: number
  readonly type: string
  readonly data: unknown
}

/**
 * A projection updated in the same transaction as the events that change it, so what it says is
 * in force the moment an append is acknowledged (a revoked token, a removed permission). If it
 * fails, the append fails and nothing is written. Keep it to cheap, indexed writes.
 */
export interface InlineProjection {
  readonly name: string
  /** The event types it reads; batches without any of them skip it. */
  readonly types: ReadonlySet<string>
  /** The tables it alone writes: emptied before a rebuild from the log (`Rebuild.ts`). */
  readonly tables: ReadonlyArray<string>
  readonly apply: (events: ReadonlyArray<InlineEvent>) => Effect.Effect<void, SqlError, SqlClient>
  /**
   * For a rebuild, when it can do better than `apply` chunk after chunk: takes the whole log in
   * order through `feed` (writing as it sees fit, in the rebuild's transaction), then `end`.
   */
  readonly rebuilder?: Effect.Effect<{
    readonly feed: (events: ReadonlyArray<InlineEvent>) => Effect.Effect<void, SqlError, SqlClient>
    readonly end: Effect.Effect<void, SqlError, SqlClient>
  }, never, SqlClient>
}

interface Pending {
  readonly stream: string
  readonly expected: ExpectedVersion
  readonly events: ReadonlyArray<NewEvent>
  /** Each event pre-serialised as a JSON array fragment: type, schema version, data, metadata. */
  readonly rows: ReadonlyArray<string>
  readonly done: Deferred.Deferred<AppendResult, WrongExpectedVersion | InvalidEvent | EventStoreUnavailable>
}

/**
 * Columns every read selects, in the shape `toRecorded` expects. The transaction id comes as text
 * (sql-pg cannot decode xid8) under another name: an `ORDER BY tx_id` must still sort the number.
 */
export const eventColumns =
  "position, tx_id::text AS tx_text, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at"

export interface EventRow {
  readonly position: unknown
  readonly tx_text: string
  readonly stream_id: string
  readonly stream_version: unknown
  readonly event_type: string
  readonly schema_version: unknown
  readonly data: unknown
  readonly metadata: unknown
  readonly recorded_at: unknown
}

export const toRecorded = (row: EventRow): RecordedEvent => ({
  position: Number(row.position),
  txId: BigInt(row.tx_text),
  streamId: row.stream_id,
  version: Number(row.stream_version),
  type: row.event_type,
  schemaVersion: Number(row.schema_version),
  data: row.data,
  metadata: row.metadata as Metadata,
  recordedAt: row.recorded_at instanceof Date ? row.recorded_at : new Date(String(row.recorded_at))
})

/** The driver's message and the database's own, e.g. "Query failed: terminating connection ...". */
const describeSqlError = (error: SqlError): string => {
  const cause = error.reason.cause
  return cause instanceof Error && cause.message !== error.message ? `${error.message}: ${cause.message}` : error.message
}

const unavailable = (error: SqlError) =>
  new EventStoreUnavailable({ reason: describeSqlError(error), cause: error })

/**
 * Writers lock their streams (advisory locks on a hash of the stream id) before the first write of
 * a transaction. So for any one stream, the transaction that writes the next version got its
 * transaction id after the previous writer committed, and subscriptions, which deliver in
 * transaction-id order, see each stream's versions in order even with several writers, in one
 * process or several. A hash collision only makes two streams wait for each other.
 */
const lockNamespace = 0x706c6576 // "plev"
const lockKey = (stream: string): number => {
  let h = 0x811c9dc5
  for (let i = 0; i < stream.length; i++) {
    h ^= stream.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  return h | 0 // the int4 that pg_advisory_xact_lock(int4, int4) takes
}

const decodeStream = Schema.decodeUnknownOption(StreamId)
const decodeType = Schema.decodeUnknownOption(EventType)
const decodeMetadata = Schema.decodeUnknownOption(Metadata)

/** Validates and serialises an append up front, so that bad input fails alone and early. */
const prepare = (
  stream: string,
  events: ReadonlyArray<NewEvent>,
  metadata: Metadata,
  maxEventBytes: number
): InvalidEvent | ReadonlyArray<string> => {
  if (Option.isNone(decodeStream(stream))) return new InvalidEvent({ reason: `bad stream id ${JSON.stringify(stream)}` })
  if (events.length === 0) return new InvalidEvent({ reason: "an append needs at least one event" })
  const decoded = decodeMetadata(metadata)
  if (Option.isNone(decoded)) return new InvalidEvent({ reason: "bad metadata" })
  // The decoded value: only the fields Metadata knows are stored.
  const meta = JSON.stringify(decoded.value)
  const rows: Array<string> = []
  for (const event of events) {
    if (Option.isNone(decodeType(event.type))) {
      return new InvalidEvent({ reason: `bad event type ${JSON.stringify(event.type)}` })
    }
    if (!Number.isInteger(event.schemaVersion) || event.schemaVersion < 1) {
      return new InvalidEvent({ reason: `bad schema version ${event.schemaVersion} for ${event.type}` })
    }
    let data: string | undefined
    try {
      data = JSON.stringify(event.data)
    } catch (e) {
      return new InvalidEvent({ reason: `data of ${event.type} is not JSON: ${String(e)}` })
    }
    if (data === undefined) return new InvalidEvent({ reason: `data of ${event.type} is not JSON` })
    // PostgreSQL's jsonb cannot hold a NUL character.
    if (data.includes("\\u0000")) return new InvalidEvent({ reason: `data of ${event.type} contains a NUL character` })
    if (data.length > maxEventBytes / 3 && Buffer.byteLength(data) > maxEventBytes) {
      return new InvalidEvent({ reason: `data of ${event.type} is larger than ${maxEventBytes} bytes` })
    }
    rows.push(`${JSON.stringify(event.type)},${event.schemaVersion},${data},${meta}`)
  }
  return rows
}

/**
 * Whether a failed batch failed because of some request's data (a value the database refuses),
 * as opposed to the connection or the server. Only then is it safe to retry the requests one by
 * one: after a lost connection the COMMIT may have happened, and a retry could write twice.
 */
const isDataError = (error: SqlError) => {
  const code = (error.reason.cause as { readonly code?: unknown } | undefined)?.code
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23") || code === "54000")
}

interface Accepted {
  readonly first: number
  readonly count: number
  readonly version: number
}

export const make = Effect.fn("SqlEventStore.make")(function*(options: SqlEventStoreOptions = {}) {
  const sql = yield* SqlClient
  const maxBatch = options.maxBatch ?? 500
  const writers = options.writers ?? 2
  const maxEventBytes = options.maxEventBytes ?? 1024 * 1024
  const queue = yield* Queue.unbounded<Pending, Cause.Done>()

  /**
   * One transaction for a whole batch: lock its streams, decide per request, insert what was
   * accepted. `locked` runs once the stream locks are held (see `writer`).
   */
  const commit = (batch: ReadonlyArray<Pending>, locked: Effect.Effect<void>) =>
    sql.withTransaction(Effect.gen(function*() {
      const streams = [...new Set(batch.map((p) => p.stream))]
      const keys = [...new Set(streams.map(lockKey))].sort((a, b) => a - b)
      yield* sql`SELECT count(pg_advisory_xact_lock(${lockNamespace}, k::int)) FROM json_array_elements_text(${
        JSON.stringify(keys)
      }::json) AS t(k)`
      yield* locked
      // A statement of its own, after the locks: its snapshot must see the previous writer's commit.
      const heads = yield* sql<{ stream_id: string; version: unknown }>`
        SELECT s AS stream_id, (SELECT max(stream_version) FROM pl_events e WHERE e.stream_id = s) AS version
        FROM json_array_elements_text(${JSON.stringify(streams)}::json) AS t(s)`
      const versions = new Map(heads.map((h) => [h.stream_id, h.version === null ? 0 : Number(h.version)]))

      const outcomes: Array<Accepted | WrongExpectedVersion> = []
      const rows: Array<string> = []
      for (const p of batch) {
        const actual = versions.get(p.stream) ?? 0
        const ok = p.expected === "any" || (p.expected === "noStream" ? actual === 0 : p.expected === actual)
        if (!ok) {
          outcomes.push(new WrongExpectedVersion({ stream: p.stream, expected: p.expected, actual }))
          continue
        }
        const version = actual + p.rows.length
        outcomes.push({ first: rows.length, count: p.rows.length, version })
        const stream = JSON.stringify(p.stream)
        p.rows.forEach((row, i) => rows.push(`[${stream},${actual + i + 1},${row}]`))
        versions.set(p.stream, version)
      }
      if (rows.length === 0) return { outcomes, positions: [] }
      // Identity values are taken in row order, so sorted positions are in the rows' order. The
      // NOTIFY rides along (it is delivered at commit) to save a round trip.
      const inserted = yield* sql<{ positions: ReadonlyArray<unknown> }>`
        WITH inserted AS (
          INSERT INTO pl_events (stream_id, stream_version, event_type, schema_version, data, metadata)
          SELECT e->>0, (e->>1)::bigint, e->>2, (e->>3)::int, (e->4)::jsonb, (e->5)::jsonb
          FROM json_array_elements(${`[${rows.join(",")}]`}::json) WITH ORDINALITY AS x(e, i)
          ORDER BY i
          RETURNING position
        )
        SELECT array_agg(position ORDER BY position) AS positions, pg_notify(${eventsChannel}, '') AS notified
        FROM inserted`
      const positions = (inserted[0]?.positions ?? []).map(Number)
      yield* applyInline(batch, outcomes, positions)
      return { outcomes, positions }
    }).pipe(Effect.withSpan("EventStore.commit", { attributes: { appends: batch.length } })))

  const inline = options.inline ?? []
  /** Hands each inline projection the accepted events of the types it reads, in log order. */
  const applyInline = (
    batch: ReadonlyArray<Pending>,
    outcomes: ReadonlyArray<Accepted | WrongExpectedVersion>,
    positions: ReadonlyArray<number>
  ) =>
    Effect.forEach(inline, (projection) => {
      const events: Array<InlineEvent> = []
      batch.forEach((p, i) => {
        const outcome = outcomes[i]!
        if (outcome instanceof WrongExpectedVersion) return
        p.events.forEach((e, k) => {
          if (!projection.types.has(e.type)) return
          const version = outcome.version - outcome.count + k + 1
          events.push({ position: positions[outcome.first + k]!, streamId: p.stream, version, type: e.type, data: e.data })
        })
      })
      // Same client, and the transaction's connection stays in the context: the writes join it.
      return events.length === 0 ? Effect.void : Effect.provideService(projection.apply(events), SqlClient, sql)
    }, { discard: true })

  const settle = (batch: ReadonlyArray<Pending>, locked: Effect.Effect<void>): Effect.Effect<void> =>
    commit(batch, locked).pipe(
      // sql-pg reports a connection that dies inside a transaction as a defect (the ROLLBACK
      // fails too); to the callers it is the same lost database as any other.
      Effect.catchDefect((defect) =>
        Effect.fail(
          isSqlError(defect)
            ? defect
            : new SqlError({ reason: new UnknownError({ cause: defect, message: String(defect), operation: "append" }) })
        )
      ),
      Effect.flatMap(({ outcomes, positions }) =>
        Effect.sync(() =>
          batch.forEach((p, i) => {
            const outcome = outcomes[i]!
            Deferred.doneUnsafe(
              p.done,
              outcome instanceof WrongExpectedVersion
                ? Effect.fail(outcome)
                : Effect.succeed({
                  positions: positions.slice(outcome.first, outcome.first + outcome.count),
                  version: outcome.version
                })
            )
          })
        )
      ),
      Effect.catch((error: SqlError) => {
        if (isDataError(error)) {
          // Some request's data was refused: retry one by one, so that only that request fails.
          const [only, ...others] = batch
          return others.length > 0 || only === undefined
            ? Effect.forEach(batch, (p) => settle([p], Effect.void), { discard: true })
            : Deferred.fail(only.done, new InvalidEvent({ reason: `refused by the database: ${describeSqlError(error)}` }))
        }
        return Effect.forEach(batch, (p) => Deferred.fail(p.done, unavailable(error)), { discard: true }).pipe(
          Effect.andThen(Effect.logWarning(`event store: ${batch.length} append(s) failed: ${describeSqlError(error)}`))
        )
      })
    )

  // The writers: each takes whatever is queued (at least one append, at most maxBatch) and commits
  // it as one transaction. Taking a batch and locking its streams is done in turns, so a later
  // batch cannot lock a stream before an earlier one: appends to one stream commit in the order
  // they were queued, even when the caller did not wait for one before sending the next.
  // When the queue ends (scope closing) they drain what is left and stop.
  const turn = yield* Semaphore.make(1)
  const writer = Effect.gen(function*() {
    yield* turn.take(1)
    let holding = true
    const passTurn = Effect.suspend(() => {
      if (!holding) return Effect.void
      holding = false
      return Effect.asVoid(turn.release(1))
    })
    const batch = yield* Queue.takeBetween(queue, 1, maxBatch).pipe(Effect.onError(() => passTurn))
    const startedAt = performance.now()
    yield* settle(batch, passTurn).pipe(
      // Nothing may stop a writer: whatever escapes fails this batch's callers, then on to the next.
      Effect.catchCause((cause) =>
        Effect.forEach(batch, (p) =>
          Deferred.fail(p.done, new EventStoreUnavailable({ reason: "append failed", cause: Cause.squash(cause) })), {
          discard: true
        }).pipe(Effect.andThen(Effect.logError("event store: writer failed", cause)))
      ),
      Effect.ensuring(passTurn)
    )
    yield* StoreMetrics.recordCommit(batch.length, startedAt)
  }).pipe(
    Effect.forever,
    Effect.catchIf(Cause.isDone, () => Effect.void)
  )
  const writerFibers = yield* Effect.forEach(Array.from({ length: writers }), () => Effect.forkDetach(writer))
  yield* Effect.addFinalizer(() =>
    Queue.end(queue).pipe(Effect.andThen(Fiber.joinAll(writerFibers)), Effect.ignore)
  )

  // Untraced: this is the hot path (a span per append cost more than the rest of it); each
  // batch has its span, "EventStore.commit".
  const append = Effect.fnUntraced(function*(
    stream: string,
    expected: ExpectedVersion,
    events: ReadonlyArray<NewEvent>,
    metadata: Metadata
  ) {
    const rows = prepare(stream, events, metadata, maxEventBytes)
    if (rows instanceof InvalidEvent) return yield* rows
    const done = yield* Deferred.make<AppendResult, WrongExpectedVersion | InvalidEvent | EventStoreUnavailable>()
    const accepted = yield* Queue.offer(queue, { stream, expected, events, rows, done })
    if (!accepted) return yield* new EventStoreUnavailable({ reason: "the event store is shutting down" })
    return yield* Deferred.await(done)
  })

  /** Reads page after page, each starting where the last one ended. */
  const pageSize = 1000
  const paged = (from: number, page: (from: number) => Statement.Statement<EventRow>, next: (last: RecordedEvent) => number) =>
    Stream.paginate(from, (at) =>
      page(at).pipe(
        Effect.map((rows) => {
          const events = rows.map(toRecorded)
          const last = events.at(-1)
          return [events, rows.length < pageSize || last === undefined ? Option.none() : Option.some(next(last))] as const
        }),
        Effect.mapError(unavailable)
      ))

  const readStream = (stream: string, fromVersion = 1) =>
    paged(fromVersion, (from) =>
      sql<EventRow>`SELECT ${sql.literal(eventColumns)} FROM pl_events
        WHERE stream_id = ${stream} AND stream_version >= ${from}
        ORDER BY stream_version LIMIT ${pageSize}`, (last) => last.version + 1)

  const readAll = (fromPosition = 1) =>
    paged(fromPosition, (from) =>
      sql<EventRow>`SELECT ${sql.literal(eventColumns)} FROM pl_events
        WHERE position >= ${from} ORDER BY position LIMIT ${pageSize}`, (last) => last.position + 1)

  const head = sql<{ head: unknown }>`SELECT coalesce(max(position), 0) AS head FROM pl_events`.pipe(
    Effect.map((rows) => Number(rows[0]?.head ?? 0)),
    Effect.mapError(unavailable)
  )

  const streamVersion = (stream: string) =>
    sql<{ version: unknown }>`SELECT coalesce(max(stream_version), 0) AS version FROM pl_events WHERE stream_id = ${stream}`
      .pipe(Effect.map((rows) => Number(rows[0]?.version ?? 0)), Effect.mapError(unavailable))

  return EventStore.of({ append, readStream, readAll, head, streamVersion })
})

export const layer = (options?: SqlEventStoreOptions) => Layer.effect(EventStore, make(options))

/** The store on `database`, migrated first, with the database's services beside it. */
export const layerMigrated = <E>(database: Layer.Layer<SqlClient | Database, E>, options?: SqlEventStoreOptions) =>
  layer(options).pipe(Layer.provide(Layer.effectDiscard(migrate)), Layer.provideMerge(database))
