import { describe, expect, it } from "@effect/vitest"
import { Command, COMMAND_LIMIT, commandName, Status, statusName } from "../../../src/adapters/blynk/Command.ts"

describe("command and status codes", () => {
  it("are frozen, distinct, and below the code that closes a connection", () => {
    expect(Object.isFrozen(Command)).toBe(true)
    expect(Object.isFrozen(Status)).toBe(true)
    const codes = Object.values(Command)
    expect(new Set(codes).size).toBe(codes.length)
    expect(codes.every((code) => code >= 0 && code < COMMAND_LIMIT)).toBe(true)
    expect(new Set(Object.values(Status)).size).toBe(Object.values(Status).length)
  })

  it("match the table of protocol.md at its landmarks", () => {
    expect(Command).toMatchObject({
      RESPONSE: 0,
      LOGIN: 2,
      PING: 6,
      BLYNK_INTERNAL: 17,
      HARDWARE: 20,
      HARDWARE_LOGIN: 29,
      GET_TAGS: 49,
      GET_ENHANCED_GRAPH_DATA: 60,
      DEVICE_OFFLINE: 71,
      RESET_PASSWORD: 81
    })
    expect(Status).toMatchObject({ OK: 200, QUOTA_LIMIT: 1, ILLEGAL_COMMAND: 2, INVALID_TOKEN: 9, ILLEGAL_COMMAND_BODY: 11, ENERGY_LIMIT: 21 })
  })

  it("look names up by code", () => {
    expect(commandName(20)).toBe("HARDWARE")
    expect(commandName(0)).toBe("RESPONSE")
    expect(commandName(82)).toBeUndefined()
    expect(commandName(-1)).toBeUndefined()
    for (const [name, code] of Object.entries(Command)) expect(commandName(code)).toBe(name)
    expect(statusName(200)).toBe("OK")
    expect(statusName(10)).toBeUndefined()
  })
})
