import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it, layer } from "@effect/vitest"
import * as PgTypes from "@effect/sql-pg/PgTypes"
import { Deferred, Effect, Fiber, Queue, Stream } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { SqlError } from "effect/sql/SqlError"
import { Database } from "../../src/eventstore/Database.ts"
import * as PgliteClient from "../../src/eventstore/PgliteClient.ts"

// Starting PGlite runs initdb in WebAssembly: seconds, not milliseconds.
const startup = "60 seconds"

const reasonOf = <A, R>(effect: Effect.Effect<A, SqlError, R>) => Effect.map(Effect.flip(effect), (error) => error.reason)

describe("classifySqlState", () => {
  const props = { cause: new Error("x"), message: "m", operation: "query" }
  it.each([
    ["08006", "ConnectionError"],
    ["28P01", "AuthenticationError"],
    ["42501", "AuthorizationError"],
    ["42601", "SqlSyntaxError"],
    ["42P01", "SqlSyntaxError"],
    ["23503", "ConstraintError"],
    ["40P01", "DeadlockError"],
    ["40001", "SerializationError"],
    ["55P03", "LockTimeoutError"],
    ["57014", "StatementTimeoutError"],
    ["22P02", "UnknownError"]
  ])("%s is %s", (code, tag) => {
    expect(PgliteClient.classifySqlState(code, undefined, props)._tag).toBe(tag)
  })

  it("keeps the constraint of a unique violation", () => {
    expect(PgliteClient.classifySqlState("23505", "t_pkey", props)).toMatchObject({ _tag: "UniqueViolation", constraint: "t_pkey" })
    expect(PgliteClient.classifySqlState("23505", undefined, props)).toMatchObject({ constraint: "unknown" })
    expect(PgliteClient.classifySqlState(undefined, undefined, props)._tag).toBe("UnknownError")
  })
})

layer(PgliteClient.layer({}), { timeout: startup })("PgliteClient in memory", (it) => {
  it.effect("binds parameters like sql-pg", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const [row] = yield* sql`SELECT
        ${"text"} AS s, ${"123"}::int8 AS s_to_int8,
        ${7} AS int4, pg_typeof(${7})::text AS int4_type,
        ${2 ** 40} AS big, pg_typeof(${2 ** 40})::text AS big_type,
        ${5n} AS bigint, ${1.5} AS float, ${true} AS bool, ${null}::text AS nothing,
        ${new Date("2024-05-06T07:08:09.123Z")} AS date, pg_typeof(${new Date()})::text AS date_type,
        ${PgTypes.jsonb({ a: [1, "x"] })} AS json, ${JSON.stringify({ b: 2 })}::jsonb AS json_text,
        ${[1, 2]}::int8[] AS ints, ${["a", "b\"c", null]} AS texts, pg_typeof(${[1, 2]})::text AS ints_type,
        ${new Uint8Array([1, 255])} AS bytes`
      expect(row).toEqual({
        s: "text",
        s_to_int8: 123n,
        int4: 7,
        int4_type: "integer",
        big: 2n ** 40n,
        big_type: "bigint",
        bigint: 5n,
        float: 1.5,
        bool: true,
        nothing: null,
        date: new Date("2024-05-06T07:08:09.123Z"),
        date_type: "timestamp with time zone",
        json: { a: [1, "x"] },
        json_text: { b: 2 },
        ints: [1n, 2n],
        texts: ["a", "b\"c", null],
        ints_type: "integer[]",
        bytes: new Uint8Array([1, 255])
      })
      // sql-pg cannot infer a type for a plain object either; JSON goes through PgTypes.jsonb or a string.
      expect((yield* reasonOf(sql`SELECT ${{ a: 1 } as never}::jsonb`))._tag).toBe("UnknownError")
    }))

  it.effect("maps result types like sql-pg", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const [row] = yield* sql`SELECT 1::int8 AS int8, 9007199254740993::int8 AS huge, 2::int4 AS int4, 'x'::text AS text,
        '{"a":1,"b":[true,null]}'::jsonb AS jsonb, '42'::xid8 AS xid8, '42'::xid8::text::int8 AS xid8_cast,
        '2024-05-06 07:08:09.123456+02'::timestamptz AS tstz, 'infinity'::timestamptz AS inf,
        '2024-05-06 07:08:09'::timestamp AS ts, '2024-05-06'::date AS date, true AS bool, 1.25::numeric AS numeric,
        ARRAY[1, NULL]::int4[] AS int4s, ARRAY[1, 2]::int8[] AS int8s, ARRAY['a', 'b'] AS texts,
        ARRAY['2024-01-01T00:00:00Z'::timestamptz] AS tstzs, NULL AS nothing, NULL::int8 AS null_int8`
      expect(row).toEqual({
        int8: 1n,
        huge: 9007199254740993n,
        int4: 2,
        text: "x",
        jsonb: { a: 1, b: [true, null] },
        xid8: "42",
        xid8_cast: 42n,
        tstz: new Date("2024-05-06T05:08:09.123Z"),
        inf: new Date(Number.NaN),
        ts: new Date("2024-05-06T07:08:09Z"),
        date: "2024-05-06",
        bool: true,
        numeric: "1.25",
        int4s: [1, null],
        int8s: [1n, 2n],
        texts: ["a", "b"],
        tstzs: [new Date("2024-01-01T00:00:00Z")],
        nothing: null,
        null_int8: null
      })
      expect(yield* sql`SELECT 1::int8 AS a, 'x' AS b`.values).toEqual([[1n, "x"]])
      expect(yield* Stream.runCollect(sql`SELECT * FROM generate_series(1, 3) AS n`.stream)).toEqual([{ n: 1 }, { n: 2 }, { n: 3 }])
    }))

  it.effect("runs a multi-statement string without parameters", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const rows = yield* sql.unsafe(`
        CREATE TABLE multi (id int PRIMARY KEY);
        INSERT INTO multi VALUES (1), (2);
        SELECT count(*)::int AS n FROM multi`)
      expect(rows).toEqual([{ n: 2 }])
      const raw = yield* sql`UPDATE multi SET id = id + 10`.raw
      expect(raw).toMatchObject({ command: "UPDATE", rowCount: 2 })
    }))

  it.effect("commits, rolls back, and rolls back to a savepoint", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      yield* sql`CREATE TABLE tx (name text PRIMARY KEY)`
      yield* sql.withTransaction(sql`INSERT INTO tx VALUES ('committed')`)
      yield* sql.withTransaction(Effect.andThen(sql`INSERT INTO tx VALUES ('rolled back')`, Effect.fail("boom"))).pipe(
        Effect.flip
      )
      yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO tx VALUES ('outer')`
        const inner = yield* sql.withTransaction(Effect.andThen(sql`INSERT INTO tx VALUES ('inner')`, Effect.fail("inner"))).pipe(
          Effect.flip
        )
        expect(inner).toBe("inner")
        yield* sql.withTransaction(sql`INSERT INTO tx VALUES ('inner kept')`)
      }))
      const rows = yield* sql<{ name: string }>`SELECT name FROM tx ORDER BY name`
      expect(rows.map((row) => row.name)).toEqual(["committed", "inner kept", "outer"])
    }))

  it.effect("fails a COMMIT that PostgreSQL turns into ROLLBACK", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      yield* sql`CREATE TABLE aborted (id int)`
      const reason = yield* reasonOf(sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO aborted VALUES (1)`
        yield* Effect.ignore(sql`SELEC 1`)
      })))
      expect(reason).toMatchObject({ _tag: "UnknownError", operation: "commit" })
      expect(yield* sql`SELECT * FROM aborted`).toEqual([])
    }))

  it.effect("serialises concurrent transactions: no lost update, no interleaving", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      yield* sql`CREATE TABLE counter (n int NOT NULL)`
      yield* sql`INSERT INTO counter VALUES (0)`
      const log: Array<string> = []
      const increment = (fiber: number) =>
        sql.withTransaction(Effect.gen(function*() {
          log.push(`begin ${fiber}`)
          const [row] = yield* sql<{ n: number }>`SELECT n FROM counter`
          yield* Effect.yieldNow
          yield* sql`UPDATE counter SET n = ${row!.n + 1}`
          log.push(`end ${fiber}`)
        }))
      yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), increment, { concurrency: "unbounded" })
      expect(yield* sql`SELECT n FROM counter`).toEqual([{ n: 20 }])
      for (let i = 0; i < log.length; i += 2) {
        expect(log[i + 1]).toBe(log[i]!.replace("begin", "end"))
      }
    }))

  it.effect("keeps another fiber's statement out of an open transaction", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      yield* sql`CREATE TABLE outside (name text)`
      const inside = yield* Deferred.make<void>()
      const release = yield* Deferred.make<void>()
      const transaction = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql`INSERT INTO outside VALUES ('rolled back')`
        yield* Deferred.succeed(inside, undefined)
        yield* Deferred.await(release)
        return yield* Effect.fail("roll back")
      })).pipe(Effect.flip, Effect.forkChild)
      yield* Deferred.await(inside)
      const statement = yield* Effect.forkChild(sql`INSERT INTO outside VALUES ('kept')`)
      yield* Effect.yieldNow.pipe(Effect.repeat({ times: 10 }))
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(transaction)
      yield* Fiber.join(statement)
      expect(yield* sql`SELECT name FROM outside`).toEqual([{ name: "kept" }])
    }))

  it.effect("classifies unique violations and syntax errors", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      yield* sql`CREATE TABLE uniq (id int CONSTRAINT uniq_pk PRIMARY KEY)`
      yield* sql`INSERT INTO uniq VALUES (${1})`
      expect(yield* reasonOf(sql`INSERT INTO uniq VALUES (${1})`)).toMatchObject({
        _tag: "UniqueViolation",
        constraint: "uniq_pk"
      })
      expect((yield* reasonOf(sql`SELEC 1`))._tag).toBe("SqlSyntaxError")
      expect((yield* reasonOf(sql`SELECT * FROM missing_table WHERE id = ${1}`))._tag).toBe("SqlSyntaxError")
    }))

  it.effect("delivers notifications after commit and drops rolled-back ones", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const database = yield* Database
      expect(database.kind).toBe("pglite")
      const payloads = yield* database.listen("Pin_Events")
      const notify = (payload: string) => sql`SELECT pg_notify('Pin_Events', ${payload})`
      yield* sql.withTransaction(Effect.andThen(notify("rolled back"), Effect.fail("roll back"))).pipe(Effect.flip)
      yield* sql.withTransaction(notify("committed"))
      yield* notify("outside")
      // Notifications arrive in order, so the rolled-back one would have come first.
      expect(yield* Queue.take(payloads)).toBe("committed")
      expect(yield* Queue.take(payloads)).toBe("outside")
      expect((yield* reasonOf(database.listen("x".repeat(64))))._tag).toBe("UnknownError")
    }))
})

it.live("persists across close and reopen of a data directory", () =>
  Effect.gen(function*() {
    const parent = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "pinledger-pglite-"))),
      (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
    )
    const dataDir = join(parent, "nested", "db")
    yield* Effect.provide(
      Effect.gen(function*() {
        const sql = yield* SqlClient
        yield* sql`CREATE TABLE kept (value jsonb)`
        yield* sql.withTransaction(sql`INSERT INTO kept VALUES (${PgTypes.jsonb({ hello: "disk" })})`)
      }),
      PgliteClient.layer({ dataDir })
    )
    const rows = yield* Effect.provide(
      Effect.flatMap(SqlClient, (sql) => sql`SELECT value FROM kept`),
      PgliteClient.layer({ dataDir })
    )
    expect(rows).toEqual([{ value: { hello: "disk" } }])
  }), 120_000)
