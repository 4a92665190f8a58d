import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { spawn } from "node:child_process"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import pg from "pg"
import * as PgliteClient from "../../../src/eventstore/PgliteClient.ts"
import { createDatabase, type PostgresDatabase, repoRoot } from "../../e2e/support/server.ts"

/**
 * The operations commands as a user runs them (`node src/main.ts …`): audit, verify, replay,
 * backup, restore, on the embedded database and, with DATABASE_URL set, on a PostgreSQL database
 * of their own.
 */

interface Place {
  readonly dataDir: string
  readonly databaseUrl: string
  /** Runs SQL on it from the test (the CLI must not be running on PGlite meanwhile). */
  readonly query: (text: string) => Promise<void>
  readonly drop: () => Promise<void>
}

const pglitePlace = async (): Promise<Place> => {
  const dataDir = await mkdtemp(join(tmpdir(), "pinledger-ops-"))
  return {
    dataDir,
    databaseUrl: "",
    query: (text) =>
      Effect.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient
        yield* sql.unsafe(text)
      }).pipe(Effect.provide(PgliteClient.layer({ dataDir: join(dataDir, "pglite") })))),
    drop: () => rm(dataDir, { recursive: true, force: true })
  }
}

const postgresPlace = (serverUrl: string) => async (): Promise<Place> => {
  const dataDir = await mkdtemp(join(tmpdir(), "pinledger-ops-"))
  const database: PostgresDatabase = await createDatabase(serverUrl)
  return {
    dataDir,
    databaseUrl: database.url,
    query: async (text) => {
      const client = new pg.Client({ connectionString: database.url })
      await client.connect()
      try {
        await client.query(text)
      } finally {
        await client.end()
      }
    },
    drop: async () => {
      await database.drop()
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}

const places: ReadonlyArray<readonly [string, () => Promise<Place>]> = [
  ["pglite", pglitePlace],
  ...(process.env.DATABASE_URL ? [["postgres", postgresPlace(process.env.DATABASE_URL)] as const] : [])
]

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

const pinledger = (place: Place, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}) =>
  new Promise<Run>((resolve, reject) => {
    const child = spawn(process.execPath, ["src/main.ts", ...args], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: place.databaseUrl, PINLEDGER_DATA_DIR: place.dataDir, PINLEDGER_LOG_FORMAT: "text", ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()))
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.once("error", reject)
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
  })

/** Runs a command that must succeed; its standard output. */
const ok = async (place: Place, args: ReadonlyArray<string>, env?: NodeJS.ProcessEnv) => {
  const run = await pinledger(place, args, env)
  if (run.code !== 0) throw new Error(`pinledger ${args.join(" ")} exited with ${run.code}:\n${run.stdout}\n${run.stderr}`)
  return run.stdout
}

const tokenOf = (output: string) => /token: (\S{32})/.exec(output)?.[1] ?? ""

for (const [name, makePlace] of places) {
  describe(`operations commands on ${name}`, () => {
    it("audit pages through the log without secrets; verify, replay, backup and restore", { timeout: 300_000 }, async () => {
      const place = await makePlace()
      const fresh = await makePlace()
      try {
        await ok(place, ["account", "create", "--email", "alice@example.com", "--password", "secret"])
        const kitchen = tokenOf(await ok(place, ["device", "create", "--email", "alice@example.com", "--name", "Kitchen"]))
        const garage = tokenOf(await ok(place, ["device", "create", "--email", "alice@example.com", "--name", "Garage"]))
        const renewed = tokenOf(await ok(place, ["device", "reprovision", "--email", "alice@example.com", "--device", "1"]))
        await ok(place, ["account", "create", "--email", "bob@example.com", "--password", "x"])
        expect([kitchen, garage, renewed].every((t) => t.length === 32)).toBe(true)

        // JSON lines, and only those on standard output (logs go to standard error, JSON logs too).
        const json = await ok(place, ["audit", "--email", "Alice@Example.com", "--json"], { PINLEDGER_LOG_FORMAT: "json" })
        const lines = json.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)
        expect(lines.at(-1)).toEqual({ next: null })
        const entries = lines.slice(0, -1)
        expect(entries.map((e) => e["type"])).toEqual([
          "AccountRegistered",
          "DashboardCreated",
          "DeviceCreated",
          "DeviceCreated",
          "DeviceTokenRefreshed"
        ])
        expect(entries.every((e) => e["actor"] === "cli")).toBe(true)
        expect(entries[2]!["data"]).toMatchObject({ name: "Kitchen", token: "***" })
        for (const token of [kitchen, garage, renewed]) expect(json).not.toContain(token)

        // Text, a page of two at a time, following the printed cursor.
        const seen: Array<number> = []
        let after: string | undefined = undefined
        for (let page = 0; page < 10; page++) {
          const out: string = await ok(place, ["audit", "--email", "alice@example.com", "--limit", "2", ...(after ? ["--after", after] : [])])
          const rows = out.trim().split("\n")
          const last = rows.pop()!
          seen.push(...rows.map((r) => Number(r.split(" ")[0])))
          expect(rows.every((r) => / actor=cli from=- /.test(r))).toBe(true)
          const next = /^next page: --after (\d+)$/.exec(last)
          if (next === null) {
            expect(last).toMatch(/^\(\d+ events, no more\)$/)
            break
          }
          after = next[1]
        }
        expect(seen).toEqual(entries.map((e) => e["position"]))

        const typed = await ok(place, ["audit", "--type", "DeviceTokenRefreshed,AccountRegistered", "--since", "2020-01-01"])
        expect(typed.trim().split("\n").slice(0, -1).map((l) => l.split(" ")[3])).toEqual([
          "AccountRegistered",
          "DeviceTokenRefreshed",
          "AccountRegistered"
        ])
        const device = await ok(place, ["audit", "--email", "alice@example.com", "--dash", "1", "--device", "1"])
        expect(device.trim().split("\n").slice(0, -1).map((l) => l.split(" ")[3])).toEqual(["DeviceCreated", "DeviceTokenRefreshed"])
        const refused = await pinledger(place, ["audit", "--dash", "1", "--device", "0"])
        expect(refused.code).toBe(1)
        expect(refused.stderr).toContain("pinledger: device ids are per account")
        expect(refused.stdout).toBe("")

        // verify: clean, then a live row removed on purpose: found, exit status 1.
        expect(await ok(place, ["verify"])).toContain("verify: every projection matches the log")
        await place.query("DELETE FROM pl_device_tokens WHERE device_id = 0")
        const damaged = await pinledger(place, ["verify"])
        expect(damaged.code).toBe(1)
        expect(damaged.stdout).toContain("device-tokens: pl_device_tokens: 1 missing, 0 extra, 0 different")
        expect(damaged.stdout).toContain("pin-state: pl_pin_state: ok")
        expect(damaged.stdout).not.toContain(kitchen)
        // replay one projection repairs it.
        expect(await ok(place, ["replay", "device-tokens"])).toMatch(/^device-tokens \(inline\): rebuilt from the log, 2 rows$/m)
        expect(await ok(place, ["verify"])).toContain("verify: every projection matches the log")
        const outbox = await pinledger(place, ["replay", "notification-outbox"])
        expect(outbox.code).toBe(1)
        expect(outbox.stderr).toContain("resetting it would send mails again")
        const all = await ok(place, ["replay"])
        expect(all).toContain("pin-history (async)")
        expect(all).toContain("notification-outbox: left alone")

        // backup, and restore into an empty database: the same log.
        const file = join(place.dataDir, "backup.gz")
        expect(await ok(place, ["backup", file])).toMatch(/^backup: 6 events \(head 6\) written to .*backup\.gz \(sha256:[0-9a-f]{64}\)$/m)
        expect(await ok(fresh, ["restore", file])).toContain("restore: 6 events (head 6) loaded from")
        const everything = ["audit", "--json", "--limit", "1000"]
        expect(await ok(fresh, everything)).toEqual(await ok(place, everything))
        expect(await ok(fresh, ["verify"])).toContain("verify: every projection matches the log")
        const twice = await pinledger(fresh, ["restore", file])
        expect(twice.code).toBe(1)
        expect(twice.stderr).toContain("pinledger: restore needs an empty database, and this one is not: it holds 6 events")

        if (name === "pglite") {
          // A server holds the embedded database (its lock file names a live process): refused, with why.
          await writeFile(join(place.dataDir, "pglite", "pinledger.lock"), `${process.pid}\n`)
          const locked = await pinledger(place, ["replay"])
          expect(locked.code).toBe(1)
          expect(locked.stderr).toContain(`is in use by process ${process.pid} (a running server?): stop it first`)
          await rm(join(place.dataDir, "pglite", "pinledger.lock"))
        }
      } finally {
        await place.drop()
        await fresh.drop()
      }
    })
  })
}
