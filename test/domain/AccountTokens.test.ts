import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import {
  type AccountCommand,
  AccountEvent,
  AccountRejected,
  type AccountState,
  decide,
  evolve,
  isConfirmed,
  replay
} from "../../src/domain/Account.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"

/** Password reset and address confirmation in the account decider (issue 4 §5): pure, times in the commands. */

const digest = (c: string) => c.repeat(64)
const register: AccountCommand = { _tag: "Register", email: "ada@example.com", appName: "Blynk", passwordHash: "scrypt$old" }

/** Decides and applies each command in turn; what each one answered, and the state at the end. */
const run = (commands: ReadonlyArray<AccountCommand>, from: AccountState = undefined) => {
  let state = from
  const answers: Array<ReadonlyArray<string> | string> = []
  const events: Array<AccountEvent> = []
  for (const command of commands) {
    const decided = decide(state, command)
    if (decided instanceof AccountRejected) {
      answers.push(decided.reason)
      continue
    }
    answers.push(decided.map((e) => e._tag))
    for (const event of decided) {
      events.push(event)
      state = evolve(state, event)
    }
  }
  return { state, answers, events }
}

describe("password reset in the account decider", () => {
  it("needs an account, and a well-formed digest", () => {
    expect(run([{ _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1000 }]).answers).toEqual(["NotRegistered"])
    expect(run([register, { _tag: "RequestPasswordReset", tokenDigest: "not hex", expiresAt: 1000 }]).answers[1]).toBe("InvalidInput")
    expect(run([register, { _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1.5 }]).answers[1]).toBe("InvalidInput")
  })

  it("accepts the current token until it expires, and only that one", () => {
    const { state } = run([register, { _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1000 }])
    const check = (tokenDigest: string, now: number) => run([{ _tag: "CheckPasswordReset", tokenDigest, now }], state).answers[0]
    expect(check(digest("a"), 999)).toEqual([])
    expect(check(digest("a"), 1000)).toBe("NotAllowed")
    expect(check(digest("b"), 10)).toBe("NotAllowed")
  })

  it("a newer request voids the older token", () => {
    const { answers } = run([
      register,
      { _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1000 },
      { _tag: "RequestPasswordReset", tokenDigest: digest("b"), expiresAt: 2000 },
      { _tag: "CheckPasswordReset", tokenDigest: digest("a"), now: 10 },
      { _tag: "CheckPasswordReset", tokenDigest: digest("b"), now: 10 }
    ])
    expect(answers.slice(3)).toEqual(["NotAllowed", []])
  })

  it("a reset stores the new hash and uses the token up", () => {
    const { state, answers } = run([
      register,
      { _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1000 },
      { _tag: "ResetPassword", tokenDigest: digest("a"), now: 1000, passwordHash: "scrypt$late" },
      { _tag: "ResetPassword", tokenDigest: digest("a"), now: 10, passwordHash: "scrypt$new" },
      { _tag: "ResetPassword", tokenDigest: digest("a"), now: 11, passwordHash: "scrypt$again" },
      { _tag: "CheckPasswordReset", tokenDigest: digest("a"), now: 12 }
    ])
    expect(answers.slice(2)).toEqual(["NotAllowed", ["PasswordChanged"], "NotAllowed", "NotAllowed"])
    expect(state?.passwordHash).toBe("scrypt$new")
    expect(state?.passwordReset).toBeUndefined()
  })

  it("refuses an empty password hash", () => {
    const { answers } = run([
      register,
      { _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1000 },
      { _tag: "ResetPassword", tokenDigest: digest("a"), now: 10, passwordHash: "" }
    ])
    expect(answers[2]).toBe("InvalidInput")
  })
})

describe("address confirmation in the account decider", () => {
  const verification = { tokenDigest: digest("c"), expiresAt: 5000 }

  it("an account registered without a link is confirmed; with one it is not until the link is used", () => {
    expect(isConfirmed(run([register]).state!)).toBe(true)
    const { state, answers } = run([{ ...register, verification }])
    expect(answers).toEqual([["AccountRegistered", "EmailVerificationRequested"]])
    expect(isConfirmed(state!)).toBe(false)
    const confirmed = run([
      { _tag: "VerifyEmail", tokenDigest: digest("d"), now: 10 },
      { _tag: "VerifyEmail", tokenDigest: digest("c"), now: 5000 },
      { _tag: "VerifyEmail", tokenDigest: digest("c"), now: 4999 },
      { _tag: "VerifyEmail", tokenDigest: digest("c"), now: 4999 }
    ], state)
    expect(confirmed.answers).toEqual(["NotAllowed", "NotAllowed", ["EmailVerified"], "NotAllowed"])
    expect(isConfirmed(confirmed.state!)).toBe(true)
  })

  it("a new link only once the last one has expired, and never for a confirmed address", () => {
    const { state } = run([{ ...register, verification }])
    const renew = (now: number): AccountCommand => ({ _tag: "RenewEmailVerification", tokenDigest: digest("e"), expiresAt: now + 5000, now })
    const renewed = run([renew(4999), renew(5000), { _tag: "VerifyEmail", tokenDigest: digest("c"), now: 5001 }, {
      _tag: "VerifyEmail",
      tokenDigest: digest("e"),
      now: 5001
    }, renew(99_999)], state)
    expect(renewed.answers).toEqual(["NotAllowed", ["EmailVerificationRequested"], "NotAllowed", ["EmailVerified"], "NotAllowed"])
  })

  it("a password reset confirms the address it was mailed to", () => {
    const { state, answers } = run([
      { ...register, verification },
      { _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1000 },
      { _tag: "ResetPassword", tokenDigest: digest("a"), now: 10, passwordHash: "scrypt$new" }
    ])
    expect(answers[2]).toEqual(["PasswordChanged", "EmailVerified"])
    expect(isConfirmed(state!)).toBe(true)
  })

  it.effect("the new events survive the log's JSON and replay to the same state", () =>
    Effect.gen(function*() {
      const { state, events } = run([
        { ...register, verification },
        { _tag: "RequestPasswordReset", tokenDigest: digest("a"), expiresAt: 1000 },
        { _tag: "RequestPasswordReset", tokenDigest: digest("b"), expiresAt: 2000 },
        { _tag: "VerifyEmail", tokenDigest: digest("c"), now: 10 },
        { _tag: "ResetPassword", tokenDigest: digest("b"), now: 10, passwordHash: "scrypt$new" },
        { _tag: "RequestPasswordReset", tokenDigest: digest("f"), expiresAt: 3000 }
      ])
      expect(events.map((e) => e._tag)).toEqual([
        "AccountRegistered",
        "EmailVerificationRequested",
        "PasswordResetRequested",
        "PasswordResetRequested",
        "EmailVerified",
        "PasswordChanged",
        "PasswordResetRequested"
      ])
      const codec = EventCodec.make(AccountEvent)
      const decoded = yield* Effect.forEach(events, (event) =>
        Effect.flatMap(codec.encode(event), (encoded) =>
          codec.decode({
            position: 1,
            txId: 1n,
            streamId: "user-x",
            version: 1,
            type: encoded.type,
            schemaVersion: encoded.schemaVersion,
            data: JSON.parse(JSON.stringify(encoded.data)),
            metadata: { time: "2024-01-01T00:00:00Z" },
            recordedAt: new Date()
          })))
      expect(replay(decoded)).toEqual(state)
      expect(state?.passwordReset).toEqual({ tokenDigest: digest("f"), expiresAt: 3000 })
      expect(state?.emailVerification).toBeUndefined()
    }))
})
