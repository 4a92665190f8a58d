import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Stream } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { Database } from "../../src/eventstore/Database.ts"
import type { Metadata } from "../../src/eventstore/Event.ts"
import { EventStore } from "../../src/eventstore/EventStore.ts"
import { migrate } from "../../src/eventstore/Migrations.ts"
import { backends, storeLayer } from "../support/backends.ts"
import { testProjection } from "../support/projection.ts"

const meta: Metadata = { time: "2026-11-22T10:00:00.000Z", actor: "user-1", remoteAddress: "127.0.0.1" }
const pin = (value: number) => ({ type: "PinWritten", schemaVersion: 1, data: { pin: "v1", value } })

const readAll = Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readAll()))
const readStream = (stream: string) => Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readStream(stream)))

for (const backend of backends) {
  describe(`event store on ${backend.name}`, () => {
    /** Runs `program` against a fresh, migrated store. */
    const withStore = <A, E>(program: Effect.Effect<A, E, EventStore | SqlClient | Database>) =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        return yield* program.pipe(Effect.provide(storeLayer(storage)))
      })

    it.live("appends and reads back a stream and the whole log", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        const a = yield* store.append("device-1", "noStream", [pin(1), pin(2)], meta)
        const b = yield* store.append("device-2", "any", [pin(3)], meta)
        const c = yield* store.append("device-1", 2, [pin(4)], meta)
        expect(a.version).toBe(2)
        expect(c.version).toBe(3)
        expect(a.positions.length).toBe(2)
        expect(a.positions[0]! < a.positions[1]! && a.positions[1]! < b.positions[0]!).toBe(true)
        const stream = yield* readStream("device-1")
        expect(stream.map((e) => [e.version, (e.data as { value: number }).value])).toEqual([[1, 1], [2, 2], [3, 4]])
        expect(stream[0]!.metadata).toEqual(meta)
        expect(stream[0]!.type).toBe("PinWritten")
        expect(stream[0]!.recordedAt).toBeInstanceOf(Date)
        const all = yield* readAll
        expect(all.map((e) => e.position)).toEqual([...a.positions, ...b.positions, ...c.positions])
        expect(yield* store.head).toBe(c.positions[0])
        expect(yield* store.streamVersion("device-1")).toBe(3)
        expect(yield* store.streamVersion("nope")).toBe(0)
        const tail = yield* Effect.flatMap(EventStore, (s) => Stream.runCollect(s.readStream("device-1", 3)))
        expect(tail.map((e) => e.version)).toEqual([3])
      })))

    it.live("refuses an append at the wrong expected version and writes nothing", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        yield* store.append("s", "noStream", [pin(1)], meta)
        const again = yield* Effect.flip(store.append("s", "noStream", [pin(2)], meta))
        expect(again._tag).toBe("WrongExpectedVersion")
        const stale = yield* Effect.flip(store.append("s", 0, [pin(2)], meta))
        expect(stale).toMatchObject({ _tag: "WrongExpectedVersion", stream: "s", expected: 0, actual: 1 })
        const ahead = yield* Effect.flip(store.append("s", 5, [pin(2)], meta))
        expect(ahead).toMatchObject({ _tag: "WrongExpectedVersion", actual: 1 })
        expect((yield* readStream("s")).length).toBe(1)
        const ok = yield* store.append("s", 1, [pin(2)], meta)
        expect(ok.version).toBe(2)
      })))

    it.live("batches concurrent appends, and a conflicting one fails alone", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        const distinct = yield* Effect.forEach(
          Array.from({ length: 300 }, (_, i) => i),
          (i) => store.append(`d-${i}`, "noStream", [pin(i)], meta),
          { concurrency: "unbounded" }
        )
        expect(new Set(distinct.map((r) => r.positions[0])).size).toBe(300)
        // 40 racers want to create the same stream; exactly one may.
        const racers = yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => Effect.exit(store.append("contested", "noStream", [pin(i)], meta)),
          { concurrency: "unbounded" }
        )
        expect(racers.filter(Exit.isSuccess).length).toBe(1)
        const failures = racers.filter(Exit.isFailure)
        expect(failures.length).toBe(39)
        expect((yield* readStream("contested")).length).toBe(1)
        // With `any`, all of them land, with contiguous versions.
        yield* Effect.forEach(
          Array.from({ length: 40 }, (_, i) => i),
          (i) => store.append("shared", "any", [pin(i), pin(i)], meta),
          { concurrency: "unbounded" }
        )
        expect((yield* readStream("shared")).map((e) => e.version)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1))
      })))

    it.live("appends sent without waiting commit in the order they were queued, across writers", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          const store = yield* EventStore
          // Small batches, several writers: many transactions in flight for the same streams.
          const fibers = yield* Effect.forEach(
            Array.from({ length: 120 }, (_, i) => i),
            (i) => Effect.forkChild(store.append(`ordered-${i % 3}`, "any", [pin(i)], meta), { startImmediately: true })
          )
          yield* Effect.forEach(fibers, Fiber.join)
          for (let s = 0; s < 3; s++) {
            const values = (yield* readStream(`ordered-${s}`)).map((e) => (e.data as { value: number }).value)
            expect(values).toEqual(Array.from({ length: 40 }, (_, k) => k * 3 + s))
          }
        }).pipe(Effect.provide(storeLayer(storage, { writers: 3, maxBatch: 4 })))
      }))

    it.live("rejects bad input with a typed error and writes nothing", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        const bad = [
          store.append("s", "any", [{ type: "bad type!", schemaVersion: 1, data: {} }], meta),
          store.append("s", "any", [{ type: "T", schemaVersion: 0, data: {} }], meta),
          store.append("s", "any", [{ type: "T", schemaVersion: 1, data: { n: 1n } }], meta),
          store.append("s", "any", [{ type: "T", schemaVersion: 1, data: { s: "a\u0000b" } }], meta),
          store.append("s", "any", [], meta),
          store.append("", "any", [pin(1)], meta),
          store.append("s", "any", [pin(1)], { ...meta, time: "yesterday" })
        ]
        for (const attempt of bad) {
          const error = yield* Effect.flip(attempt)
          expect(error._tag).toBe("InvalidEvent")
        }
        // A bad append among good ones in flight fails alone.
        const mixed = yield* Effect.all([
          Effect.exit(store.append("g1", "any", [pin(1)], meta)),
          Effect.exit(store.append("g2", "any", [{ type: "T", schemaVersion: 1, data: "\u0000" }], meta)),
          Effect.exit(store.append("g3", "any", [pin(1)], meta))
        ], { concurrency: "unbounded" })
        expect(mixed.map(Exit.isSuccess)).toEqual([true, false, true])
        // A lone surrogate passes JSON.stringify but the database refuses it: the batch is retried
        // request by request, so only that one fails.
        const refused = yield* Effect.all([
          Effect.exit(store.append("g4", "any", [pin(1)], meta)),
          Effect.exit(store.append("g5", "any", [{ type: "T", schemaVersion: 1, data: { s: "\ud800" } }], meta)),
          Effect.exit(store.append("g6", "any", [pin(1)], meta))
        ], { concurrency: "unbounded" })
        expect(refused.map(Exit.isSuccess)).toEqual([true, false, true])
        const lone = yield* Effect.flip(store.append("g7", "any", [{ type: "T", schemaVersion: 1, data: "\udc00" }], meta))
        expect(lone._tag).toBe("InvalidEvent")
        expect((yield* readAll).map((e) => e.streamId)).toEqual(["g1", "g3", "g4", "g6"])
      })))

    if (backend.name === "postgres") {
      it.live("losing the database mid-append fails each waiting caller with a typed error; the writer recovers", () =>
        withStore(Effect.gen(function*() {
          const store = yield* EventStore
          const sql = yield* SqlClient
          yield* store.append("before", "any", [pin(0)], meta)
          // Another session blocks inserts into the log, so the next batch waits inside its transaction.
          const locked = yield* Deferred.make<number>()
          const release = yield* Deferred.make<void>()
          const blocker = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
            yield* sql`LOCK TABLE pl_events IN EXCLUSIVE MODE`
            const rows = yield* sql<{ pid: unknown }>`SELECT pg_backend_pid() AS pid`
            yield* Deferred.succeed(locked, Number(rows[0]!.pid))
            yield* Deferred.await(release)
          })))
          const blockerPid = yield* Deferred.await(locked)
          const waiting = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => Effect.forkChild(Effect.exit(store.append(`lost-${i}`, "any", [pin(i)], meta)), { startImmediately: true })
          )
          // The writer's session, stuck behind our lock; cut it off as a failing server would.
          let victims: ReadonlyArray<{ pid: unknown }> = []
          while (victims.length === 0) {
            victims = yield* sql<{ pid: unknown }>`
              SELECT pid FROM pg_stat_activity WHERE ${blockerPid}::int = ANY(pg_blocking_pids(pid))`
            if (victims.length === 0) yield* Effect.sleep("10 millis") // polling another process's state
          }
          yield* sql`SELECT pg_terminate_backend(${Number(victims[0]!.pid)}::int)`
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(blocker)
          const exits = yield* Effect.forEach(waiting, Fiber.join)
          const failed = exits.filter(Exit.isFailure)
          expect(failed.length).toBeGreaterThan(0)
          for (const exit of failed) {
            expect(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Fail" && r.error._tag === "EventStoreUnavailable"))
              .toBe(true)
          }
          // Whatever was reported done is in the log; whatever failed is not.
          const logged = new Set((yield* readAll).map((e) => e.streamId))
          exits.forEach((exit, i) => expect(logged.has(`lost-${i}`)).toBe(Exit.isSuccess(exit)))
          // The writer carries on with fresh connections.
          const after = yield* store.append("after", "noStream", [pin(1)], meta)
          expect(after.version).toBe(1)
        })))
    }

    it.live("migrating an up-to-date database is a no-op", () =>
      withStore(Effect.gen(function*() {
        const sql = yield* SqlClient
        expect(yield* migrate).toEqual([])
        const rows = yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pl_schema_migrations`
        expect(Number(rows[0]!.n)).toBeGreaterThan(0)
        expect(yield* migrate).toEqual([])
        const again = yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pl_schema_migrations`
        expect(Number(again[0]!.n)).toBe(Number(rows[0]!.n))
      })))

    it.live("keeps the log across close and reopen", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const first = yield* Effect.gen(function*() {
          const store = yield* EventStore
          yield* store.append("device-9", "noStream", [pin(1), pin(2)], meta)
          return yield* store.head
        }).pipe(Effect.provide(storeLayer(storage)))
        const second = yield* Effect.gen(function*() {
          const store = yield* EventStore
          expect(yield* store.head).toBe(first)
          expect((yield* readStream("device-9")).map((e) => e.version)).toEqual([1, 2])
          yield* store.append("device-9", 2, [pin(3)], meta)
          return yield* store.streamVersion("device-9")
        }).pipe(Effect.provide(storeLayer(storage)))
        expect(second).toBe(3)
      }))

    it.live("closing the store commits the appends still queued", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const layer = storeLayer(storage)
        const fibers = yield* Effect.gen(function*() {
          const store = yield* EventStore
          // Started at once, each append is queued before the next line; none is awaited, so
          // the scope closes with them still queued.
          return yield* Effect.forEach(
            Array.from({ length: 50 }, (_, i) => i),
            (i) => Effect.forkDetach(store.append(`q-${i}`, "any", [pin(i)], meta), { startImmediately: true })
          )
        }).pipe(Effect.provide(layer))
        const results = yield* Effect.forEach(fibers, Fiber.join)
        expect(results.every((r) => r.version === 1)).toBe(true)
        const count = yield* Effect.map(readAll, (all) => all.length).pipe(Effect.provide(layer))
        expect(count).toBe(50)
      }))

    it.live("a subscription catches up, follows the live tail, and stores its checkpoint with the projection", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        const sql = yield* SqlClient
        for (let i = 0; i < 120; i++) yield* store.append(`s-${i % 7}`, "any", [pin(i)], meta)
        // No polling to speak of: the live tail must come from NOTIFY.
        const projection = yield* testProjection("catchup", { pollInterval: "1 hour" })
        const fiber = yield* Effect.forkChild(projection.run)
        yield* projection.awaitTotal(120)
        yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), (i) => store.append(`live-${i}`, "any", [pin(i)], meta), {
          concurrency: 10
        })
        yield* projection.awaitTotal(150)
        const rows = yield* projection.rows
        const all = yield* readAll
        expect([...rows.map((r) => r.position)].sort((a, b) => a - b)).toEqual(all.map((e) => e.position))
        const checkpoint = yield* sql<{ position: unknown }>`SELECT position FROM pl_checkpoints WHERE subscriber = 'catchup'`
        expect(Number(checkpoint[0]!.position)).toBe(Math.max(...rows.map((r) => r.position)))
        yield* Fiber.interrupt(fiber)
      })))

    it.live("a subscription finds by polling what no notification announced", () =>
      withStore(Effect.gen(function*() {
        const sql = yield* SqlClient
        const projection = yield* testProjection("polled", { pollInterval: "50 millis" })
        const fiber = yield* Effect.forkChild(projection.run)
        // A writer that does not NOTIFY (as after a lost listening connection).
        yield* sql`INSERT INTO pl_events (stream_id, stream_version, event_type, schema_version, data, metadata)
          VALUES ('quiet', 1, 'T', 1, '{}'::jsonb, ${JSON.stringify(meta)}::jsonb)`
        yield* projection.awaitTotal(1)
        expect((yield* projection.rows).map((r) => r.streamId)).toEqual(["quiet"])
        yield* Fiber.interrupt(fiber)
      })))

    it.live("a subscription orders transactions by id as numbers, not as text", () =>
      withStore(Effect.gen(function*() {
        const sql = yield* SqlClient
        // Two settled transactions whose ids differ in their number of digits; the later one has
        // the lower position.
        yield* sql`INSERT INTO pl_events (tx_id, stream_id, stream_version, event_type, schema_version, data, metadata)
          VALUES ('10'::xid8, 'digits', 2, 'T', 1, '{}'::jsonb, ${JSON.stringify(meta)}::jsonb),
                 ('9'::xid8, 'digits', 1, 'T', 1, '{}'::jsonb, ${JSON.stringify(meta)}::jsonb)`
        const projection = yield* testProjection("digits", { batchSize: 1 })
        const fiber = yield* Effect.forkChild(projection.run)
        yield* projection.awaitTotal(2)
        expect((yield* projection.rows).map((r) => r.version)).toEqual([1, 2])
        yield* Fiber.interrupt(fiber)
      })))

    it.live("a subscriber killed and restarted continues from its checkpoint with no loss and no duplicate", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        const projection = yield* testProjection("restart")
        for (let i = 0; i < 100; i++) yield* store.append(`r-${i % 5}`, "any", [pin(i)], meta)
        const first = yield* Effect.forkChild(projection.run)
        yield* projection.awaitTotal(50)
        yield* Fiber.interrupt(first)
        for (let i = 100; i < 160; i++) yield* store.append(`r-${i % 5}`, "any", [pin(i)], meta)
        const second = yield* Effect.forkChild(projection.run)
        yield* projection.awaitTotal(160)
        const rows = yield* projection.rows
        expect(rows.length).toBe(160)
        expect(new Set(rows.map((r) => r.position)).size).toBe(160)
        // Per stream, versions arrive contiguous and in order.
        for (let s = 0; s < 5; s++) {
          const versions = rows.filter((r) => r.streamId === `r-${s}`).map((r) => r.version)
          expect(versions).toEqual(Array.from({ length: versions.length }, (_, i) => i + 1))
        }
        yield* Fiber.interrupt(second)
      })))

    it.live("a failing handler rolls its batch back and the subscriber retries it", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        let failures = 0
        const projection = yield* testProjection("flaky", {
          fail: (e) => e.version === 3 && failures++ < 2
        })
        for (let i = 0; i < 10; i++) yield* store.append("flaky", "any", [pin(i)], meta)
        const fiber = yield* Effect.forkChild(projection.run)
        yield* projection.awaitTotal(10)
        expect(failures).toBe(3)
        expect((yield* projection.rows).map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        yield* Fiber.interrupt(fiber)
      })))

    it.live("two instances of one subscriber never project an event twice", () =>
      withStore(Effect.gen(function*() {
        const store = yield* EventStore
        const projection = yield* testProjection("twins", { unkeyed: true })
        const a = yield* Effect.forkChild(projection.run)
        const b = yield* Effect.forkChild(projection.run)
        yield* Effect.forEach(Array.from({ length: 200 }, (_, i) => i), (i) => store.append(`t-${i % 9}`, "any", [pin(i)], meta), {
          concurrency: 20
        })
        yield* projection.awaitTotal(200)
        const rows = yield* projection.rows
        expect(rows.length).toBe(200)
        expect(new Set(rows.map((r) => r.position)).size).toBe(200)
        yield* Fiber.interrupt(a)
        yield* Fiber.interrupt(b)
      })))
  })
}
