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
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawn } from "node:child_process"
import { Command } from "../../src/adapters/blynk/Command.ts"
import { bodyFields } from "../../src/adapters/blynk/Frame.ts"
import { connectDevice, nextEvent } from "./support/blynkLibrary.ts"
import { baseEnv, createDatabase, type PostgresDatabase, repoRoot } from "./support/server.ts"
import { e2eSuite } from "./support/suite.ts"

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

/**
 * The server (on the embedded database, or on `databaseUrl`), the provisioned device, and
 * `reprovision`, whose output goes into the failure report.
 */
const setUp = (databaseUrl: () => string) => {
  const suite = e2eSuite({
    provision: ({ provision }) => provision(account, { provisioned: "cli-reprovisioned" }),
    databaseUrl
  })
  const reprovision = async (deviceId: number) => {
    const result = await npxPinledger(suite.dataDir(), suite.databaseUrl(), ["device", "reprovision", "--email", account.email, "--device", String(deviceId)])
    suite.opened.note(() => `pinledger device reprovision printed:\nexit code ${result.code}\n${result.stdout}${result.stderr}`)
    return result
  }
  return { ...suite, reprovision }
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
    const { server, devices, opened, activeApp, reprovision } = setUp(() => database!.url)

    it("prints a new token; the server closes the device, refuses its old token, and a device on the new token works", async () => {
      const srv = server()
      const { dashId, deviceId, token: oldToken } = devices().provisioned
      const target = `${dashId}-${deviceId}`

      const old = opened.device(await connectDevice(oldToken, { kind: "tcp", port: srv.httpPort }))
      const owner = await activeApp(account, dashId)

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
      const fresh = opened.device(await connectDevice(newToken!, { kind: "tcp", port: srv.httpPort }))
      const connected = await owner.waitFor((f) => f._tag === "Message" && f.command === Command.HARDWARE_CONNECTED)
      expect(connected._tag === "Message" && bodyFields(connected.body)).toEqual([target])
      const received = fresh.nextWrite(5)
      owner.virtualWrite(dashId, deviceId, 5, "to-printed-token")
      expect(await received).toEqual(["to-printed-token"])
    })
  })
}

describe("npx pinledger device reprovision while the server runs on the embedded database", () => {
  const { server, devices, opened, activeApp, reprovision } = setUp(() => "")

  // Fails today: the CLI opens the PGlite directory the server has open, prints "has a new
  // token; the old one is refused" and a token, and exits 0; but the server never sees the
  // change (the old token keeps working, the printed one is refused), the change is lost when
  // the server stops, and two PGlite instances writing one directory can corrupt it.
  it("refuses to run (non-zero exit, no token) and changes nothing: the device stays connected on its token", async () => {
    const srv = server()
    const { dashId, deviceId, token } = devices().provisioned

    const device = opened.device(await connectDevice(token, { kind: "tcp", port: srv.httpPort }))
    const owner = await activeApp(account, dashId)

    const { code, stdout } = await reprovision(deviceId)
    expect(code).not.toBe(0)
    expect(stdout).not.toMatch(/token: /)

    // Nothing changed: the owner's write reaches the device, and its token still logs in.
    const received = device.nextWrite(5)
    owner.virtualWrite(dashId, deviceId, 5, "still-provisioned")
    expect(await received).toEqual(["still-provisioned"])
    opened.device(await connectDevice(token, { kind: "tcp", port: srv.httpPort }))
    expect(device.events).toEqual(["connect", 'write V5 ["still-provisioned"]'])
  })
})
