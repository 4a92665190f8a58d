import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schedule } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { DeviceEvent, PinsWritten } from "../../src/domain/Pins.ts"
import { deviceStream } from "../../src/domain/Streams.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"
import { inlineProjections } from "../../src/eventstore/projections/Inline.ts"
import * as PinHistory from "../../src/eventstore/projections/PinHistory.ts"
import { PinState, PinStateFold } from "../../src/eventstore/projections/PinState.ts"
import * as Replay from "../../src/eventstore/Replay.ts"
import { loadCheckpoint, origin, saveCheckpoint } from "../../src/eventstore/Subscription.ts"
import * as Verify from "../../src/eventstore/Verify.ts"
import { backends, storeLayer } from "../support/backends.ts"
import { account, alice, aliceStream, at, projectionTables, writeWorkload } from "../support/opsWorkload.ts"
import { testProjection } from "../support/projection.ts"

const devices = EventCodec.typed(EventCodec.make(DeviceEvent))
const kitchen = deviceStream(aliceStream, 1, 0)

/** Damage in each inline projection: a changed row, a missing row, an extra row. */
const corrupt = Effect.gen(function*() {
  const sql = yield* SqlClient
  yield* sql`UPDATE pl_pin_state SET vals = '["999"]'::jsonb WHERE account_stream = ${aliceStream} AND pin_key = '1-0-v1'`
  yield* sql`DELETE FROM pl_device_tokens WHERE device_id = 0 AND account_stream = ${aliceStream}`
  yield* sql`INSERT INTO pl_permissions (account_stream, dash_id, share_token, shared) VALUES ('user-nobody', 7, NULL, true)`
})

/**
 * Waits until `condition` holds: used only for what no event announces (another session waiting
 * on a lock), with a bound so that a wait that never comes fails with `what`.
 */
const until = (what: string, condition: Effect.Effect<boolean, unknown, SqlClient>) =>
  condition.pipe(
    Effect.flatMap((ok) => (ok ? Effect.void : Effect.fail("not yet" as const))),
    Effect.retry(Schedule.spaced("20 millis")),
    Effect.timeoutOrElse({ duration: "15 seconds", orElse: () => Effect.die(new Error(`never happened: ${what}`)) })
  )

const waitingOn = (table: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = ${table}::regclass`
    return Number(rows[0]?.n ?? 0) > 0
  })

for (const backend of backends) {
  describe(`replay and verify on ${backend.name}`, () => {
    it.live("verify finds each damaged row and changes nothing; replay repairs them, one projection or all", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          const sql = yield* SqlClient
          yield* writeWorkload
          const clean = yield* Verify.verify()
          expect(clean.differences).toBe(0)
          expect(clean.tables.map((t) => t.table)).toEqual(inlineProjections.flatMap((p) => p.tables))
          const good = yield* projectionTables
          expect(good["pl_device_tokens"]).toHaveLength(3)
          expect(good["pl_pin_state"]!.length).toBeGreaterThan(0)

          yield* corrupt
          const damaged = yield* projectionTables
          const report = yield* Verify.verify()
          expect(report.differences).toBe(3)
          const byTable = Object.fromEntries(report.tables.map((t) => [t.table, [t.missing, t.extra, t.different]]))
          expect(byTable).toEqual({
            pl_device_tokens: [1, 0, 0],
            pl_pin_state: [0, 0, 1],
            pl_permissions: [0, 1, 0],
            pl_clone_codes: [0, 0, 0],
            pl_account_tokens: [0, 0, 0]
          })
          const pin = report.tables.find((t) => t.table === "pl_pin_state")!.examples[0]!
          expect(pin).toMatchObject({ kind: "different", live: { vals: ["999"] }, rebuilt: { vals: ["21.5"] } })
          // The missing row's key is a device token: masked in the report.
          const token = report.tables.find((t) => t.table === "pl_device_tokens")!.examples[0]!
          expect(token).toMatchObject({ kind: "missing", rebuilt: { token: "***", device_id: 0 } })
          const text = Verify.formatReport(report).join("\n")
          expect(text).toContain("pin-state: pl_pin_state: 0 missing, 0 extra, 1 different")
          expect(text).toContain("verify: 3 difference(s)")
          // Verify rolled its rebuild back: the damage is still there.
          expect(yield* projectionTables).toEqual(damaged)

          // One projection: only its tables are rebuilt.
          const one = yield* Replay.replay("pin-state")
          expect(one.map((r) => r.name)).toEqual(["pin-state"])
          const after = yield* projectionTables
          expect(after["pl_pin_state"]).toEqual(good["pl_pin_state"])
          expect(after["pl_device_tokens"]).toEqual(damaged["pl_device_tokens"])
          // All of them, the asynchronous pin history included.
          const all = yield* Replay.replay()
          expect(all.map((r) => `${r.name}:${r.kind}`)).toEqual([
            ...inlineProjections.map((p) => `${p.name}:inline`),
            "pin-history:async"
          ])
          expect(yield* projectionTables).toEqual(good)
          expect((yield* Verify.verify()).differences).toBe(0)
          // The rows it reports for the pin history (counted as it wrote them) are the tables'.
          const historyRows = yield* sql<{ n: unknown }>`SELECT ((SELECT count(*) FROM pl_history_series) + (SELECT count(*) FROM pl_history_raw) +
            (SELECT count(*) FROM pl_history_minute) + (SELECT count(*) FROM pl_history_hour) + (SELECT count(*) FROM pl_history_day)) AS n`
          expect(all.find((r) => r.name === "pin-history")?.rows).toBe(Number(historyRows[0]!.n))
          // Five pins written, four of them numbers (kept for ever as day rollups; the raw samples
          // of March are past their retention).
          const history = yield* sql<{ series: unknown; days: unknown }>`
            SELECT (SELECT count(*) FROM pl_history_series) AS series, (SELECT count(*) FROM pl_history_day) AS days`
          expect([Number(history[0]!.series), Number(history[0]!.days)]).toEqual([5, 4])

          // The notification sender is not replayed (its checkpoint says what was sent), nor is a name nobody knows.
          yield* saveCheckpoint("notification-outbox", origin, { txId: 5n, position: 3 })
          const refused = yield* Effect.flip(Replay.replay("notification-outbox"))
          expect(refused.reason).toContain("would send mails again")
          expect(yield* loadCheckpoint("notification-outbox")).toEqual({ txId: 5n, position: 3 })
          yield* Replay.replay()
          expect(yield* loadCheckpoint("notification-outbox")).toEqual({ txId: 5n, position: 3 })
          expect((yield* Effect.flip(Replay.replay("pin_state"))).reason).toContain("device-tokens, pin-state")
        }).pipe(Effect.provide(storeLayer(storage, { inline: inlineProjections })))
      }))

    it.live("every projection: pin-state is folded from the pin history's read, then what came after that read under the lock", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          yield* writeWorkload
          const fold = new PinStateFold()
          const history = yield* PinHistory.rebuild({ also: { types: PinState.types, take: (events) => fold.add(events) } })
          // After that read: a write overwriting one it folded, a new pin, a property, and the
          // deletion of a device whose values it folded.
          yield* devices.append(kitchen, "any", [
            new PinsWritten({ dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 1, "30"], ["v", 1, "31"], ["v", 9, "x"]] })
          ], at())
          yield* account(alice, [{ _tag: "DeleteDevice", dashId: 1, deviceId: 1 }], at(undefined, "cli"))
          const live = yield* projectionTables
          const state = (live["pl_pin_state"] as ReadonlyArray<string>).map((r) => JSON.parse(r) as { pin_key: string; vals: unknown })
          expect(state.some((r) => r.pin_key === "1-0-v1" && JSON.stringify(r.vals) === '["31"]')).toBe(true)
          expect(state.some((r) => r.pin_key.startsWith("1-1-"))).toBe(false)
          yield* Replay.replayInline(inlineProjections, { fold, horizon: history.horizon })
          expect(yield* projectionTables).toEqual(live)
          expect((yield* Verify.verify()).differences).toBe(0)
          // And what the command does, from scratch: the same.
          yield* Replay.replay()
          expect(yield* projectionTables).toEqual(live)
        }).pipe(Effect.provide(storeLayer(storage, { inline: inlineProjections })))
      }))

    it.live("a subscriber sent back to the start re-reads the log into emptied tables, even while it runs", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.scoped(Effect.gen(function*() {
          yield* writeWorkload
          const projection = yield* testProjection("replayed", { batchSize: 5, pollInterval: "100 millis" })
          const sql = yield* SqlClient
          const head = Number((yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pl_events`)[0]!.n)
          yield* Effect.forkScoped(projection.run)
          yield* projection.awaitTotal(head)
          const before = yield* projection.rows
          expect(before).toHaveLength(head)
          yield* Replay.resetSubscriber("replayed", [projection.table])
          expect(yield* projection.rows).toEqual([])
          // A running subscriber learns of it at its next batch: its checkpoint's compare-and-set
          // fails, the batch is rolled back, and it starts again from the stored checkpoint.
          const more = yield* devices.append(kitchen, "any", [
            new PinsWritten({ dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 5, "1"]] })
          ], at())
          // Delivered again: every event once more (the table's key refuses a double), in order.
          yield* projection.awaitTotal(2 * head + 1)
          const again = yield* projection.rows
          expect(again.map((r) => r.position)).toEqual([...before.map((r) => r.position), more.positions[0]])
          expect(yield* loadCheckpoint("replayed")).not.toEqual(origin)
        }).pipe(Effect.provide(storeLayer(storage, { inline: inlineProjections }))))
      }))

    if (backend.name === "postgres") {
      it.live("while a server appends: the rebuild holds appends back, and an append made meanwhile lands in the rebuilt tables", () =>
        Effect.gen(function*() {
          const storage = yield* backend.storage
          yield* Effect.gen(function*() {
            const sql = yield* SqlClient
            yield* writeWorkload
            // Another session holds the last projection's table, so the replay stops halfway, with
            // its lock on the log taken and three projections already rebuilt (not committed).
            const release = yield* Deferred.make<void>()
            const holding = yield* Deferred.make<void>()
            const holder = yield* Effect.forkChild(sql.withTransaction(Effect.gen(function*() {
              yield* sql`LOCK TABLE pl_account_tokens IN ACCESS EXCLUSIVE MODE`
              yield* Deferred.succeed(holding, undefined)
              yield* Deferred.await(release)
            })))
            yield* Deferred.await(holding)
            // However this ends, the other session lets go (else the schema could not be dropped).
            yield* Effect.addFinalizer(() => Deferred.succeed(release, undefined))
            const replaying = yield* Effect.forkChild(Replay.replayInline())
            yield* until("the replay waits for pl_account_tokens", waitingOn("pl_account_tokens"))
            const head = (yield* sql<{ n: unknown }>`SELECT max(position) AS n FROM pl_events`)[0]!.n

            // A device writes a pin nobody wrote before: its append must wait for the replay.
            const appending = yield* Effect.forkChild(devices.append(kitchen, "any", [
              new PinsWritten({ dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 99, "late"]] })
            ], at()))
            yield* until("the append waits for the replay's lock on pl_events", waitingOn("pl_events"))
            expect(appending.pollUnsafe()).toBeUndefined()
            expect((yield* sql<{ n: unknown }>`SELECT max(position) AS n FROM pl_events`)[0]!.n).toEqual(head)

            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(holder)
            const rebuilt = yield* Fiber.join(replaying)
            expect(rebuilt.map((r) => r.name)).toEqual(inlineProjections.map((p) => p.name))
            const appended = yield* Fiber.join(appending)
            expect(appended.positions[0]).toBeGreaterThan(Number(head))
            // Applied after the rebuild committed, so it is there, and everything agrees with the log.
            const late = yield* sql<{ vals: unknown }>`SELECT vals FROM pl_pin_state WHERE account_stream = ${aliceStream} AND pin_key = '1-0-v99'`
            expect(late.map((r) => r.vals)).toEqual([["late"]])
            expect((yield* Verify.verify({ projections: [PinState] })).differences).toBe(0)
            expect((yield* Verify.verify()).differences).toBe(0)
          }).pipe(Effect.scoped, Effect.provide(storeLayer(storage, { inline: inlineProjections })))
        }))
    }
  })
}
