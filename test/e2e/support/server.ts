/**
 * A real Pinledger server process for the end-to-end tests: `node src/main.ts` on a temporary data
 * directory with the embedded database (PGlite), provisioned beforehand through the CLI exactly as
 * a user would (`account create`, `device create`), because only one process may open PGlite at a
 * time. The server makes a self-signed certificate in `<dataDir>/tls/cert.pem` covering localhost
 * and 127.0.0.1; clients get it as their CA.
 *
 * Given a `databaseUrl` (from `createDatabase`: a fresh database on the PostgreSQL server of
 * DATABASE_URL, dropped by its `drop`), the CLI runs and the server run on PostgreSQL instead, and
 * the CLI may also run while the server does.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { once } from "node:events"
import { mkdtemp, readFile, rm } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import pg from "pg"

/** The repository root, so the server runs from it whatever the working directory. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))

export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

export const makeDataDir = () => mkdtemp(join(tmpdir(), "pinledger-e2e-"))

export const removeDataDir = (dataDir: string) => rm(dataDir, { recursive: true, force: true })

/**
 * A database of its own on a PostgreSQL server, for one test file: the server and the CLI get
 * `url`; `drop` removes it (WITH (FORCE): connections still open are ended).
 */
export interface PostgresDatabase {
  readonly name: string
  readonly url: string
  readonly drop: () => Promise<void>
}

const adminQuery = async (serverUrl: string, query: string) => {
  const client = new pg.Client({ connectionString: serverUrl })
  await client.connect()
  try {
    await client.query(query)
  } finally {
    await client.end()
  }
}

/**
 * Creates `pinledger_e2e_<pid>_<random>` on the server of `serverUrl` (e.g. DATABASE_URL; its user
 * must be allowed to create databases) and returns its URL: `serverUrl` with the database name
 * replaced, query parameters (sslmode, …) kept.
 */
export const createDatabase = async (serverUrl: string): Promise<PostgresDatabase> => {
  const name = `pinledger_e2e_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  await adminQuery(serverUrl, `CREATE DATABASE ${name}`)
  const url = new URL(serverUrl)
  url.pathname = `/${name}`
  return { name, url: url.toString(), drop: () => adminQuery(serverUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) }
}

/** The environment of the CLI and the server: PGlite in `dataDir`, or PostgreSQL at `databaseUrl`. */
export const baseEnv = (dataDir: string, databaseUrl = ""): NodeJS.ProcessEnv => ({
  ...process.env,
  DATABASE_URL: databaseUrl,
  PINLEDGER_DATA_DIR: dataDir,
  PINLEDGER_BIND: "127.0.0.1"
})

/** Runs `node src/main.ts <args>` to completion; fails with its output if it exits non-zero. */
export const runCli = (dataDir: string, args: ReadonlyArray<string>, databaseUrl = "") =>
  new Promise<string>((resolve, reject) => {
    const child = spawn(process.execPath, ["src/main.ts", ...args], {
      cwd: repoRoot,
      env: baseEnv(dataDir, databaseUrl),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()))
    child.once("error", reject)
    child.once("exit", (code, signal) =>
      code === 0
        ? resolve(output)
        : reject(new Error(`pinledger ${args.join(" ")} exited with ${code ?? signal}:\n${output}`)))
  })

export interface ProvisionedDevice {
  readonly name: string
  readonly dashId: number
  readonly deviceId: number
  readonly token: string
}

export interface Account {
  readonly email: string
  readonly password: string
}

export const createAccount = async (dataDir: string, account: Account, databaseUrl = "") => {
  await runCli(dataDir, ["account", "create", "--email", account.email, "--password", account.password], databaseUrl)
}

/**
 * `device create` prints `device <id> "<name>" in dashboard <dashId> of <email>` and then
 * `token: <32 characters>` (src/adapters/cli/Cli.ts).
 */
export const createDevice = async (dataDir: string, email: string, name: string, databaseUrl = ""): Promise<ProvisionedDevice> => {
  const output = await runCli(dataDir, ["device", "create", "--email", email, "--name", name], databaseUrl)
  const created = /device (\d+) "(.*)" in dashboard (\d+) of /.exec(output)
  const token = /token: (\S{32})/.exec(output)
  if (!created || !token) throw new Error(`unexpected output of device create:\n${output}`)
  return { name, deviceId: Number(created[1]), dashId: Number(created[3]), token: token[1]! }
}

/**
 * An account with one device per entry of `devices` (key → device name), created in order (so
 * device ids are 0, 1, …); resolves with the devices under the same keys.
 */
export const provision = async <K extends string>(
  dataDir: string,
  account: Account,
  devices: Readonly<Record<K, string>>,
  databaseUrl = ""
): Promise<Record<K, ProvisionedDevice>> => {
  await createAccount(dataDir, account, databaseUrl)
  const created = {} as Record<K, ProvisionedDevice>
  for (const [key, name] of Object.entries(devices) as Array<[K, string]>) {
    created[key] = await createDevice(dataDir, account.email, name, databaseUrl)
  }
  return created
}

export interface ServerProcess {
  readonly dataDir: string
  /** Plain port: HTTP, hardware TCP, ws://…/websockets. */
  readonly httpPort: number
  /** TLS port: HTTPS, app protocol, hardware TLS, wss://…/websockets. */
  readonly httpsPort: number
  /** The server's certificate (PEM), to be trusted as a CA. */
  readonly ca: string
  readonly child: ChildProcess
  /** Everything the process printed so far. */
  readonly output: () => string
  /** SIGTERM, then the exit. */
  readonly stop: () => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** SIGKILL, then the exit: no chance to flush anything. */
  readonly kill: () => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

const exitOf = async (child: ChildProcess) => {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode }
  const [code, signal] = (await once(child, "exit")) as [number | null, NodeJS.Signals | null]
  return { code, signal }
}

export interface StartOptions {
  readonly dataDir: string
  /** Given to start again on the same ports; fresh free ports otherwise. */
  readonly httpPort?: number
  readonly httpsPort?: number
  /** PostgreSQL (e.g. `createDatabase(…).url`); unset or "" = the embedded database in `dataDir`. */
  readonly databaseUrl?: string
}

/** Starts the server and resolves once it logs "Listening on" (both ports are bound by then). */
export const startServer = async (options: StartOptions): Promise<ServerProcess> => {
  const httpPort = options.httpPort ?? await freePort()
  const httpsPort = options.httpsPort ?? await freePort()
  const child = spawn(process.execPath, ["src/main.ts"], {
    cwd: repoRoot,
    env: {
      ...baseEnv(options.dataDir, options.databaseUrl),
      PINLEDGER_HTTP_PORT: String(httpPort),
      PINLEDGER_HTTPS_PORT: String(httpsPort)
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes("Listening on")) resolve()
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("error", reject)
    child.once("exit", (code, signal) => reject(new Error(`server exited with ${code ?? signal} before listening:\n${output}`)))
  })
  const ca = await readFile(join(options.dataDir, "tls", "cert.pem"), "utf8")
  const signalAndWait = (signal: NodeJS.Signals) => {
    const exited = exitOf(child)
    if (child.exitCode === null && child.signalCode === null) child.kill(signal)
    return exited
  }
  return {
    dataDir: options.dataDir,
    httpPort,
    httpsPort,
    ca,
    child,
    output: () => output,
    stop: () => signalAndWait("SIGTERM"),
    kill: () => signalAndWait("SIGKILL")
  }
}

/** Stops a server in clean-up: SIGTERM, and SIGKILL if it has not exited 15 s later. */
export const stopQuietly = async (server: ServerProcess | undefined) => {
  if (server === undefined) return
  const guard = setTimeout(() => server.child.kill("SIGKILL"), 15_000)
  try {
    await server.stop()
  } finally {
    clearTimeout(guard)
  }
}

/** The log's head position from `GET /health` on the plain port. */
export const healthHead = async (server: ServerProcess): Promise<number> => {
  const response = await fetch(`http://127.0.0.1:${server.httpPort}/health`)
  const body = (await response.json()) as { head?: unknown }
  if (typeof body.head !== "number") throw new Error(`/health answered ${response.status} ${JSON.stringify(body)}`)
  return body.head
}

/** The last lines of the server's output, for a failure report. */
export const outputTail = (server: ServerProcess | undefined, lines = 40) =>
  server === undefined ? "(no server)" : server.output().split("\n").slice(-lines).join("\n")

/**
 * For a beforeAll that provisions and starts a server: each CLI run opens the embedded database
 * afresh (the first one also migrates it), which under a busy full test run can take a while.
 */
export const provisioningTimeout = 180_000
