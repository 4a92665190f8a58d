import { Effect, Option } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { EmailVerificationRequested, PasswordResetRequested } from "../../domain/Account.ts"
import type { InlineProjection } from "../SqlEventStore.ts"
import { decoder } from "./Decode.ts"

const resetRequested = decoder(PasswordResetRequested)
const verificationRequested = decoder(EmailVerificationRequested)

/** What a mailed token is for. */
export type TokenPurpose = "reset" | "verify"

/**
 * The tokens mailed to accounts (password reset, address confirmation), by digest: a token
 * that arrives without its account (RESET_PASSWORD `verify`/`reset`, GET /verify-email) is found
 * here. One row per account and purpose, the pending one; a newer one replaces it, a used one
 * goes. Written in the append's transaction, so a token works the moment its mail can exist and
 * stops the moment its use is acknowledged. The account's decider still has the last word
 * (expiry, single use); this only says whose token it is.
 */
export const AccountTokens: InlineProjection = {
  name: "account-tokens",
  types: new Set(["PasswordResetRequested", "PasswordChanged", "EmailVerificationRequested", "EmailVerified"]),
  tables: ["pl_account_tokens"],
  apply: (events) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const replace = (stream: string, purpose: TokenPurpose, pending: { tokenDigest: string; expiresAt: number } | undefined) =>
        Effect.gen(function*() {
          yield* sql`DELETE FROM pl_account_tokens WHERE account_stream = ${stream} AND purpose = ${purpose}`
          if (pending === undefined) return
          yield* sql`INSERT INTO pl_account_tokens (token_digest, account_stream, purpose, expires_at)
            VALUES (${pending.tokenDigest}, ${stream}, ${purpose}, ${pending.expiresAt})`
        })
      for (const e of events) {
        switch (e.type) {
          case "PasswordResetRequested": {
            const d = resetRequested(e.data)
            if (d !== undefined) yield* replace(e.streamId, "reset", d)
            break
          }
          case "PasswordChanged":
            yield* replace(e.streamId, "reset", undefined)
            break
          case "EmailVerificationRequested": {
            const d = verificationRequested(e.data)
            if (d !== undefined) yield* replace(e.streamId, "verify", d)
            break
          }
          case "EmailVerified":
            yield* replace(e.streamId, "verify", undefined)
            break
        }
      }
    })
}

/** The account a pending token of `purpose` belongs to, by the token's digest. */
export const findAccountToken = (purpose: TokenPurpose, tokenDigest: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ account_stream: string }>`
      SELECT account_stream FROM pl_account_tokens WHERE token_digest = ${tokenDigest} AND purpose = ${purpose}`
    const row = rows[0]
    return row === undefined ? Option.none<string>() : Option.some(row.account_stream)
  })
