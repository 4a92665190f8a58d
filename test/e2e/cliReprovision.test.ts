/**
 * `npx pinledger device reprovision --email E --device N` run as its own process while the server
 * runs (README, "Command line"), with an npm `blynk-library` device and the owner's raw TLS app
 * client.
 *
 * - With DATABASE_URL set: the server and the CLI on a fresh database of that PostgreSQL server
 *   (support/server.ts `createDatabase`, dropped afterwards). The CLI appends DeviceTokenRefreshed
 *   to the account's stream; the server follows the settled log, its account actor catches up and
 *   closes the device's connections. blynk-library 0.5.4 then emits 'disconnect', comes back 5 s
 *   later with the token it was made with, gets INVALID_TOKEN (9), emits 'error' "INVALID_TOKEN"
 *   and stops (see reprovision.test.ts).
 * - Always: the embedded database, which only one process may open ("with the embedded database
 *   the CLI cannot run while the server does"). The CLI must then refuse to run while the server
 *   has the data directory open, and change nothing.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest"
import { spawn } from "node:child_process"
import { Command, Status } from "../../src/adapters/blynk/Command.ts"
import { bodyFields } from "../../src/adapters/blynk/Frame.ts"
import { AppClient } from "./support/appClient.ts"
import { connectDevice, type Device } from "./support/blynkLibrary.ts"
import {
  baseEnv,
  createDatabase,
  makeDataDir,
  outputTail,
  type PostgresDatabase,
  provision,
  provisioningTimeout,
  type ProvisionedDevice,
  removeDataDir,
  repoRoot,
  type ServerProcess,
  startServer,
  stopQuietly
} from "./support/server.ts"

const account = { email: "cli-reprovision@e2e.test", password: "cli-reprovision-secret" }

/** `npx pinledger <args>` from the repository, as a user types it; its exit code and output. */
const npxPinledger = (dataDir: string, databaseUrl: string, args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn("npx", ["pinledger", ...args], {
      cwd: repoRoot,
      env: baseEnv(dataDir, databaseUrl),
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.once("error", reject)
    child.once("exit", (code) => resolve({ code, stdout, stderr }))
  })

/** Resolves on the library's next `event`; rejects if one of `unexpected` comes first. */
const nextEvent = (device: Device, event: string, unexpected: ReadonlyArray<string>) =>
  new Promise<Array<unknown>>((resolve, reject) => {
    const listeners = new Map<string, (...args: Array<unknown>) => void>()
    const cleanup = () => {
      for (const [name, listener] of listeners) device.blynk.off(name, listener)
    }
    listeners.set(event, (...args) => {
      cleanup()
      resolve(args)
    })
    for (const name of unexpected) {
      listeners.set(name, (...args) => {
        cleanup()
        reject(new Error(`'${name}' ${args.map(String).join(" ")} came before '${event}'; device events: ${device.events.join(", ")}`))
      })
    }
    for (const [name, listener] of listeners) device.blynk.on(name, listener)
  })

/** The server, the provisioned device and what the test opened, for clean-up and failure reports. */
const setUp = (databaseUrl: () => string) => {
  const state = {
    dataDir: "",
    server: undefined as ServerProcess | undefined,
    provisioned: undefined as ProvisionedDevice | undefined,
    devices: new Array<Device>(),
    apps: new Array<AppClient>(),
    cli: ""
  }
  beforeAll(async () => {
    state.dataDir = await makeDataDir()
    ;[state.provisioned] = (await provision(state.dataDir, account, ["cli-reprovisioned"], databaseUrl())) as [ProvisionedDevice]
    state.server = await startServer({ dataDir: state.dataDir, databaseUrl: databaseUrl() })
  }, provisioningTimeout)
  afterAll(async () => {
    for (const device of state.devices) device.close()
    await Promise.all(state.apps.map((app) => app.close()))
    await stopQuietly(state.server)
    if (state.dataDir !== "") await removeDataDir(state.dataDir)
  })
  const report = () =>
    onTestFailed(() => {
      for (const device of state.devices) console.error(`device events: ${device.events.join(", ")}`)
      for (const app of state.apps) console.error(`app frames:\n${app.describe()}`)
      console.error(`pinledger device reprovision printed:\n${state.cli}`)
      console.error(`server output:\n${outputTail(state.server)}`)
    })
  /** The owner's app, logged in, with the device's dashboard active. */
  const activeOwner = async (srv: ServerProcess, dashId: number) => {
    const owner = await AppClient.connect(srv.httpsPort, srv.ca)
    state.apps.push(owner)
    expect(await owner.login(account.email, account.password)).toBe(Status.OK)
    expect(await owner.activate(dashId)).toBe(Status.OK)
    return owner
  }
  const reprovision = async (deviceId: number) => {
    const result = await npxPinledger(state.dataDir, databaseUrl(), ["device", "reprovision", "--email", account.email, "--device", String(deviceId)])
    state.cli = `exit code ${result.code}\n${result.stdout}${result.stderr}`
    return result
  }
  return { state, report, activeOwner, reprovision }
}

const serverUrl = process.env.DATABASE_URL

if (serverUrl) {
  describe("npx pinledger device reprovision while the server runs on PostgreSQL", () => {
    let database: PostgresDatabase | undefined
    beforeAll(async () => {
      database = await createDatabase(serverUrl)
    })
    // Registered before setUp's, so it runs after the server has stopped.
    afterAll(async () => {
      await database?.drop()
    })
    const { state, report, activeOwner, reprovision } = setUp(() => database!.url)

    it("prints a new token; the server closes the device, refuses its old token, and a device on the new token works", async () => {
      report()
      const srv = state.server!
      const { dashId, deviceId, token: oldToken } = state.provisioned!
      const target = `${dashId}-${deviceId}`

      const old = await connectDevice(oldToken, { kind: "tcp", port: srv.httpPort })
      state.devices.push(old)
      const owner = await activeOwner(srv, dashId)

      const disconnected = nextEvent(old, "disconnect", ["error"])
      const offline = owner.waitFor((f) => f._tag === "Message" && f.command === Command.DEVICE_OFFLINE)
      const { code, stdout } = await reprovision(deviceId)
      expect(code).toBe(0)
      expect(stdout).toContain(`device ${deviceId} in dashboard ${dashId} of ${account.email} has a new token`)
      const newToken = /^token: (\S+)$/m.exec(stdout)?.[1]
      expect(newToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
      expect(newToken).not.toBe(oldToken)

      // The server learns it from the log: the device's connection is closed, the app told.
      await disconnected
      const gone = await offline
      expect(gone._tag === "Message" && bodyFields(gone.body)).toEqual([target])

      // The library comes back by itself with the old token; the server refuses it and it stops.
      const [reason] = await nextEvent(old, "error", ["connect"])
      expect(reason).toBe("INVALID_TOKEN")
      expect(old.blynk.timerConn ?? null).toBeNull()
      expect(old.events.filter((e) => e === "connect")).toEqual(["connect"])

      // The account's actor knows the new token: the app's device list shows it.
      const listId = owner.send(Command.GET_DEVICES, [String(dashId)])
      const list = await owner.waitFor((f) => f.id === listId)
      expect(list._tag === "Message" && JSON.parse(bodyFields(list.body)[0]!)).toEqual([
        expect.objectContaining({ id: deviceId, token: newToken })
      ])

      // A new library instance with the printed token connects, and the owner's write reaches it.
      const fresh = await connectDevice(newToken!, { kind: "tcp", port: srv.httpPort })
      state.devices.push(fresh)
      const connected = await owner.waitFor((f) => f._tag === "Message" && f.command === Command.HARDWARE_CONNECTED)
      expect(connected._tag === "Message" && bodyFields(connected.body)).toEqual([target])
      const received = fresh.nextWrite(5)
      owner.virtualWrite(dashId, deviceId, 5, "to-printed-token")
      expect(await received).toEqual(["to-printed-token"])
    })
  })
}

describe("npx pinledger device reprovision while the server runs on the embedded database", () => {
  const { state, report, activeOwner, reprovision } = setUp(() => "")

  // Fails today: the CLI opens the PGlite directory the server has open, prints "has a new
  // token; the old one is refused" and a token, and exits 0; but the server never sees the
  // change (the old token keeps working, the printed one is refused), the change is lost when
  // the server stops, and two PGlite instances writing one directory can corrupt it.
  it("refuses to run (non-zero exit, no token) and changes nothing: the device stays connected on its token", async () => {
    report()
    const srv = state.server!
    const { dashId, deviceId, token } = state.provisioned!

    const device = await connectDevice(token, { kind: "tcp", port: srv.httpPort })
    state.devices.push(device)
    const owner = await activeOwner(srv, dashId)

    const { code, stdout } = await reprovision(deviceId)
    expect(code).not.toBe(0)
    expect(stdout).not.toMatch(/token: /)

    // Nothing changed: the owner's write reaches the device, and its token still logs in.
    const received = device.nextWrite(5)
    owner.virtualWrite(dashId, deviceId, 5, "still-provisioned")
    expect(await received).toEqual(["still-provisioned"])
    const second = await connectDevice(token, { kind: "tcp", port: srv.httpPort })
    state.devices.push(second)
    expect(device.events).toEqual(["connect", 'write V5 ["still-provisioned"]'])
  })
})
