import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { clientPasswordHash, hashPassword, newToken, verifyPassword } from "../../../src/adapters/security/Passwords.ts"

describe("passwords and tokens", () => {
  it("computes the Blynk app's password hash (protocol.md §6.3)", () => {
    const hash = clientPasswordHash("Alice@Example.com", "secret")
    expect(hash).toHaveLength(44)
    expect(hash).toBe(clientPasswordHash("alice@example.com", "secret"))
    expect(hash).not.toBe(clientPasswordHash("alice@example.com", "Secret"))
  })

  it.live("stores a salted scrypt hash, never the client's hash, and verifies it", () =>
    Effect.gen(function*() {
      const client = clientPasswordHash("alice@example.com", "secret")
      const stored = yield* hashPassword(client)
      expect(stored).toMatch(/^scrypt\$/)
      expect(stored.includes(client)).toBe(false)
      expect(yield* hashPassword(client)).not.toBe(stored)
      expect(yield* verifyPassword(client, stored)).toBe(true)
      expect(yield* verifyPassword(clientPasswordHash("alice@example.com", "wrong"), stored)).toBe(false)
      expect(yield* verifyPassword(client, "garbage")).toBe(false)
      // No stored hash (no such account): never a match, whatever is sent.
      expect(yield* verifyPassword(client, undefined)).toBe(false)
      expect(yield* verifyPassword("", undefined)).toBe(false)
    }))

  it("makes 32-character URL-safe tokens", () => {
    const tokens = new Set(Array.from({ length: 100 }, newToken))
    expect(tokens.size).toBe(100)
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]{32}$/)
  })
})
