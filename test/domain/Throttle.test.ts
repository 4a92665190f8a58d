import { describe, expect, it } from "@effect/vitest"
import { decideFailure, evolve, initial, isBlocked, type ThrottleState } from "../../src/domain/Throttle.ts"

const settings = { maxFailures: 3, windowMs: 60_000, blockMs: 600_000 }
const fail = (state: ThrottleState, at: number) => {
  let next = state
  const events = decideFailure(next, { kind: "login", address: "10.0.0.1", identity: "a@b.c", at }, settings)
  for (const e of events) next = evolve(next, e, settings)
  return { state: next, events: events.map((e) => e._tag) }
}

describe("login throttle", () => {
  it("blocks an address at the third failure within the window, for the block time", () => {
    let s = initial
    expect(fail(s, 0).events).toEqual(["LoginFailed"])
    s = fail(s, 0).state
    s = fail(s, 10_000).state
    const third = fail(s, 20_000)
    expect(third.events).toEqual(["LoginFailed", "AddressBlocked"])
    expect(isBlocked(third.state, 20_000 + 599_999)).toBe(true)
    expect(isBlocked(third.state, 20_000 + 600_000)).toBe(false)
  })

  it("forgets failures older than the window", () => {
    let s = initial
    s = fail(s, 0).state
    s = fail(s, 10_000).state
    const late = fail(s, 70_001)
    expect(late.events).toEqual(["LoginFailed"])
    expect(isBlocked(late.state, 70_001)).toBe(false)
  })

  it("a failure while blocked is recorded and does not extend the block", () => {
    let s = initial
    for (const at of [0, 1, 2]) s = fail(s, at).state
    const during = fail(s, 100)
    expect(during.events).toEqual(["LoginFailed"])
    expect(during.state.blockedUntil).toBe(s.blockedUntil)
  })
})
