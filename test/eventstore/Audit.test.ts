import { describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { deviceStream } from "../../src/domain/Streams.ts"
import * as Audit from "../../src/eventstore/Audit.ts"
import type { RecordedEvent } from "../../src/eventstore/Event.ts"
import { EventStore } from "../../src/eventstore/EventStore.ts"
import { inlineProjections } from "../../src/eventstore/projections/Inline.ts"
import { backends, storeLayer } from "../support/backends.ts"
import { alice, aliceStream, bob, secrets, writeWorkload } from "../support/opsWorkload.ts"

const digest = aliceStream.slice("user-".length)

/** The whole log, to compute what each query must return without the query's SQL. */
const everything = Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readAll())).pipe(Effect.map((c) => [...c]))

const positions = (page: Audit.AuditPage) => page.entries.map((e) => e.position)
const positionsOf = (events: ReadonlyArray<RecordedEvent>) => events.map((e) => e.position)

/** Every page of a query, following the cursor. */
const allPages = (query: Audit.AuditQuery) =>
  Effect.gen(function*() {
    const out: Array<Audit.AuditEntry> = []
    let after: number | undefined = undefined
    for (let pages = 0; pages < 100; pages++) {
      const page: Audit.AuditPage = yield* Audit.queryAudit({ ...query, after })
      out.push(...page.entries)
      if (page.next === undefined) return { entries: out, pages: pages + 1 }
      after = page.next
    }
    throw new Error("paging did not end")
  })

for (const backend of backends) {
  describe(`audit queries on ${backend.name}`, () => {
    it.live("select by account, device, type, address and time, page by page, with secrets masked", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          yield* writeWorkload
          const log = yield* everything
          const sql = yield* SqlClient

          // Account: its four kinds of streams, and the failed logins naming its address (any case,
          // or as a share login), nothing of bob's or mallory's.
          const mine = log.filter((e) =>
            /^(user|device|access|outbox)-/.test(e.streamId) && e.streamId.split("-")[1] === digest ||
            e.type === "LoginFailed" && ["alice@example.com", "share:alice@example.com"].includes(String((e.data as { identity: string }).identity).toLowerCase())
          )
          expect(mine.map((e) => e.streamId.split("-")[0])).toEqual(expect.arrayContaining(["user", "device", "access", "outbox", "throttle"]))
          const byAccount = yield* Audit.queryAudit({ email: "  Alice@Example.COM ", limit: 1000 })
          expect(positions(byAccount)).toEqual(positionsOf(mine))
          expect(byAccount.next).toBeUndefined()
          expect(byAccount.entries.filter((e) => e.type === "LoginFailed")).toHaveLength(2)
          expect((yield* Audit.queryAudit({ email: bob, limit: 1000 })).entries.every((e) => !e.stream.includes(digest))).toBe(true)
          // Another app name is another account.
          expect((yield* Audit.queryAudit({ email: alice, appName: "Other", limit: 1000 })).entries.map((e) => e.type)).toEqual(["LoginFailed", "LoginFailed"])

          // Paging: the pages, in order, are the whole result; each cursor is the page's last position.
          const paged = yield* allPages({ email: alice, limit: 3 })
          expect(paged.entries.map((e) => e.position)).toEqual(positionsOf(mine))
          expect(paged.pages).toBe(Math.ceil(mine.length / 3) + (mine.length % 3 === 0 ? 1 : 0))
          const first = yield* Audit.queryAudit({ email: alice, limit: 3 })
          expect(first.next).toBe(first.entries[2]!.position)

          // Device: its stream, and its account's events about it (created, reprovisioned, its notification).
          const garage = yield* Audit.queryAudit({ email: alice, dashId: 1, deviceId: 1 })
          expect(garage.entries.map((e) => e.type)).toEqual([
            "DeviceCreated",
            "PinsWritten",
            "PropertySet",
            "NotificationRequested",
            "DeviceTokenRefreshed"
          ])
          expect(garage.entries.filter((e) => e.stream.startsWith("device-")).every((e) => e.stream === deviceStream(aliceStream, 1, 1))).toBe(true)

          // Types, repeated and combined with the account.
          const revoked = yield* Audit.queryAudit({ email: alice, types: ["ShareRevoked"] })
          expect(revoked.entries.map((e) => [e.type, e.remoteAddress])).toEqual([["ShareRevoked", "10.0.0.7:5555"]])
          const several = yield* Audit.queryAudit({ types: ["ShareGranted", "PinsWritten"], limit: 1000 })
          expect(positions(several)).toEqual(positionsOf(log.filter((e) => e.type === "ShareGranted" || e.type === "PinsWritten")))

          // Address: the host part matches every port; a whole host:port only itself; a bare IPv6
          // address both its bare and its host:port form.
          const fromHost = yield* Audit.queryAudit({ address: "10.0.0.7", limit: 1000 })
          expect(positions(fromHost)).toEqual(positionsOf(log.filter((e) => e.metadata.remoteAddress?.startsWith("10.0.0.7:"))))
          expect(fromHost.entries.some((e) => e.type === "ShareRevoked")).toBe(true)
          expect(fromHost.entries.some((e) => e.stream.startsWith("device-") && !e.stream.includes(digest))).toBe(true)
          const exact = yield* Audit.queryAudit({ address: "10.0.0.7:6000" })
          expect(exact.entries.map((e) => e.remoteAddress)).toEqual(["10.0.0.7:6000"])
          const loopback = yield* Audit.queryAudit({ address: "::1" })
          expect(loopback.entries.map((e) => e.remoteAddress)).toEqual(["::1", "::1:5000"])
          // Address and account together: both must hold.
          const aliceFrom7 = yield* Audit.queryAudit({ email: alice, address: "10.0.0.7", limit: 1000 })
          expect(aliceFrom7.entries.length).toBeGreaterThan(0)
          expect(aliceFrom7.entries.every((e) => e.stream.includes(digest) && e.remoteAddress?.startsWith("10.0.0.7:"))).toBe(true)

          // Time: recorded_at >= since and < until. The log's times are the database's; give
          // three events known ones.
          const [a, b, c] = mine
          yield* sql`UPDATE pl_events SET recorded_at = '2025-01-01T00:00:00Z' WHERE position = ${a!.position}`
          yield* sql`UPDATE pl_events SET recorded_at = '2025-06-01T00:00:00Z' WHERE position = ${b!.position}`
          yield* sql`UPDATE pl_events SET recorded_at = '2025-12-31T23:59:59Z' WHERE position = ${c!.position}`
          const in2025 = yield* Audit.queryAudit({ email: alice, since: new Date("2025-01-01"), until: new Date("2026-01-01") })
          expect(positions(in2025)).toEqual([a!.position, b!.position, c!.position])
          const firstHalf = yield* Audit.queryAudit({ since: new Date("2025-01-01T00:00:01Z"), until: new Date("2025-12-31T23:59:59Z") })
          expect(positions(firstHalf)).toEqual([b!.position])

          // Secrets: no token, clone code, hash or digest anywhere in what an audit gives.
          const shown = JSON.stringify((yield* Audit.queryAudit({ limit: 1000 })).entries)
          for (const secret of [...secrets.deviceTokens, ...secrets.shareTokens, secrets.cloneCode, secrets.passwordHash, secrets.resetDigest]) {
            expect(shown).not.toContain(secret)
          }
          const created = byAccount.entries.find((e) => e.type === "DeviceCreated")!
          expect(created.data).toMatchObject({ token: Audit.MASK, name: "Kitchen" })
          expect(created.summary).toContain("token=***")
          const line = Audit.formatLine(revoked.entries[0]!)
          expect(line).toMatch(/^\d+ \d{4}-\d\d-\d\dT[\d:.]+Z user-[0-9a-f]{40} ShareRevoked actor=app:alice@example\.com from=10\.0\.0\.7:5555 dashId=1$/)
          const writes = (yield* Audit.queryAudit({ email: alice, types: ["PinsWritten"] })).entries[0]!
          expect(writes.summary).toContain("writes=2 v1=21.5 v2=on")

          // Bad queries are refused with a reason, not run.
          const refused = yield* Effect.flip(Audit.queryAudit({ dashId: 1, deviceId: 0 }))
          expect(refused.reason).toMatch(/give the account's email with dash and device/)
          expect((yield* Effect.flip(Audit.queryAudit({ email: alice, deviceId: 0 }))).reason).toMatch(/named by both dash and device/)
          expect((yield* Effect.flip(Audit.queryAudit({ address: " " }))).reason).toMatch(/address is empty/)
          const backwards = { since: new Date("2026-02-01"), until: new Date("2026-01-01") }
          expect((yield* Effect.flip(Audit.queryAudit(backwards))).reason).toMatch(/since must be before until/)
          expect((yield* Effect.flip(Audit.queryAudit({ limit: 0 })))._tag).toBe("AuditQueryInvalid")
        }).pipe(Effect.provide(storeLayer(storage, { inline: inlineProjections })))
      }))

    it.live("each selector walks its own index (the expressions match the migration's)", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          yield* writeWorkload
          const sql = yield* SqlClient
          // An address trying many e-mails (as an attack does), so that the failures of one e-mail
          // are best found by what was tried rather than by type; then statistics for the planner.
          yield* sql`INSERT INTO pl_events (stream_id, stream_version, event_type, schema_version, data, metadata)
            SELECT 'throttle-login-10.9.9.9', n, 'LoginFailed', 1,
              jsonb_build_object('kind', 'login', 'address', '10.9.9.9', 'identity', 'user' || n || '@example.com', 'at', n),
              '{"time":"2026-03-01T10:00:00.000Z"}'::jsonb
            FROM generate_series(1, 2000) AS n`
          yield* sql`ANALYZE pl_events`
          const plan = (query: Audit.AuditQuery) =>
            sql.withTransaction(Effect.gen(function*() {
              // A tiny table is cheapest to read whole; forbid that, so the plan shows which indexes fit.
              yield* sql`SET LOCAL enable_seqscan = off`
              return (yield* Audit.explainAudit(query)).join("\n")
            }))
          expect(yield* plan({ email: bob, dashId: 1, deviceId: 0 })).toMatch(/pl_events_stream_version|pl_events_account/)
          const account = yield* plan({ email: alice })
          expect(account).toContain("pl_events_account")
          expect(account).toContain("pl_events_login_identity")
          expect(yield* plan({ address: "10.0.0.7" })).toContain("pl_events_remote_host")
          expect(yield* plan({ types: ["ShareRevoked"] })).toContain("pl_events_type")
          expect(yield* plan({ since: new Date("2026-01-01"), until: new Date("2026-02-01") })).toMatch(/pl_events_recorded_at|pl_events_pkey/)
        }).pipe(Effect.provide(storeLayer(storage, { inline: inlineProjections })))
      }))
  })
}
