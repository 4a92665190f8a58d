/**
 * Embedded PostgreSQL (PGlite) behind effect/sql's `SqlClient`, so application code runs unchanged
 * against this or @effect/sql-pg.
 *
 * Result values, as @effect/sql-pg 4.0.5 returns them from a real PostgreSQL:
 *
 *   int2, int4, oid, float4, float8  number
 *   int8                             bigint, always (PGlite alone would give a number when safe)
 *   numeric                          string
 *   text, varchar, name, uuid        string
 *   bool                             boolean
 *   json, jsonb                      JSON.parse'd value
 *   timestamptz                      Date, microseconds truncated; ±infinity is an invalid Date
 *                                    (sql-pg truncates toward 2000-01-01, so a sub-millisecond
 *                                    instant before 2000 can come out 1 ms later there)
 *   timestamp                        Date whose UTC fields are the wall-clock fields
 *   date                             string "YYYY-MM-DD"
 *   bytea                            Uint8Array
 *   arrays                           JS arrays of the element mapping, NULL elements as null
 *   NULL                             null
 *   xid8                             string such as "742". Differs: sql-pg has no xid8 codec and
 *                                    decodes its binary form as UTF-8 (garbage, or an error), so
 *                                    queries must cast xid8, e.g. `::text::int8` (bigint on both).
 *   interval                         string. Differs: sql-pg gives { months, days, microseconds }.
 *
 * Parameters bind as in sql-pg: strings untyped (the server infers the type from the statement),
 * booleans as bool, bigints as int8, integral numbers as int4 or int8 by range, other numbers as
 * float8, Date as timestamptz, Uint8Array as bytea, null/undefined as NULL, `PgTypes.*(value)` with
 * its own type (`PgTypes.jsonb(object)` is how to send JSON on both), flat arrays as an array of
 * their elements' type. A plain object fails, as in sql-pg.
 *
 * Beyond sql-pg: a statement without parameters runs through the simple protocol, so a
 * multi-statement string (migrations) works and yields the last statement's rows.
 */
import { mkdirSync } from "node:fs"
import { PGlite, type ParserOptions, type Results, type SerializerOptions } from "@electric-sql/pglite"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as PgTypes from "@effect/sql-pg/PgTypes"
import { Context, Effect, Layer, Option, Queue, Scope, Semaphore, Stream } from "effect"
import * as Reactivity from "effect/reactivity/Reactivity"
import * as SqlClient from "effect/sql/SqlClient"
import type { Connection } from "effect/sql/SqlConnection"
import {
  AuthenticationError, AuthorizationError, ConnectionError, ConstraintError, DeadlockError, LockTimeoutError,
  SerializationError, SqlError, type SqlErrorReason, SqlSyntaxError, StatementTimeoutError, UniqueViolation,
  UnknownError
} from "effect/sql/SqlError"
import { Database } from "./Database.ts"
import * as DirectoryLock from "./DirectoryLock.ts"

export interface PgliteClientOptions {
  /** Directory of a persistent database, created if missing; in memory when undefined. */
  readonly dataDir?: string | undefined
}

export interface PgliteClient extends SqlClient.SqlClient {
  readonly listen: (typeof Database.Service)["listen"]
}

/** The SQLSTATE mapping of @effect/sql-pg, so callers can match on `reason._tag` for either backend. */
export const classifySqlState = (
  code: string | undefined,
  constraint: string | undefined,
  props: { readonly cause: unknown; readonly message: string; readonly operation: string }
): SqlErrorReason => {
  if (code === undefined) return new UnknownError(props)
  if (code.startsWith("08")) return new ConnectionError(props)
  if (code.startsWith("28")) return new AuthenticationError(props)
  if (code === "42501") return new AuthorizationError(props)
  if (code.startsWith("42")) return new SqlSyntaxError(props)
  if (code === "23505") return new UniqueViolation({ ...props, constraint: constraint?.trim() || "unknown" })
  if (code.startsWith("23")) return new ConstraintError(props)
  if (code === "40P01") return new DeadlockError(props)
  if (code === "40001") return new SerializationError(props)
  if (code === "55P03") return new LockTimeoutError(props)
  if (code === "57014") return new StatementTimeoutError(props)
  return new UnknownError(props)
}

const toSqlError = (cause: unknown, operation: string): SqlError => {
  const fields: { code?: unknown; constraint?: unknown } = typeof cause === "object" && cause !== null ? cause : {}
  const code = typeof fields.code === "string" ? fields.code : undefined
  const constraint = typeof fields.constraint === "string" ? fields.constraint : undefined
  return new SqlError({
    reason: classifySqlState(code, constraint, { cause, message: "PgliteClient: Query failed", operation })
  })
}

// ---------------------------------------------------------------------------------------------
// Values. PGlite exchanges everything in PostgreSQL's text format.
// ---------------------------------------------------------------------------------------------

const OID = PgTypes.OID

const timestampPattern = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,3})?)\d*(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?$/

/** Unmatched text (infinity, BC, years past 9999) gives an invalid Date, like sql-pg's infinities. */
const parseTimestamp = (text: string): Date => {
  const match = timestampPattern.exec(text.replace(" ", "T"))
  if (match === null) return new Date(Number.NaN)
  const [, local = "", sign, hours = "0", minutes = "0", seconds = "0"] = match
  const offset = ((Number(hours) * 60 + Number(minutes)) * 60 + Number(seconds)) * 1000
  return new Date(Date.parse(`${local}Z`) - (sign === "-" ? -offset : offset))
}

// Passed at construction: PGlite's array parsers look their element parser up there on each use.
const parsers: ParserOptions = {
  [OID.int8]: (text) => BigInt(text),
  [OID.date]: (text) => text,
  [OID.timestamp]: parseTimestamp,
  [OID.timestamptz]: parseTimestamp
}

// Parameters arrive already encoded; PGlite's serializers, picked by the type the server inferred,
// would otherwise re-encode them (its bytea one rejects strings, its json one quotes objects).
const verbatim: SerializerOptions = new Proxy({}, { get: () => (text: string) => text })

const isInt4 = (n: number) => n >= -2147483648 && n <= 2147483647

/** sql-pg's type inference, as [text, type OID]; OID 0 leaves the type to the server. */
const encodeScalar = (value: unknown): readonly [string | null, number] => {
  if (PgTypes.isParameter(value)) return [encodeTyped(value.value, value.oid), value.oid]
  if (value === null || value === undefined) return [null, 0]
  switch (typeof value) {
    case "string":
      return [value, 0]
    case "boolean":
      return [value ? "t" : "f", OID.bool]
    case "bigint":
      return [String(value), OID.int8]
    case "number":
      return [
        String(value),
        !Number.isInteger(value) ? OID.float8 : isInt4(value) ? OID.int4 : Number.isSafeInteger(value) ? OID.int8 : OID.float8
      ]
  }
  if (value instanceof Date) return [value.toISOString(), OID.timestamptz]
  if (value instanceof Uint8Array || value instanceof Int8Array) {
    return [`\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex")}`, OID.bytea]
  }
  throw new TypeError(`Cannot infer a PostgreSQL type for ${String(value)}`)
}

const encodeTyped = (value: unknown, oid: number): string | null => {
  if (value === null || value === undefined) return null
  if (oid === OID.json || oid === OID.jsonb) return JSON.stringify(value)
  return Array.isArray(value) ? encodeArray(value)[0] : encodeScalar(value)[0]
}

const encodeArray = (values: ReadonlyArray<unknown>): readonly [string, number] => {
  if (values.length === 0) return ["{}", 0]
  let elementOid: number | undefined
  const items = values.map((value) => {
    if (Array.isArray(value)) throw new TypeError("Nested array parameters are not supported")
    const [text, oid] = encodeScalar(value)
    if (text === null) return "NULL"
    const typed = oid === 0 ? OID.text : oid
    if (elementOid !== undefined && elementOid !== typed) {
      throw new TypeError("Array parameter elements must have the same inferred OID")
    }
    elementOid = typed
    return `"${text.replace(/[\\"]/g, "\\$&")}"`
  })
  const arrayOid = elementOid === undefined ? undefined : PgTypes.arrayOidFor(elementOid)
  if (arrayOid === undefined) throw new TypeError("Cannot infer the type of this array parameter")
  return [`{${items.join(",")}}`, arrayOid]
}

const encodeParams = (params: ReadonlyArray<unknown>) => {
  const encoded = params.map((param) => Array.isArray(param) ? encodeArray(param) : encodeScalar(param))
  return { values: encoded.map(([text]) => text), paramTypes: encoded.map(([, oid]) => oid) }
}

// ---------------------------------------------------------------------------------------------
// Connection and client
// ---------------------------------------------------------------------------------------------

type TransformRows = (<A extends object>(rows: ReadonlyArray<A>) => ReadonlyArray<A>) | undefined

/**
 * Uninterruptible because PGlite cannot cancel a running statement: an interrupted fiber would
 * release the semaphore while the database is still busy with its statement.
 */
const callPglite = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, SqlError> =>
  Effect.uninterruptible(Effect.tryPromise({ try: f, catch: (cause) => toSqlError(cause, operation) }))

const makeConnection = (db: PGlite): Connection => {
  const run = (sql: string, params: ReadonlyArray<unknown>, rowMode: "object" | "array") =>
    callPglite("query", async (): Promise<Results<any>> => {
      if (params.length > 0) {
        const { values, paramTypes } = encodeParams(params)
        return db.query(sql, values, { rowMode, paramTypes, serializers: verbatim })
      }
      const results = await db.exec(sql, { rowMode })
      return results[results.length - 1] ?? { rows: [], fields: [] }
    })
  const rows = (sql: string, params: ReadonlyArray<unknown>, transformRows: TransformRows) =>
    Effect.map(run(sql, params, "object"), (result) => transformRows ? transformRows(result.rows) : result.rows)
  const values = (sql: string, params: ReadonlyArray<unknown>) =>
    Effect.map(run(sql, params, "array"), (result): ReadonlyArray<ReadonlyArray<unknown>> => result.rows)
  return {
    execute: rows,
    executeUnprepared: rows,
    executeRaw: (sql, params) => run(sql, params, "object"),
    executeValues: values,
    executeValuesUnprepared: values,
    executeStream: (sql, params, transformRows) => Stream.fromIterableEffect(rows(sql, params, transformRows))
  }
}

/**
 * An aborted transaction (a statement failed and its error was caught) answers COMMIT with
 * ROLLBACK rather than an error; fail like sql-pg, or the caller would believe it committed.
 */
const commit = (conn: Connection) =>
  Effect.flatMap(conn.executeRaw("COMMIT", []), (result) =>
    (result as Results).command === "ROLLBACK"
      ? Effect.fail(
        new SqlError({
          reason: new UnknownError({
            cause: new Error("COMMIT rolled back an aborted transaction"),
            message: "PgliteClient: COMMIT rolled back an aborted transaction",
            operation: "commit"
          })
        })
      )
      : Effect.void)

const channelBytes = new TextEncoder()

export const make = Effect.fnUntraced(function*(options: PgliteClientOptions) {
  if (options.dataDir !== undefined) {
    const dir = options.dataDir
    mkdirSync(dir, { recursive: true })
    yield* DirectoryLock.acquire(dir).pipe(Effect.mapError((locked) =>
      new SqlError({
        reason: new ConnectionError({
          cause: locked,
          message: `the embedded database in ${dir} is in use by process ${locked.pid} (a running server?): ` +
            "stop it first, or run the server and the command line on PostgreSQL (DATABASE_URL)",
          operation: "connect"
        })
      })
    ))
  }
  const db = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: () => {
        if (options.dataDir !== undefined) mkdirSync(options.dataDir, { recursive: true })
        return PGlite.create(options.dataDir, { parsers })
      },
      catch: (cause) =>
        new SqlError({
          reason: new ConnectionError({ cause, message: "PgliteClient: cannot open the database", operation: "connect" })
        })
    }),
    (db) => Effect.promise(() => db.close())
  )
  const semaphore = yield* Semaphore.make(1)
  // PostgreSQL ends the transaction itself when COMMIT fails, so the SQLite-oriented ROLLBACK after
  // a failed COMMIT is skipped through `isTransaction`; it only runs if a transaction is still open.
  const acquirers = SqlClient.makeSqliteAcquirers({
    connection: Effect.succeed(makeConnection(db)),
    semaphore,
    isTransaction: () => db.isInTransaction()
  })
  const client = yield* SqlClient.make({
    ...acquirers,
    compiler: PgClient.makeCompiler(),
    driver: "pglite",
    spanAttributes: [["db.system.name", "postgresql"]],
    commit,
    releaseSavepoint: (name) => `RELEASE SAVEPOINT ${name}`
  })

  // LISTEN and UNLISTEN are statements too: they must not land inside another fiber's transaction,
  // but inside this fiber's own transaction they run on the connection it already holds.
  const exclusive = <A>(operation: string, f: () => Promise<A>) =>
    Effect.flatMap(
      Effect.serviceOption(client.transactionService),
      (transaction) => Option.isSome(transaction) ? callPglite(operation, f) : semaphore.withPermit(callPglite(operation, f))
    )

  const listen = (channel: string) =>
    Effect.gen(function*() {
      // PGlite matches notifications to listeners by the name with its quotes stripped, not unescaped.
      if (channelBytes.encode(channel).byteLength > 63 || channel.includes("\"")) {
        const message = "Channel names must not exceed 63 UTF-8 bytes nor contain a double quote"
        return yield* new SqlError({ reason: new UnknownError({ cause: new Error(message), message, operation: "listen" }) })
      }
      const queue = yield* Queue.unbounded<string, SqlError>()
      // PGlite interpolates the name into LISTEN unquoted; quoting keeps its case, as sql-pg does.
      const identifier = `"${channel}"`
      const onPayload = (payload: string) => void Queue.offerUnsafe(queue, payload)
      yield* Effect.acquireRelease(
        exclusive("listen", () => db.listen(identifier, onPayload)),
        () => Effect.andThen(Effect.ignore(exclusive("unlisten", () => db.unlisten(identifier, onPayload))), Queue.shutdown(queue))
      )
      return queue as Queue.Dequeue<string, SqlError>
    })

  const pglite: PgliteClient = Object.assign(client, { listen })
  return pglite
})

export const layer = (options: PgliteClientOptions): Layer.Layer<SqlClient.SqlClient | Database, SqlError> =>
  Layer.effectContext(
    Effect.map(make(options), (client) =>
      Context.make(SqlClient.SqlClient, client as SqlClient.SqlClient).pipe(
        Context.add(Database, { kind: "pglite", listen: client.listen })
      ))
  ).pipe(Layer.provide(Reactivity.layer))
