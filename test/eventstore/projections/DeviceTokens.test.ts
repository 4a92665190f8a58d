import { describe, expect, it } from "@effect/vitest"
import { Effect, Option, Stream } from "effect"
import * as AccountLog from "../../../src/actors/AccountLog.ts"
import type { AccountCommand } from "../../../src/domain/Account.ts"
import { accountStream } from "../../../src/domain/Streams.ts"
import type { Metadata } from "../../../src/eventstore/Event.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import { DeviceTokens, findByToken } from "../../../src/eventstore/projections/DeviceTokens.ts"
import { backends, storeLayer } from "../../support/backends.ts"

const meta: Metadata = { time: "2026-11-22T10:00:00.000Z", actor: "test" }
const tokenA = "A".repeat(32)
const tokenB = "B".repeat(32)

const provision = (email: string, token: string): Effect.Effect<unknown, unknown, EventStore> =>
  AccountLog.execute(email, "Blynk", (state): ReadonlyArray<AccountCommand> => [
    ...(state === undefined ? [{ _tag: "Register" as const, email, appName: "Blynk", passwordHash: "scrypt$test" }] : []),
    ...(state?.dashboards.length ? [] : [{ _tag: "CreateDashboard" as const, dashId: 1, name: "Home" }]),
    { _tag: "CreateDevice", dashId: 1, deviceId: state?.dashboards[0]?.devices.length ?? 0, name: "D", boardType: "ESP32", token }
  ], meta)

for (const backend of backends) {
  describe(`device tokens on ${backend.name}`, () => {
    it.live("a token leads to its device as soon as the append is acknowledged; a taken token fails the append", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          expect(Option.isNone(yield* findByToken(tokenA))).toBe(true)
          yield* provision("alice@example.com", tokenA)
          expect(yield* findByToken(tokenA)).toEqual(
            Option.some({ accountStream: accountStream("alice@example.com", "Blynk"), dashId: 1, deviceId: 0 })
          )
          // Another account reusing the token: refused by the projection, so nothing is written.
          const store = yield* EventStore
          const before = yield* store.head
          const refused = yield* Effect.flip(provision("bob@example.com", tokenA))
          expect((refused as { _tag: string })._tag).toBe("InvalidEvent")
          expect(yield* store.head).toBe(before)
          expect((yield* findByToken(tokenA)).pipe(Option.map((o) => o.accountStream))).toEqual(
            Option.some(accountStream("alice@example.com", "Blynk"))
          )
          // The log and the projection agree.
          yield* provision("alice@example.com", tokenB)
          const created = (yield* Stream.runCollect(store.readAll())).filter((e) => e.type === "DeviceCreated")
          expect(created.map((e) => (e.data as { token: string }).token)).toEqual([tokenA, tokenB])
        }).pipe(Effect.provide(storeLayer(storage, { inline: [DeviceTokens] })))
      }))

    it.live("a refreshed token replaces the old one, and a deleted device's token leads nowhere, at once", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          yield* provision("carol@example.com", tokenA)
          yield* AccountLog.execute("carol@example.com", "Blynk", () => [
            { _tag: "RefreshToken", dashId: 1, deviceId: 0, token: tokenB }
          ], meta)
          expect(Option.isNone(yield* findByToken(tokenA))).toBe(true)
          expect((yield* findByToken(tokenB)).pipe(Option.map((o) => o.deviceId))).toEqual(Option.some(0))
          yield* AccountLog.execute("carol@example.com", "Blynk", () => [{ _tag: "DeleteDevice", dashId: 1, deviceId: 0 }], meta)
          expect(Option.isNone(yield* findByToken(tokenB))).toBe(true)
        }).pipe(Effect.provide(storeLayer(storage, { inline: [DeviceTokens] })))
      }))
  })
}
