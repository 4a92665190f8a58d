import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import fc from "fast-check"
import * as SqlArrays from "../../src/eventstore/SqlArrays.ts"
import { backends } from "../support/backends.ts"

const int4 = fc.oneof(fc.integer(), fc.constantFrom(-(2 ** 31), 2 ** 31 - 1, 0))
const int8 = fc.oneof(fc.maxSafeInteger(), fc.constantFrom(-(2 ** 53) + 1, 2 ** 53 - 1, -1, 2 ** 32, -(2 ** 32) - 1, 1_780_000_000_000))
const float8 = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(Number.NaN, 0.1, -2.5, 1e300, 5e-324))

for (const backend of backends) {
  describe(`SqlArrays on ${backend.name}`, () => {
    it.live("typed-array columns come back as the values they held, NaN as NULL (property)", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const context = yield* Layer.build(storage.layer)
        const check = (ints: ReadonlyArray<number>, bigs: ReadonlyArray<number>, floats: ReadonlyArray<number>, extra: number) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient
            const a = yield* SqlArrays.forDatabase
            // Longer arrays than the column: only the first n are bound.
            const n = Math.min(ints.length, bigs.length, floats.length)
            const typed = (xs: ReadonlyArray<number>) => Float64Array.from([...xs.slice(0, n), ...Array.from({ length: extra }, () => 7)])
            const rows = yield* sql<{ i: number; b: unknown; f: number | null; o: unknown }>`
              SELECT unnest(${a.column("int4", typed(ints), n)}::int[]) AS i, unnest(${a.column("int8", typed(bigs), n)}::int8[])::text AS b,
                unnest(${a.column("float8", typed(floats), n)}::float8[]) AS f, unnest(${a.numbers([...ints.slice(0, n)])}::float8[]) AS o`
            expect(rows.map((r) => Number(r.i))).toEqual(ints.slice(0, n))
            expect(rows.map((r) => r.b)).toEqual(bigs.slice(0, n).map((b) => BigInt(b).toString()))
            expect(rows.map((r) => (r.f === null ? null : Number(r.f)))).toEqual(floats.slice(0, n).map((f) => (Number.isNaN(f) ? null : f)))
            const empty = yield* sql<{ n: number }>`SELECT cardinality(${a.column("int8", new Float64Array(3), 0)}::int8[]) AS n`
            expect(Number(empty[0]!.n)).toBe(0)
          }).pipe(Effect.provideContext(context))
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(int4, { maxLength: 40 }), fc.array(int8, { maxLength: 40 }), fc.array(float8, { maxLength: 40 }), fc.nat(3), (i, b, f, extra) =>
              Effect.runPromise(check(i, b, f, extra))),
            { numRuns: 60 }
          )
        )
      }).pipe(Effect.scoped), 60_000)

    it.live("strings come back as they were, nulls as NULL, whatever their characters (property)", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const context = yield* Layer.build(storage.layer)
        const text = fc.oneof(fc.string(), fc.string({ unit: "grapheme" }), fc.constantFrom("", "a\"b\\c", "{x,y}", "NULL", "é", "🙂 ok"))
          .filter((t) => !t.includes("\u0000"))
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(fc.option(text, { nil: null }), { maxLength: 30 }), (values) =>
              Effect.runPromise(Effect.gen(function*() {
                const sql = yield* SqlClient
                const a = yield* SqlArrays.forDatabase
                const rows = yield* sql<{ t: string | null; n: number }>`SELECT t, n FROM unnest(${a.texts(values)}::text[]) WITH ORDINALITY AS u(t, n) ORDER BY n`
                expect(rows.map((r) => r.t)).toEqual(values)
              }).pipe(Effect.provideContext(context)))),
            { numRuns: 60 }
          )
        )
      }).pipe(Effect.scoped), 60_000)

    it.effect("a value a column's type cannot hold is refused before anything is sent", () =>
      Effect.gen(function*() {
        const a = SqlArrays.literal
        expect(() => a.column("int4", Float64Array.of(2 ** 31), 1)).toThrow(RangeError)
        expect(() => SqlArrays.binary.column("int4", Float64Array.of(1.5), 1)).toThrow(/not a value of an int4 column/)
        expect(() => SqlArrays.binary.column("int8", Float64Array.of(2 ** 53), 1)).toThrow(RangeError)
        expect(() => SqlArrays.binary.column("int8", Float64Array.of(Number.NaN), 1)).toThrow(RangeError)
        // Past the first n, nothing is looked at.
        expect(() => SqlArrays.binary.column("int4", Float64Array.of(1, 1.5), 1)).not.toThrow()
      }))
  })
}
