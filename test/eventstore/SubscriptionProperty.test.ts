import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Stream } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import fc from "fast-check"
import type { Database } from "../../src/eventstore/Database.ts"
import type { Metadata } from "../../src/eventstore/Event.ts"
import { EventStore } from "../../src/eventstore/EventStore.ts"
import { backends, storeLayer } from "../support/backends.ts"
import { testProjection } from "../support/projection.ts"

const meta: Metadata = { time: "2026-11-22T10:00:00.000Z", actor: "prop" }

interface Op {
  readonly stream: number
  readonly events: number
  readonly exact: boolean
}

const op = fc.record({ stream: fc.integer({ min: 0, max: 5 }), events: fc.integer({ min: 1, max: 4 }), exact: fc.boolean() })

let run = 0

for (const backend of backends) {
  describe(`subscriptions on ${backend.name}`, () => {
    it.live("see every committed event exactly once, per-stream versions contiguous, also past a transaction held open", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const context = yield* Layer.build(storeLayer(storage))

        const scenario = (ops: ReadonlyArray<Op>, appenders: number, holdAfter: number) =>
          Effect.gen(function*() {
            const store = yield* EventStore
            const sql = yield* SqlClient
            const prefix = `p${++run}`
            const projection = yield* testProjection(`prop_${prefix}`)
            const subscriber = yield* Effect.forkChild(projection.run)

            const append = (o: Op) =>
              Effect.gen(function*() {
                const stream = `${prefix}-s${o.stream}`
                const expected = o.exact ? yield* store.streamVersion(stream) : "any" as const
                const events = Array.from({ length: o.events }, (_, i) => ({ type: "Noted", schemaVersion: 1, data: { i } }))
                return yield* Effect.exit(store.append(stream, expected, events, meta))
              })
            const lanes = Array.from({ length: appenders }, (_, lane) => ops.filter((_, i) => i % appenders === lane))
            const appendAll = (from: number, to: number) =>
              Effect.forEach(lanes, (lane) => Effect.forEach(lane.slice(from, to), append), { concurrency: "unbounded" })

            yield* appendAll(0, holdAfter)
            // A foreign writer takes a position, then holds its transaction open while others commit
            // higher positions: a subscriber reading by position alone would skip its event.
            const inserted = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            const held = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
              yield* sql`INSERT INTO pl_events (stream_id, stream_version, event_type, schema_version, data, metadata)
                VALUES (${`${prefix}-held`}, 1, 'Held', 1, '{}'::jsonb, ${JSON.stringify(meta)}::jsonb)`
              yield* Deferred.succeed(inserted, undefined)
              yield* Deferred.await(release)
            })))
            yield* Deferred.await(inserted)
            const rest = yield* Effect.forkChild(appendAll(holdAfter, Infinity))
            // PGlite has one connection: nothing else runs while the transaction is open, so there
            // the later appends wait for it instead of overtaking it.
            if (backend.name === "postgres") yield* Fiber.join(rest)
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(held)
            yield* Fiber.join(rest)

            const all = yield* Stream.runCollect(store.readAll())
            yield* projection.awaitTotal(all.length)
            const rows = yield* projection.rows
            yield* Fiber.interrupt(subscriber)

            expect(rows.length).toBe(all.length)
            expect(new Set(rows.map((r) => r.position))).toEqual(new Set(all.map((e) => e.position)))
            expect(rows.some((r) => r.streamId === `${prefix}-held`)).toBe(true)
            const streams = new Set(rows.map((r) => r.streamId))
            for (const stream of streams) {
              const versions = rows.filter((r) => r.streamId === stream).map((r) => r.version)
              expect(versions).toEqual(Array.from({ length: versions.length }, (_, i) => i + 1))
            }
          })

        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(
              fc.array(op, { minLength: 1, maxLength: 40 }),
              fc.integer({ min: 1, max: 8 }),
              fc.integer({ min: 0, max: 10 }),
              (ops, appenders, holdAfter) =>
                Effect.runPromise(scenario(ops, appenders, holdAfter).pipe(Effect.scoped, Effect.provideContext(context)))
            ),
            { numRuns: 12 }
          )
        )
      }))
  })
}

