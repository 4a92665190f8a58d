/**
 * Reprovisioning a device's token from the app (protocol.md §3.4) end to end: a real server
 * process, an npm `blynk-library` device and the owner's raw TLS app client.
 *
 * REFRESH_TOKEN (9) `dashId\0deviceId` answers a REFRESH_TOKEN frame with the new 32-character
 * token and closes the device's sockets at once. What blynk-library 0.5.4 then does
 * (node_modules/blynk-library/blynk.js): on the socket's 'end' it emits 'disconnect' and 5 s later
 * connects again with the token it was made with; an INVALID_TOKEN (9) answer to that login makes
 * it emit 'error' "INVALID_TOKEN", emit 'disconnect' and clear its reconnect timer: it stops.
 *
 * `npx pinledger device reprovision` while the server runs is in cliReprovision.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest"
import { Command, Status } from "../../src/adapters/blynk/Command.ts"
import { bodyFields } from "../../src/adapters/blynk/Frame.ts"
import { AppClient } from "./support/appClient.ts"
import { connectDevice, type Device } from "./support/blynkLibrary.ts"
import {
  makeDataDir,
  outputTail,
  provision,
  provisioningTimeout,
  type ProvisionedDevice,
  removeDataDir,
  type ServerProcess,
  startServer,
  stopQuietly
} from "./support/server.ts"

const account = { email: "reprovision@e2e.test", password: "reprovision-secret" }

let dataDir = ""
let server: ServerProcess | undefined
let provisioned: ProvisionedDevice
const devices: Array<Device> = []
let owner: AppClient | undefined

beforeAll(async () => {
  dataDir = await makeDataDir()
  ;[provisioned] = (await provision(dataDir, account, ["reprovisioned"])) as [ProvisionedDevice]
  server = await startServer({ dataDir })
}, provisioningTimeout)

afterAll(async () => {
  for (const device of devices) device.close()
  await owner?.close()
  await stopQuietly(server)
  if (dataDir !== "") await removeDataDir(dataDir)
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

describe("REFRESH_TOKEN from the app (npm blynk-library device)", () => {
  it("disconnects the device on the old token, which is then refused and stops; a device on the new token works; the app hears DEVICE_OFFLINE", async () => {
    onTestFailed(() => {
      for (const device of devices) console.error(`device events: ${device.events.join(", ")}`)
      console.error(`owner frames:\n${owner?.describe()}`)
      console.error(`server output:\n${outputTail(server)}`)
    })
    const srv = server!
    const { dashId, deviceId, token: oldToken } = provisioned
    const target = `${dashId}-${deviceId}`

    const old = await connectDevice(oldToken, { kind: "tcp", port: srv.httpPort })
    devices.push(old)
    owner = await AppClient.connect(srv.httpsPort, srv.ca)
    expect(await owner.login(account.email, account.password)).toBe(Status.OK)
    expect(await owner.activate(dashId)).toBe(Status.OK)

    // Set up before the refresh: the close comes right after it.
    const disconnected = nextEvent(old, "disconnect", ["error"])
    const id = owner.send(Command.REFRESH_TOKEN, [String(dashId), String(deviceId)])
    const answer = await owner.waitFor((f) => f.id === id && (f._tag === "Response" || f.command === Command.REFRESH_TOKEN))
    expect(answer._tag).toBe("Message")
    const newToken = answer._tag === "Message" ? bodyFields(answer.body)[0]! : ""
    expect(newToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(newToken).not.toBe(oldToken)

    await disconnected
    const offline = await owner.waitFor((f) => f._tag === "Message" && f.command === Command.DEVICE_OFFLINE)
    expect(offline._tag === "Message" && bodyFields(offline.body)).toEqual([target])
    expect(offline.id).toBe(0)

    // The library comes back by itself with the old token; the server refuses it and it stops.
    const [reason] = await nextEvent(old, "error", ["connect"])
    expect(reason).toBe("INVALID_TOKEN")
    expect(old.blynk.timerConn ?? null).toBeNull()
    expect(old.events.filter((e) => e === "connect")).toEqual(["connect"])

    // A new device on the new token logs in and exchanges writes with the owner.
    const fresh = await connectDevice(newToken, { kind: "tcp", port: srv.httpPort })
    devices.push(fresh)
    const connected = await owner.waitFor((f) => f._tag === "Message" && f.command === Command.HARDWARE_CONNECTED)
    expect(connected._tag === "Message" && bodyFields(connected.body)).toEqual([target])
    const received = fresh.nextWrite(5)
    owner.virtualWrite(dashId, deviceId, 5, "to-new-token")
    expect(await received).toEqual(["to-new-token"])
    fresh.blynk.virtualWrite(6, "from-new-token")
    const forwarded = await owner.nextHardware()
    expect(forwarded.fields).toEqual([target, "vw", "6", "from-new-token"])
  })
})
