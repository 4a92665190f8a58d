import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Logger } from "effect"
import { spawn } from "node:child_process"
import { once } from "node:events"
import { mkdtemp, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { formatJsonLine } from "../../src/adapters/Logging.ts"

/** What every JSON log line has (README: PINLEDGER_LOG_FORMAT). */
const expectRecord = (line: string) => {
  const record = JSON.parse(line) as Record<string, unknown>
  expect(Object.keys(record)).toEqual(expect.arrayContaining(["time", "level", "message", "annotations", "spans", "fiber"]))
  expect(record["time"]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  expect(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]).toContain(record["level"])
  expect(typeof record["message"]).toBe("string")
  expect(typeof record["annotations"]).toBe("object")
  expect(typeof record["spans"]).toBe("object")
  return record
}

/** The lines the JSON formatter makes of what `effect` logs. */
const linesOf = (effect: Effect.Effect<void>) => {
  const lines: Array<string> = []
  const capture = Logger.map(formatJsonLine, (line) => void lines.push(line))
  Effect.runSync(effect.pipe(Effect.provide(Logger.layer([capture]))))
  return lines
}

describe("JSON log lines", () => {
  it("carry time, level, message, annotations and spans; other values go to details", () => {
    const [line, ...rest] = linesOf(
      Effect.logWarning("device closing", "(idle timeout)", { pins: 3 }).pipe(
        Effect.annotateLogs({ subscriber: "notification-outbox", remote: "10.0.0.1:4000" }),
        Effect.withLogSpan("login")
      )
    )
    expect(rest).toEqual([])
    expect(line).not.toContain("\n")
    const record = expectRecord(line!)
    expect(record).toMatchObject({
      level: "WARN",
      message: "device closing (idle timeout)",
      annotations: { subscriber: "notification-outbox", remote: "10.0.0.1:4000" },
      details: [{ pins: 3 }]
    })
    expect(Object.keys(record["spans"] as object)).toEqual(["login"])
    expect(record).not.toHaveProperty("cause")
  })

  it("give an error's cause, multi-line, as one string in one line", () => {
    const [line] = linesOf(Effect.logError("writer failed", Cause.fail(new Error("boom\nsecond line"))))
    expect(line!.split("\n")).toHaveLength(1)
    const record = expectRecord(line!)
    expect(record).toMatchObject({ level: "ERROR", message: "writer failed", annotations: {}, spans: {} })
    expect(record["cause"]).toContain("boom\nsecond line")
  })
})

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** `node src/main.ts <args>` as a user runs it, with `env`; its output line by line. */
const run = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const child = spawn(process.execPath, ["src/main.ts", ...args], {
    env: { ...process.env, DATABASE_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  const waiters: Array<{ match: (line: string) => boolean; resolve: () => void }> = []
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk
    const lines = stdout.split("\n").slice(0, -1)
    for (const w of waiters.splice(0)) (lines.some(w.match) ? w.resolve() : waiters.push(w))
  })
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
  const exited = once(child, "exit").then(([code]) => code as number | null)
  return {
    child,
    exited,
    /** Complete lines of standard output so far. */
    lines: () => stdout.split("\n").slice(0, -1),
    stderr: () => stderr,
    /** Resolves once a line of standard output matches; rejects if the process exits first. */
    line: (match: (line: string) => boolean) =>
      Promise.race([
        new Promise<void>((resolve) => {
          if (stdout.split("\n").slice(0, -1).some(match)) resolve()
          else waiters.push({ match, resolve })
        }),
        exited.then((code) => Promise.reject(new Error(`exited with ${code}:\n${stdout}\n${stderr}`)))
      ])
  }
}

describe("PINLEDGER_LOG_FORMAT=json in the server process and the CLI", () => {
  it("the server logs one JSON object per line, start to stop; with PINLEDGER_METRICS=off /metrics answers 404", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "pinledger-logjson-"))
    try {
      const port = await freePort()
      const server = run(["serve"], {
        PINLEDGER_LOG_FORMAT: "json",
        PINLEDGER_METRICS: "off",
        PINLEDGER_HTTP_PORT: String(port),
        PINLEDGER_HTTPS_PORT: String(await freePort()),
        PINLEDGER_BIND: "127.0.0.1",
        PINLEDGER_DATA_DIR: dataDir
      })
      await server.line((line) => line.includes("Listening on"))
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200)
      expect((await fetch(`http://127.0.0.1:${port}/metrics`)).status).toBe(404)
      // The request log: its annotations and span come along.
      await server.line((line) => line.includes("/health"))
      // A device token in the path (the legacy HTTP API's) is not written to the log whole.
      const token = "Ab3dEf6hIj9lMn2pQr5tUv8xYz-_0123"
      expect((await fetch(`http://127.0.0.1:${port}/${token}/get/V1?value=${token}`)).status).toBe(400)
      await server.line((line) => line.includes("/get/V1"))
      server.child.kill("SIGTERM")
      expect(await server.exited).toBe(0)

      const records = server.lines().map(expectRecord)
      expect(records.length).toBeGreaterThanOrEqual(3)
      expect(records.map((r) => r["message"])).toEqual(expect.arrayContaining([
        expect.stringMatching(/^migrations: \d+ applied$/),
        expect.stringMatching(/^Listening on http:\/\/127\.0\.0\.1:/)
      ]))
      const request = records.find((r) => (r["annotations"] as Record<string, unknown>)["http.url"] === "/health")
      expect(request).toMatchObject({ level: "INFO", annotations: { "http.method": "GET", "http.status": 200 } })
      expect(Object.keys(request!["spans"] as object).length).toBeGreaterThan(0)
      expect(server.lines().filter((line) => line.includes(token))).toEqual([])
      expect(records.find((r) => String((r["annotations"] as Record<string, unknown>)["http.url"]).endsWith("/get/V1"))).toMatchObject({
        annotations: { "http.method": "GET", "http.url": "/Ab3d…/get/V1", "http.status": 400 }
      })
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })

  it("the CLI logs as JSON too (its answers stay plain text); an unknown format is refused", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "pinledger-logjson-"))
    try {
      const migrate = run(["migrate"], { PINLEDGER_LOG_FORMAT: "json", PINLEDGER_DATA_DIR: dataDir })
      expect(await migrate.exited).toBe(0)
      const lines = migrate.lines()
      const logs = lines.filter((line) => line.startsWith("{"))
      expect(logs.length).toBeGreaterThanOrEqual(1)
      for (const line of logs) expectRecord(line)
      expect(lines.filter((line) => !line.startsWith("{"))).toEqual(expect.arrayContaining([expect.stringMatching(/^pglite: applied /)]))

      const wrong = run(["migrate"], { PINLEDGER_LOG_FORMAT: "xml", PINLEDGER_DATA_DIR: dataDir })
      expect(await wrong.exited).not.toBe(0)
      expect(`${wrong.lines().join("\n")}${wrong.stderr()}`).toContain("PINLEDGER_LOG_FORMAT")
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
