import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import * as AccountLog from "../../src/actors/AccountLog.ts"
import { throttleStream } from "../../src/actors/Throttle.ts"
import { AccessEvent, SharedLogin } from "../../src/domain/Access.ts"
import type { AccountCommand } from "../../src/domain/Account.ts"
import { NotificationEvent, NotificationRequested } from "../../src/domain/Notifications.ts"
import { DeviceConnected, DeviceEvent, PinsWritten, PropertySet } from "../../src/domain/Pins.ts"
import { accessStream, accountStream, deviceStream, outboxStream } from "../../src/domain/Streams.ts"
import { LoginFailed, ThrottleEvent } from "../../src/domain/Throttle.ts"
import type { Metadata } from "../../src/eventstore/Event.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"
import type { EventStore } from "../../src/eventstore/EventStore.ts"
import { inlineProjections } from "../../src/eventstore/projections/Inline.ts"

/**
 * A small log with a bit of everything the operations commands look at (issue 5 §3, §4): two
 * accounts with devices, tokens, a share token granted and revoked, a clone code, a password
 * reset; pin writes and properties from devices, an app and HTTP (IPv4 with ports, a bare IPv6
 * address and one with a port); shared logins, failed logins naming an account, a notification.
 */

export const alice = "alice@example.com"
export const bob = "bob@example.com"
export const aliceStream = accountStream(alice, "Blynk")
export const bobStream = accountStream(bob, "Blynk")

/** Every secret the workload writes: none may appear in an audit's output. */
export const secrets = {
  deviceTokens: ["aliceDevice0Token_______________", "aliceDevice1Token_______________", "aliceDevice1Renewed_____________", "bobDevice0Token_________________"],
  shareTokens: ["aliceShareToken_________________", "aliceShareRenewed_______________"],
  cloneCode: "aliceCloneCode__________________",
  passwordHash: "scrypt$secret-hash-of-alice",
  resetDigest: "ab".repeat(32)
} as const

export const at = (remoteAddress?: string, actor = "test"): Metadata => ({
  actor,
  time: "2026-03-01T10:00:00.000Z",
  ...(remoteAddress === undefined ? {} : { remoteAddress })
})

const devices = EventCodec.typed(EventCodec.make(DeviceEvent))
const throttles = EventCodec.typed(EventCodec.make(ThrottleEvent))
const access = EventCodec.typed(EventCodec.make(AccessEvent))
const notifications = EventCodec.typed(EventCodec.make(NotificationEvent))

export const account = (email: string, commands: ReadonlyArray<AccountCommand>, metadata: Metadata) =>
  AccountLog.execute(email, "Blynk", () => commands, metadata)

/** Writes the workload through the store (its inline projections with it). */
export const writeWorkload: Effect.Effect<void, unknown, EventStore> = Effect.gen(function*() {
  const [t0, t1, t1b, tb] = secrets.deviceTokens
  yield* account(alice, [
    { _tag: "Register", email: alice, appName: "Blynk", passwordHash: secrets.passwordHash },
    { _tag: "CreateDashboard", dashId: 1, name: "Home" },
    { _tag: "CreateDevice", dashId: 1, deviceId: 0, name: "Kitchen", boardType: "ESP32", token: t0 },
    { _tag: "CreateDevice", dashId: 1, deviceId: 1, name: "Garage", boardType: "ESP8266", token: t1 }
  ], at(undefined, "cli"))
  yield* account(bob, [
    { _tag: "Register", email: bob, appName: "Blynk", passwordHash: "scrypt$bob" },
    { _tag: "CreateDashboard", dashId: 1, name: "Bob's" },
    { _tag: "CreateDevice", dashId: 1, deviceId: 0, name: "Shed", boardType: "ESP32", token: tb }
  ], at(undefined, "cli"))
  const app = at("10.0.0.7:5555", `app:${alice}`)
  yield* account(alice, [
    { _tag: "GetShareToken", dashId: 1, token: secrets.shareTokens[0] },
    { _tag: "SetSharing", dashId: 1, on: true },
    { _tag: "IssueCloneCode", dashId: 1, code: secrets.cloneCode }
  ], app)

  const kitchen = deviceStream(aliceStream, 1, 0)
  const garage = deviceStream(aliceStream, 1, 1)
  yield* devices.append(kitchen, "any", [new DeviceConnected({ dashId: 1, deviceId: 0, remote: "10.0.0.9:4000" })], at("10.0.0.9:4000", "device"))
  yield* devices.append(kitchen, "any", [
    new PinsWritten({ dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 1, "21.5"], ["v", 2, "on"]] })
  ], at("10.0.0.9:4000", "device"))
  yield* devices.append(garage, "any", [
    new PinsWritten({ dashId: 1, deviceId: 1, source: "app", writes: [["d", 13, "1"]] })
  ], app)
  yield* devices.append(garage, "any", [
    new PropertySet({ dashId: 1, deviceId: 1, pin: 13, property: "color", value: "#ff0000" })
  ], at("::1", "http"))
  yield* devices.append(kitchen, "any", [
    new PinsWritten({ dashId: 1, deviceId: 0, source: "http", writes: [["v", 3, "7"]] })
  ], at("::1:5000", "http"))
  yield* devices.append(deviceStream(bobStream, 1, 0), "any", [
    new PinsWritten({ dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 1, "5"]] })
  ], at("10.0.0.7:6000", "device"))

  yield* access.append(accessStream(aliceStream), "any", [new SharedLogin({ dashId: 1, remote: "10.0.0.8:777" })], at("10.0.0.8:777", "share"))
  yield* throttles.append(throttleStream("login", "10.0.0.66"), "any", [
    new LoginFailed({ kind: "login", address: "10.0.0.66", identity: "Alice@Example.com", at: 1 }),
    new LoginFailed({ kind: "login", address: "10.0.0.66", identity: `share:${alice}`, at: 2 }),
    new LoginFailed({ kind: "login", address: "10.0.0.66", identity: "mallory@example.com", at: 3 })
  ], at("10.0.0.66:999", "app"))
  yield* notifications.append(outboxStream(aliceStream), "any", [
    new NotificationRequested({ requestId: "r1", kind: "email", dashId: 1, deviceId: 1, to: alice, subject: "Door", body: "open" })
  ], at("10.0.0.9:4001", "device"))

  yield* account(alice, [
    { _tag: "RefreshToken", dashId: 1, deviceId: 1, token: t1b },
    { _tag: "RefreshShareToken", dashId: 1, token: secrets.shareTokens[1] },
    { _tag: "RequestPasswordReset", tokenDigest: secrets.resetDigest, expiresAt: 4_102_444_800_000 }
  ], app)
})

/** Every inline projection table, rows in a stable order (for equality). */
export const projectionTables = Effect.gen(function*() {
  const sql = yield* SqlClient
  const out: Record<string, ReadonlyArray<unknown>> = {}
  for (const table of inlineProjections.flatMap((p) => p.tables)) {
    const rows = yield* sql.unsafe<{ r: string }>(`SELECT to_jsonb(t)::text AS r FROM ${table} t ORDER BY 1`)
    out[table] = rows.map((row) => row.r)
  }
  return out
})

/** The log as stored, with recorded times in UTC to the microsecond. */
export const eventRows = Effect.gen(function*() {
  const sql = yield* SqlClient
  return yield* sql<Record<string, unknown>>`
    SELECT e.position::text AS position, e.stream_id, e.stream_version::text AS version, e.event_type, e.schema_version,
      e.data::text AS data, e.metadata::text AS metadata, to_char(e.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS recorded_at
    FROM pl_events e ORDER BY e.position`
})
