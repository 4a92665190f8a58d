import { Clock, Effect, Option, Schema } from "effect"
import { Throttle } from "../../actors/Throttle.ts"
import type { Status } from "../../actors/Peer.ts"
import { AccountRejected, AppName, Email, normalizeEmail } from "../../domain/Account.ts"
import { accountStream } from "../../domain/Streams.ts"
import type { Metadata } from "../../eventstore/Event.ts"
import { findAccountToken } from "../../eventstore/projections/AccountTokens.ts"
import { Mailer } from "../notify/Mailer.ts"
import { looksLikeToken, mailedToken, tokenDigest } from "../security/MailedToken.ts"
import { hashPassword } from "../security/Passwords.ts"
import { passwordResetMail } from "./AccountMails.ts"
import { executeOnAccount, readAccount } from "./AccountOps.ts"

/** RESET_PASSWORD (81) bodies, protocol.md §2.1. */
export type ResetRequest =
  | { readonly _tag: "start"; readonly email: string; readonly appName: string }
  | { readonly _tag: "verify"; readonly token: string }
  | { readonly _tag: "reset"; readonly token: string; readonly passHash: string }

const present = (text: string | undefined): text is string => text !== undefined && text.trim() !== ""

/** `start, email[, appName]` / `verify, token` / `reset, token, newPassHash`; undefined for a malformed body. */
export const parseResetRequest = (fields: ReadonlyArray<string>): ResetRequest | undefined => {
  const [mode, first, second] = fields
  switch (mode) {
    case "start": {
      if (!present(first)) return undefined
      const email = normalizeEmail(first)
      const appName = present(second) ? second.trim() : "Blynk"
      return Schema.is(Email)(email) && Schema.is(AppName)(appName) ? { _tag: "start", email, appName } : undefined
    }
    case "verify":
      return present(first) ? { _tag: "verify", token: first.trim() } : undefined
    case "reset":
      // The app's hash is 44 characters; anything far longer is not one.
      return present(first) && present(second) && second.length <= 256 ? { _tag: "reset", token: first.trim(), passHash: second } : undefined
    default:
      return undefined
  }
}

export interface ResetContext {
  /** The requesting address, for the login throttle. */
  readonly address: string
  readonly metadata: Metadata
  /** How long a reset token stays good (PINLEDGER_RESET_TOKEN_MINUTES). */
  readonly tokenMinutes: number
}

/**
 * A mailed, single-use, expiring token (issue 4 §5). `start` answers OK whether or not the
 * address has an account, and mails only if it has; `verify` and `reset` answer NOT_ALLOWED for
 * anything but the account's current, unexpired, unused token, and each such failure counts
 * towards the address's login throttle. A blocked address is refused everything.
 */
export const handleResetRequest = (request: ResetRequest, context: ResetContext) =>
  Effect.gen(function*() {
    const throttle = yield* Throttle
    if (yield* throttle.blocked("login", context.address)) return "notAllowed" as Status
    if (request._tag === "start") return yield* start(request.email, request.appName, context)
    const status = yield* useToken(request, context)
    if (status === "notAllowed") yield* throttle.fail("login", context.address, "reset token", context.metadata)
    return status
  })

const start = (email: string, appName: string, context: ResetContext) =>
  Effect.gen(function*() {
    const stream = accountStream(email, appName)
    const account = yield* readAccount(stream)
    // Unknown address: the same answer, and no mail.
    if (account === undefined) return "ok" as Status
    const { token, digest } = mailedToken()
    const now = yield* Clock.currentTimeMillis
    const minutes = context.tokenMinutes
    yield* executeOnAccount(stream, () => [{ _tag: "RequestPasswordReset", tokenDigest: digest, expiresAt: now + minutes * 60_000 }], context.metadata)
    const mailer = yield* Mailer
    return yield* mailer.send(passwordResetMail({ to: account.email, appName, token, minutes })).pipe(
      Effect.as("ok" as Status),
      Effect.catchTag("MailError", (error) =>
        Effect.as(Effect.logWarning(`password reset: no mail to ${account.email}: ${error.reason}`), "serverError" as Status))
    )
  })

const useToken = (request: Exclude<ResetRequest, { _tag: "start" }>, context: ResetContext) =>
  Effect.gen(function*() {
    if (!looksLikeToken(request.token)) return "notAllowed" as Status
    const digest = tokenDigest(request.token)
    const owner = yield* findAccountToken("reset", digest)
    if (Option.isNone(owner)) return "notAllowed" as Status
    const now = yield* Clock.currentTimeMillis
    const passwordHash = request._tag === "reset" ? yield* hashPassword(request.passHash) : ""
    return yield* executeOnAccount(
      owner.value,
      () => [
        request._tag === "verify"
          ? { _tag: "CheckPasswordReset", tokenDigest: digest, now }
          : { _tag: "ResetPassword", tokenDigest: digest, now, passwordHash }
      ],
      context.metadata
    ).pipe(
      Effect.as("ok" as Status),
      Effect.catchIf((e): e is AccountRejected => e instanceof AccountRejected, (rejected) =>
        Effect.succeed<Status>(rejected.reason === "InvalidInput" ? "illegalCommand" : "notAllowed"))
    )
  })
