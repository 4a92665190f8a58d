import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** Runs `pinledger <args>` as a user would (through src/main.ts) and collects its output. */
const pinledger = (dataDir: string, args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; output: string }>((resolve) => {
    const child = spawn(process.execPath, ["src/main.ts", ...args], {
      env: { ...process.env, DATABASE_URL: "", PINLEDGER_DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (c: Buffer) => (output += c.toString()))
    child.stderr.on("data", (c: Buffer) => (output += c.toString()))
    child.on("exit", (code) => resolve({ code, output }))
  })

describe("provisioning from the command line", () => {
  it("creates an account and devices with fresh tokens, and refuses what the decider refuses", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "pinledger-cli-"))
    try {
      const account = await pinledger(dataDir, ["account", "create", "--email", "Alice@Example.com", "--password", "secret"])
      expect(account.code).toBe(0)
      expect(account.output).toContain("account created: alice@example.com (Blynk)")

      const first = await pinledger(dataDir, ["device", "create", "--email", "alice@example.com", "--name", "Kitchen"])
      const second = await pinledger(dataDir, ["device", "create", "--email", "alice@example.com", "--name", "Garage"])
      expect(first.output).toContain(`device 0 "Kitchen" in dashboard 1`)
      expect(second.output).toContain(`device 1 "Garage" in dashboard 1`)
      const tokens = [first, second].map((r) => /token: ([A-Za-z0-9_-]{32})\n/.exec(r.output)?.[1])
      expect(tokens.every((t) => t !== undefined)).toBe(true)
      expect(tokens[0]).not.toBe(tokens[1])

      const reprovisioned = await pinledger(dataDir, ["device", "reprovision", "--email", "alice@example.com", "--device", "1"])
      expect(reprovisioned.code).toBe(0)
      const renewed = /token: ([A-Za-z0-9_-]{32})\n/.exec(reprovisioned.output)?.[1]
      expect(renewed).toBeDefined()
      expect(tokens).not.toContain(renewed)
      const unknown = await pinledger(dataDir, ["device", "reprovision", "--email", "alice@example.com", "--device", "7"])
      expect(unknown.code).not.toBe(0)
      expect(unknown.output).toContain("UnknownDevice")

      const again = await pinledger(dataDir, ["account", "create", "--email", "alice@example.com", "--password", "x"])
      expect(again.code).not.toBe(0)
      expect(again.output).toContain("AlreadyRegistered")
      const stranger = await pinledger(dataDir, ["device", "create", "--email", "bob@example.com", "--name", "X"])
      expect(stranger.code).not.toBe(0)
      expect(stranger.output).toContain("NotRegistered")
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
