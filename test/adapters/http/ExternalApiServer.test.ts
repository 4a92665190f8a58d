import { describe, expect, it } from "@effect/vitest"
import { execFileSync, spawn } from "node:child_process"
import { once } from "node:events"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "../../support/freePort.ts"
import { call } from "../../support/httpClient.ts"

/**
 * The server as `npm start` runs it (src/main.ts, embedded database): the Blynk IoT API is on both
 * ports, its export links start with PINLEDGER_PUBLIC_URL, and its tokens (in the query string)
 * never reach the log.
 */
describe("/external/api in the server process", () => {
  it("answers on both ports, links under PINLEDGER_PUBLIC_URL, and logs requests without their query string", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "pinledger-external-"))
    const env = { ...process.env, DATABASE_URL: "", PINLEDGER_DATA_DIR: dataDir, PINLEDGER_LOG_FORMAT: "json" }
    try {
      const cli = (...args: Array<string>) => execFileSync(process.execPath, ["src/main.ts", ...args], { env, encoding: "utf8" })
      cli("account", "create", "--email", "ext@example.com", "--password", "a good password")
      const token = /token: (\S+)/.exec(cli("device", "create", "--email", "ext@example.com", "--name", "probe"))![1]!
      const [plainPort, tlsPort] = [await freePort(), await freePort()]
      const child = spawn(process.execPath, ["src/main.ts", "serve"], {
        env: {
          ...env,
          PINLEDGER_HTTP_PORT: String(plainPort),
          PINLEDGER_HTTPS_PORT: String(tlsPort),
          PINLEDGER_BIND: "127.0.0.1",
          PINLEDGER_PUBLIC_URL: "https://iot.example.com:9443/"
        },
        stdio: ["ignore", "pipe", "pipe"]
      })
      let stdout = ""
      let stderr = ""
      let onLine = () => {}
      child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        stdout += chunk
        onLine()
      })
      child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk))
      const exited = once(child, "exit").then(([code]) => code as number | null)
      const line = (match: (line: string) => boolean) =>
        Promise.race([
          new Promise<void>((resolve) => {
            const check = () => stdout.split("\n").slice(0, -1).some(match) && resolve()
            onLine = check
            check()
          }),
          exited.then((code) => Promise.reject(new Error(`exited with ${code}:\n${stdout}\n${stderr}`)))
        ])
      try {
        await line((l) => l.includes(`Listening on`) && l.includes(String(plainPort)))
        const plain = (path: string) => call({ port: plainPort, path })
        const tls = (path: string) => call({ port: tlsPort, path, tls: true })
        expect((await plain(`/external/api/update?token=${token}&v1=21.5`)).status).toBe(200)
        expect((await tls(`/external/api/get?token=${token}&v1`)).text).toBe("21.5")
        const unknown = await plain(`/external/api/get?token=${"x".repeat(32)}&v1`)
        expect({ status: unknown.status, body: unknown.text }).toEqual({ status: 400, body: `{"error":{"message":"Invalid token."}}` })
        const enumError = await tls(`/external/api/data/get?token=${token}&period=YEAR`)
        expect(enumError.status).toBe(500)
        // The pin history follows the log: the export has data once it has caught up.
        let link: string | undefined
        while (link === undefined) {
          const answer = await tls(`/external/api/data/get?token=${token}&pin=V1`)
          if (answer.status === 200) link = (JSON.parse(answer.text) as { link: string }).link
          else expect({ status: answer.status, body: answer.text }).toEqual({ status: 500, body: `{"error":{"message":"No data"}}` })
        }
        expect(link).toMatch(/^https:\/\/iot\.example\.com:9443\/device_data_\d+_\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.zip$/)
        expect((await plain(new URL(link).pathname)).headers["content-type"]).toBe("application/zip")
        await line((l) => l.includes("/external/api/data/get"))
      } finally {
        child.kill("SIGTERM")
        expect(await exited).toBe(0)
      }
      const logged = stdout.split("\n").filter((l) => l.includes("/external/api/"))
      expect(logged.length).toBeGreaterThanOrEqual(5)
      expect(stdout).not.toContain(token)
      expect(stdout).not.toContain("x".repeat(32))
      expect(stdout).not.toContain("token=")
    } finally {
      await rm(dataDir, { recursive: true, force: true })
    }
  })
})
