import { describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import * as AccountLog from "../../../src/actors/AccountLog.ts"
import { accountStream } from "../../../src/domain/Streams.ts"
import type { Metadata } from "../../../src/eventstore/Event.ts"
import { AccountTokens, findAccountToken } from "../../../src/eventstore/projections/AccountTokens.ts"
import { rebuild } from "../../../src/eventstore/projections/Inline.ts"
import { backends, storeLayer } from "../../support/backends.ts"

const meta: Metadata = { time: "2026-11-22T10:00:00.000Z", actor: "test" }
const digest = (c: string) => c.repeat(64)
const email = "ada@example.com"
const stream = accountStream(email, "Blynk")
// Past 2^31 ms: the expiry column must hold epoch milliseconds.
const later = 1_800_000_000_000

const rows = Effect.gen(function*() {
  const sql = yield* SqlClient
  const found = yield* sql<{ token_digest: string; account_stream: string; purpose: string; expires_at: unknown }>`
    SELECT token_digest, account_stream, purpose, expires_at FROM pl_account_tokens ORDER BY purpose, token_digest`
  return found.map((r) => ({ digest: r.token_digest[0], stream: r.account_stream, purpose: r.purpose, expiresAt: Number(r.expires_at) }))
})

for (const backend of backends) {
  describe(`account tokens on ${backend.name}`, () => {
    it.live("holds each account's pending reset and confirmation tokens by digest, as the log says, also after a rebuild", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          const run = (commands: Parameters<typeof AccountLog.execute>[2]) => AccountLog.execute(email, "Blynk", commands, meta)
          yield* run(() => [{
            _tag: "Register",
            email,
            appName: "Blynk",
            passwordHash: "scrypt$x",
            verification: { tokenDigest: digest("c"), expiresAt: later }
          }])
          yield* run(() => [{ _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: later + 1 }])
          expect(yield* findAccountToken("reset", digest("a"))).toEqual(Option.some(stream))
          expect(yield* findAccountToken("verify", digest("c"))).toEqual(Option.some(stream))
          // Found only for its own purpose.
          expect(Option.isNone(yield* findAccountToken("verify", digest("a")))).toBe(true)

          // A newer request replaces the older token; a used one goes.
          yield* run(() => [{ _tag: "RequestPasswordReset", tokenDigest: digest("b"), expiresAt: later + 2 }])
          expect(Option.isNone(yield* findAccountToken("reset", digest("a")))).toBe(true)
          yield* run(() => [{ _tag: "VerifyEmail", tokenDigest: digest("c"), now: 0 }])
          expect(Option.isNone(yield* findAccountToken("verify", digest("c")))).toBe(true)
          expect(yield* rows).toEqual([{ digest: "b", stream, purpose: "reset", expiresAt: later + 2 }])

          yield* rebuild(AccountTokens)
          expect(yield* rows).toEqual([{ digest: "b", stream, purpose: "reset", expiresAt: later + 2 }])

          yield* run(() => [{ _tag: "ResetPassword", tokenDigest: digest("b"), now: 0, passwordHash: "scrypt$y" }])
          expect(yield* rows).toEqual([])
          yield* rebuild(AccountTokens)
          expect(yield* rows).toEqual([])
        }).pipe(Effect.provide(storeLayer(storage, { inline: [AccountTokens] })))
      }))
  })
}
