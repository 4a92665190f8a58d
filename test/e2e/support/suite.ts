/**
 * The frame every end-to-end test file shares, registered as vitest hooks where `e2eSuite` is
 * called (at the top of a file, or inside a `describe`):
 * - beforeAll: a temporary data directory; `provision` creates accounts and devices through the CLI
 *   (server.ts); then the server starts on it (unless `startServer: false`: the tests start their
 *   servers themselves with `startServer`).
 * - For each test, the clients it registers with `opened`: closed after it, and what they saw
 *   printed if it failed, followed by the tail of each server's output.
 * - afterAll: every server started is stopped (latest first), the data directory removed.
 *
 * With `databaseUrl`, the CLI and the servers run on that PostgreSQL database instead of the
 * embedded one (server.ts `createDatabase`).
 */
import { afterAll, afterEach, beforeAll, beforeEach, expect } from "vitest"
import { Status } from "../../../src/adapters/blynk/Command.ts"
import { AppClient } from "./appClient.ts"
import type { Device } from "./blynkLibrary.ts"
import {
  type Account,
  makeDataDir,
  outputTail,
  provision as provisionAccount,
  provisioningTimeout,
  type ProvisionedDevice,
  removeDataDir,
  type ServerProcess,
  startServer,
  stopQuietly
} from "./server.ts"

/** The CLI on the suite's data directory (and database), for `provision`. */
export interface Provisioner {
  /** server.ts `provision`: `account`, then its devices (key → device name) in order; resolves with them under the same keys. */
  readonly provision: <K extends string>(account: Account, devices: Readonly<Record<K, string>>) => Promise<Record<K, ProvisionedDevice>>
}

export interface SuiteOptions<D> {
  /** Runs before any server starts; what it resolves with is `devices()`. */
  readonly provision: (cli: Provisioner) => Promise<D>
  /** PostgreSQL for the CLI and the servers (read in beforeAll); the embedded database if unset. */
  readonly databaseUrl?: () => string
  /** false: no server in beforeAll; the tests call `startServer`. */
  readonly startServer?: boolean
}

/** What the running test opened: closed after it, and shown in its failure report. */
export interface Opened {
  /** A blynk-library device (support/blynkLibrary.ts): closed after the test; its events reported. */
  readonly device: (device: Device) => Device
  /** An app client (support/appClient.ts): closed after the test; its frames reported as `<label> frames`. */
  readonly app: (app: AppClient, label?: string) => AppClient
  /** Anything else the test opened: `close` runs after the test, `describe` is reported. */
  readonly track: <T>(thing: T, handling: { readonly close?: (thing: T) => unknown; readonly describe?: (thing: T) => string }) => T
  /** A line of the failure report, made when the test has failed. */
  readonly note: (describe: () => string) => void
}

export interface Suite<D> {
  readonly dataDir: () => string
  /** The PostgreSQL URL the CLI and the servers run on; "" for the embedded database. */
  readonly databaseUrl: () => string
  /** What `provision` resolved with. */
  readonly devices: () => D
  /** The server started last (in beforeAll, unless `startServer: false`). */
  readonly server: () => ServerProcess
  /**
   * Starts a server on the suite's data directory (and database), on `ports` if given; stopped in
   * afterAll. Failure reports show its output as "server output <label>:".
   */
  readonly startServer: (label?: string, ports?: { readonly httpPort: number; readonly httpsPort: number }) => Promise<ServerProcess>
  readonly opened: Opened
  /**
   * An app session of `account` on `server()`, opened by the running test: logged in (expects OK, 200)
   * with dashboard `dashId` activated (expects OK, so one of its devices must be online).
   */
  readonly activeApp: (account: Account, dashId: number, label?: string) => Promise<AppClient>
}

interface Entry {
  readonly close?: () => unknown
  readonly describe?: () => string
}

export const e2eSuite = <D>(options: SuiteOptions<D>): Suite<D> => {
  const databaseUrl = () => options.databaseUrl?.() ?? ""
  let dataDir = ""
  let devices: { readonly value: D } | undefined
  const servers: Array<{ readonly label: string; readonly server: ServerProcess }> = []
  /** The running test's entries; a fresh list for each test. */
  let current: Array<Entry> | undefined

  const server = () => {
    const last = servers.at(-1)
    if (last === undefined) throw new Error("no server is running (did beforeAll fail?)")
    return last.server
  }

  const start = async (label = "", ports?: { readonly httpPort: number; readonly httpsPort: number }) => {
    const started = await startServer({ dataDir, databaseUrl: databaseUrl(), ...ports })
    servers.push({ label, server: started })
    return started
  }

  const add = (entry: Entry) => {
    if (current === undefined) throw new Error("clients can only be registered while a test runs")
    current.push(entry)
  }

  const opened: Opened = {
    device: (device) => {
      add({ close: () => device.close(), describe: () => `device events: ${device.events.join(", ")}` })
      return device
    },
    app: (app, label = "app") => {
      add({ close: () => app.close(), describe: () => `${label} frames:\n${app.describe()}` })
      return app
    },
    track: (thing, handling) => {
      const { close, describe } = handling
      add({ ...(close ? { close: () => close(thing) } : {}), ...(describe ? { describe: () => describe(thing) } : {}) })
      return thing
    },
    note: (describe) => add({ describe })
  }

  beforeAll(async () => {
    dataDir = await makeDataDir()
    const provision: Provisioner["provision"] = (account, names) => provisionAccount(dataDir, account, names, databaseUrl())
    devices = { value: await options.provision({ provision }) }
    if (options.startServer !== false) await start()
  }, provisioningTimeout)

  beforeEach(({ onTestFailed }) => {
    const mine: Array<Entry> = []
    current = mine
    // Runs after afterEach (the clients are closed by then, what they saw is kept).
    onTestFailed(() => {
      for (const entry of mine) if (entry.describe) console.error(entry.describe())
      if (servers.length === 0) console.error(`server output:\n${outputTail(undefined)}`)
      for (const { label, server } of servers) console.error(`server output${label === "" ? "" : ` ${label}`}:\n${outputTail(server)}`)
    })
  })

  afterEach(async () => {
    const closing = current ?? []
    current = undefined
    // Every client is closed even if closing another one fails; the first failure is reported.
    const results = await Promise.allSettled(closing.map(async (entry) => entry.close?.()))
    const failed = results.find((result) => result.status === "rejected")
    if (failed) throw failed.reason
  })

  afterAll(async () => {
    try {
      for (const { server } of [...servers].reverse()) await stopQuietly(server)
    } finally {
      if (dataDir !== "") await removeDataDir(dataDir)
    }
  })

  return {
    dataDir: () => dataDir,
    databaseUrl,
    devices: () => {
      if (devices === undefined) throw new Error("nothing is provisioned (did beforeAll fail?)")
      return devices.value
    },
    server,
    startServer: start,
    opened,
    activeApp: async (account, dashId, label) => {
      const srv = server()
      const app = opened.app(await AppClient.connect(srv.httpsPort, srv.ca), label)
      expect(await app.login(account.email, account.password)).toBe(Status.OK)
      expect(await app.activate(dashId)).toBe(Status.OK)
      return app
    }
  }
}
