import { Clock, Effect, Option } from "effect"
import { Throttle } from "../../actors/Throttle.ts"
import { type Account, AccountRejected, type PendingToken } from "../../domain/Account.ts"
import type { Metadata } from "../../eventstore/Event.ts"
import { findAccountToken } from "../../eventstore/projections/AccountTokens.ts"
import { Mailer } from "../notify/Mailer.ts"
import { looksLikeToken, mailedToken, tokenDigest } from "../security/MailedToken.ts"
import { verificationMail } from "./AccountMails.ts"
import { executeOnAccount } from "./AccountOps.ts"

/** The path of the confirmation link, served by the HTTP app on both ports. */
export const VERIFY_PATH = "/verify-email"

export interface VerificationSettings {
  /** Where the HTTP app is reached from outside (PINLEDGER_PUBLIC_URL), without a trailing slash. */
  readonly publicUrl: string
  /** How long a confirmation link stays good (PINLEDGER_VERIFY_TOKEN_HOURS). */
  readonly tokenHours: number
}

/** `<public URL>/verify-email?token=…` */
export const verificationLink = (publicUrl: string, token: string) =>
  `${publicUrl.replace(/\/+$/, "")}${VERIFY_PATH}?token=${encodeURIComponent(token)}`

/** A fresh confirmation token: the token for the mail, its digest and expiry for the log. */
export const newVerification = (settings: VerificationSettings) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const { token, digest } = mailedToken()
    const pending: PendingToken = { tokenDigest: digest, expiresAt: now + settings.tokenHours * 3_600_000 }
    return { token, pending }
  })

/** Mails the confirmation link for `token` to the account's address. */
export const mailVerification = (to: string, appName: string, token: string, settings: VerificationSettings) =>
  Effect.flatMap(Mailer, (mailer) =>
    mailer.send(verificationMail({ to, appName, link: verificationLink(settings.publicUrl, token), hours: settings.tokenHours })))

/**
 * An unconfirmed account logged in with the right password after its link expired: it gets a new
 * link (and only then, so a right password cannot be used to flood the address). Never fails: the
 * login is refused either way.
 */
export const renewIfExpired = (stream: string, account: Account, settings: VerificationSettings, metadata: Metadata) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const pending = account.emailVerification
    if (pending === undefined || now < pending.expiresAt) return
    const { token, pending: next } = yield* newVerification(settings)
    yield* executeOnAccount(stream, () => [{ _tag: "RenewEmailVerification", ...next, now }], metadata)
    yield* mailVerification(account.email, account.appName, token, settings)
  }).pipe(
    Effect.catchCause((cause) => Effect.logWarning(`address confirmation: no new link for ${account.email}`, cause))
  )

/** What a confirmation link did. */
export type Confirmation = "confirmed" | "invalid" | "blocked"

/**
 * GET /verify-email?token=…: confirms the account the token was mailed to, if it is that
 * account's current, unexpired token. An invalid token counts towards the requesting address's
 * login throttle; a blocked address is refused.
 */
export const confirmEmail = (token: string, address: string, metadata: Metadata) =>
  Effect.gen(function*() {
    const throttle = yield* Throttle
    if (yield* throttle.blocked("login", address)) return "blocked" as Confirmation
    const outcome: Confirmation = yield* Effect.gen(function*() {
      if (!looksLikeToken(token)) return "invalid"
      const digest = tokenDigest(token)
      const owner = yield* findAccountToken("verify", digest)
      if (Option.isNone(owner)) return "invalid"
      const now = yield* Clock.currentTimeMillis
      return yield* executeOnAccount(owner.value, () => [{ _tag: "VerifyEmail", tokenDigest: digest, now }], metadata).pipe(
        Effect.as("confirmed" as const),
        Effect.catchIf((e): e is AccountRejected => e instanceof AccountRejected, () => Effect.succeed("invalid" as const))
      )
    })
    if (outcome === "invalid") yield* throttle.fail("login", address, "verify link", metadata)
    return outcome
  })
