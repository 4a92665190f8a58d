import { Effect } from "effect"
import { Throttle } from "../../actors/Throttle.ts"
import { type Account, isConfirmed } from "../../domain/Account.ts"
import type { Metadata } from "../../eventstore/Event.ts"
import { verifyPassword } from "../security/Passwords.ts"
import { readAccount } from "./AccountOps.ts"

/**
 * The password check of a login by e-mail and password, the same for the app's LOGIN and the
 * owner API: a blocked address is refused before any look-up, right password or not; an unknown
 * account and a wrong password each count towards the address's `login` throttle (with the
 * attempt's metadata); the right password of an account whose address is not confirmed yet is
 * refused without counting. An unknown account costs the same password derivation as a known
 * one, so the time of an answer does not tell whether the address has an account.
 */
export type PasswordCheck =
  | { readonly _tag: "Blocked" }
  | { readonly _tag: "UnknownAccount" }
  | { readonly _tag: "WrongPassword" }
  | { readonly _tag: "Unconfirmed"; readonly account: Account }
  | { readonly _tag: "Verified"; readonly account: Account }

export const checkPassword = (input: {
  readonly stream: string
  readonly email: string
  /** What the app sends: Passwords.clientPasswordHash of the e-mail and password. */
  readonly clientHash: string
  readonly address: string
  readonly metadata: Metadata
}) =>
  Effect.gen(function*() {
    const throttle = yield* Throttle
    if (yield* throttle.blocked("login", input.address)) return { _tag: "Blocked" } as PasswordCheck
    const account = yield* readAccount(input.stream)
    const verified = yield* verifyPassword(input.clientHash, account?.passwordHash)
    if (account === undefined || !verified) {
      yield* throttle.fail("login", input.address, input.email, input.metadata)
      return { _tag: account === undefined ? "UnknownAccount" : "WrongPassword" } as PasswordCheck
    }
    return { _tag: isConfirmed(account) ? "Verified" : "Unconfirmed", account } as PasswordCheck
  })
