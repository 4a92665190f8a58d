import { describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { request as httpsRequest } from "node:https"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** Starts `node src/main.ts` as a user would, and resolves once it logs that it listens. */
const startServer = async (env: Record<string, string>) => {
  const child = spawn(process.execPath, ["src/main.ts"], {
    env: { ...process.env, DATABASE_URL: "", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  const listening = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes("Listening on")) resolve()
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("exit", (code) => reject(new Error(`server exited with ${code} before listening:\n${output}`)))
  })
  await listening
  return { child, output: () => output }
}

/** GET over HTTPS, trusting only `ca` and checking the certificate for `localhost`. */
const httpsGet = (port: number, path: string, ca: string) =>
  new Promise<{ status: number | undefined; body: string }>((resolve, reject) => {
    const request = httpsRequest({ host: "127.0.0.1", port, path, ca, servername: "localhost", agent: false }, (response) => {
      let body = ""
      response.setEncoding("utf8")
      response.on("data", (chunk: string) => (body += chunk))
      response.on("end", () => resolve({ status: response.statusCode, body }))
    })
    request.on("error", reject)
    request.end()
  })

const exitOf = async (child: ChildProcess) => {
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null]
  return { code, signal }
}

describe("the server process", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`serves /health from the embedded database and exits 0 on ${signal}`, async () => {
      const dataDir = await mkdtemp(join(tmpdir(), "pinledger-server-"))
      try {
        const port = await freePort()
        const httpsPort = await freePort()
        const { child, output } = await startServer({
          PINLEDGER_HTTP_PORT: String(port),
          PINLEDGER_HTTPS_PORT: String(httpsPort),
          PINLEDGER_BIND: "127.0.0.1",
          PINLEDGER_DATA_DIR: dataDir
        })
        const response = await fetch(`http://127.0.0.1:${port}/health`)
        expect(response.status).toBe(200)
        expect(await response.json()).toEqual({ status: "ok", database: "pglite", head: 0 })
        // The same app over TLS, verified against the self-signed certificate made in the data directory.
        const ca = await readFile(join(dataDir, "tls", "cert.pem"), "utf8")
        const secure = await httpsGet(httpsPort, "/health", ca)
        expect(secure.status).toBe(200)
        expect(JSON.parse(secure.body)).toEqual({ status: "ok", database: "pglite", head: 0 })
        const exited = exitOf(child)
        child.kill(signal)
        expect(await exited).toEqual({ code: 0, signal: null })
        expect(output()).toContain(`embedded PGlite in ${join(dataDir, "pglite")}`)
      } finally {
        await rm(dataDir, { recursive: true, force: true })
      }
    })
  }

  it("refuses a bad port setting with a clear error", async () => {
    const child = spawn(process.execPath, ["src/main.ts"], {
      env: { ...process.env, DATABASE_URL: "", PINLEDGER_HTTP_PORT: "eighty" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (c: Buffer) => (output += c.toString()))
    child.stderr.on("data", (c: Buffer) => (output += c.toString()))
    const { code } = await exitOf(child)
    expect(code).not.toBe(0)
    expect(output).toContain("PINLEDGER_HTTP_PORT")
  })
})
