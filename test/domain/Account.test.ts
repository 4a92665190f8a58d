import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import {
  type AccountCommand,
  type AccountEvent,
  AccountRejected,
  type AccountState,
  decide,
  evolve,
  replay
} from "../../src/domain/Account.ts"
import { accountStream } from "../../src/domain/Streams.ts"

const token = (n: number) => `${"a".repeat(31)}${String.fromCharCode(65 + (n % 26))}`
const run = (commands: ReadonlyArray<AccountCommand>) => {
  let state: AccountState = undefined
  const events: Array<AccountEvent> = []
  const rejected: Array<AccountRejected> = []
  for (const command of commands) {
    const decided = decide(state, command)
    if (decided instanceof AccountRejected) {
      rejected.push(decided)
      continue
    }
    for (const event of decided) {
      events.push(event)
      state = evolve(state, event)
    }
  }
  return { state, events, rejected }
}

const register: AccountCommand = { _tag: "Register", email: " Alice@Example.COM ", appName: "Blynk", passwordHash: "scrypt$x" }

describe("account decider", () => {
  it("registers once, with the e-mail lower-cased", () => {
    const { state, rejected } = run([register, register])
    expect(state?.email).toBe("alice@example.com")
    expect(rejected.map((r) => r.reason)).toEqual(["AlreadyRegistered"])
  })

  it("refuses bad input and commands before registration", () => {
    expect(run([{ ...register, email: "not-an-address" }]).rejected[0]?.reason).toBe("InvalidInput")
    expect(run([{ ...register, appName: "has space" }]).rejected[0]?.reason).toBe("InvalidInput")
    expect(run([{ _tag: "CreateDashboard", dashId: 1, name: "x" }]).rejected[0]?.reason).toBe("NotRegistered")
  })

  it("creates dashboards and devices, refusing duplicates, unknown dashboards and bad tokens", () => {
    const { state, rejected } = run([
      register,
      { _tag: "CreateDashboard", dashId: 1, name: "Home" },
      { _tag: "CreateDashboard", dashId: 1, name: "Again" },
      { _tag: "CreateDevice", dashId: 1, deviceId: 0, name: "Kitchen", boardType: "ESP32", token: token(0) },
      { _tag: "CreateDevice", dashId: 1, deviceId: 0, name: "Twin", boardType: "ESP32", token: token(1) },
      { _tag: "CreateDevice", dashId: 7, deviceId: 1, name: "Lost", boardType: "ESP32", token: token(2) },
      { _tag: "CreateDevice", dashId: 1, deviceId: 1, name: "Short", boardType: "ESP32", token: "abc" }
    ])
    expect(rejected.map((r) => r.reason)).toEqual(["DuplicateId", "DuplicateId", "UnknownDashboard", "InvalidInput"])
    expect(state?.dashboards).toEqual([{
      id: 1,
      name: "Home",
      settings: {},
      widgets: [],
      tags: [],
      isActive: false,
      devices: [{ id: 0, name: "Kitchen", boardType: "ESP32", token: token(0), extra: {} }]
    }])
  })

  it("the state rebuilt from the events equals the state built while deciding", () => {
    const command = fc.oneof(
      fc.constant(register),
      fc.record({ _tag: fc.constant("CreateDashboard" as const), dashId: fc.integer({ min: 0, max: 3 }), name: fc.string({ minLength: 0, maxLength: 60 }) }),
      fc.record({
        _tag: fc.constant("CreateDevice" as const),
        dashId: fc.integer({ min: 0, max: 3 }),
        deviceId: fc.integer({ min: 0, max: 3 }),
        name: fc.string({ minLength: 1, maxLength: 10 }),
        boardType: fc.constant("ESP32"),
        token: fc.integer({ min: 0, max: 25 }).map(token)
      })
    )
    fc.assert(fc.property(fc.array(command, { maxLength: 30 }), (commands) => {
      const { state, events } = run(commands)
      expect(replay(events)).toEqual(state)
    }))
  })

  it("derives one stream per identity, whatever the e-mail's case", () => {
    expect(accountStream("Alice@Example.com", "Blynk")).toBe(accountStream("alice@example.com", "Blynk"))
    expect(accountStream("alice@example.com", "Blynk")).not.toBe(accountStream("alice@example.com", "Other"))
    expect(accountStream("a+b@example.com", "Blynk")).toMatch(/^user-[0-9a-f]{40}$/)
  })
})
