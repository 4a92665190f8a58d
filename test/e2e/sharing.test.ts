/**
 * Sharing a dashboard (protocol.md §4.2) end to end: a real server process, an npm `blynk-library`
 * device (plain TCP, and once over TLS), the owner's app (the raw TLS app client of
 * support/appClient.ts) and a second app that logs in with the share token through the npm `blynk`
 * 0.1.0 app client.
 *
 * The npm `blynk` client has no share-login method, but its `sendCommand(cmd, fields)` sends any
 * command and resolves with the status of the RSP carrying the same id, which is all SHARE_LOGIN
 * (32) `ownerEmail\0shareToken\0os\0version` needs; its `hardware()` sends HARDWARE and resolves
 * after its own 250 ms wait (rejecting with the status name if a RSP came back). It does not
 * surface frames the server pushes (device writes, or the NOT_ALLOWED that ends a revoked
 * session), so the test decodes its TLS socket's bytes as well (`Pushed` below). Its ids count
 * from 0 (SHARE_LOGIN is id 0). See blynkApp.test.ts for the rest of its wire behaviour.
 *
 * The owner:
 *   GET_SHARE_TOKEN (30) `dashId` → a GET_SHARE_TOKEN frame with the 32-character token;
 *   SHARING (26) `dashId\0on` → OK;
 *   REFRESH_SHARE_TOKEN (31) `dashId` → a REFRESH_SHARE_TOKEN frame with the new token, and every
 *   shared session of the dashboard gets RSP NOT_ALLOWED (6) with the refresh's id and is closed.
 */
import { describe, expect, it } from "vitest"
import type { TLSSocket } from "node:tls"
import { Command, Status } from "../../src/adapters/blynk/Command.ts"
import { bodyFields, type Frame } from "../../src/adapters/blynk/Frame.ts"
import { appDecoder } from "../../src/adapters/blynk/FrameDecoder.ts"
import { type AppClient, showFrame } from "./support/appClient.ts"
import { type BlynkApp, disconnect, npmBlynk, socketOf } from "./support/blynkApp.ts"
import { connectDevice, type Transport } from "./support/blynkLibrary.ts"
import type { ProvisionedDevice, ServerProcess } from "./support/server.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "sharing@e2e.test", password: "sharing-secret" }

const { server, devices, opened, activeApp } = e2eSuite({
  provision: ({ provision }) => provision(account, { tcp: "shared-tcp", tls: "shared-tls" })
})

/**
 * Everything the server sent on the npm client's socket, decoded with reassembly (the client
 * itself looks only at the first frame of each chunk), with waits for a matching frame and for
 * the close.
 */
class Pushed {
  readonly frames: Array<Frame> = []
  readonly closed: Promise<void>
  #isClosed = false
  #waiters: Array<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void }> = []

  constructor(socket: TLSSocket) {
    const decoder = appDecoder()
    socket.on("data", (chunk: Buffer) => {
      for (const frame of decoder.push(chunk).frames) {
        this.frames.push(frame)
        this.#waiters = this.#waiters.filter((w) => !(w.match(frame) && (w.resolve(frame), true)))
      }
    })
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.#isClosed = true
        for (const w of this.#waiters) w.reject(new Error(`the shared app's connection closed; it received:\n${this.describe()}`))
        this.#waiters = []
        resolve()
      }))
  }

  get isClosed() {
    return this.#isClosed
  }

  /** The first frame from index `from` on (already received or still to come) that matches. */
  waitFor(match: (f: Frame) => boolean, from = 0): Promise<Frame> {
    const seen = this.frames.slice(from).find(match)
    if (seen) return Promise.resolve(seen)
    if (this.#isClosed) return Promise.reject(new Error(`the shared app's connection is closed; it received:\n${this.describe()}`))
    return new Promise((resolve, reject) => this.#waiters.push({ match, resolve, reject }))
  }

  describe() {
    return this.frames.length === 0 ? "(nothing)" : this.frames.map(showFrame).join("\n")
  }
}

interface SharedApp {
  readonly client: BlynkApp
  readonly pushed: Pushed
}

/** An npm `blynk` client connected to the TLS port, not logged in; closed after the test. */
const connectSharedApp = async (srv: ServerProcess): Promise<SharedApp> => {
  const client = new npmBlynk.Blynk("127.0.0.1", srv.httpsPort)
  await client.connect()
  const app: SharedApp = { client, pushed: new Pushed(socketOf(client)!) }
  return opened.track(app, {
    close: (app) => disconnect(app.client),
    describe: (app) => `shared app frames:\n${app.pushed.describe()}`
  })
}

/** SHARE_LOGIN (32) `ownerEmail\0shareToken\0Android\02.27.34`; resolves with the RSP status. */
const shareLogin = (app: SharedApp, ownerEmail: string, shareToken: string): Promise<number> =>
  app.client.sendCommand(npmBlynk.Command.SHARE_LOGIN, [ownerEmail, shareToken, "Android", "2.27.34"])

/** Sends an owner request and resolves with the body of the reply of the same command and id. */
const ownerAsk = async (owner: AppClient, command: number, fields: ReadonlyArray<string>) => {
  const id = owner.send(command, fields)
  const answer = await owner.waitFor((f) => f.id === id && (f._tag === "Response" || f.command === command))
  if (answer._tag === "Response") throw new Error(`command ${command} answered status ${answer.status}`)
  return { id, fields: bodyFields(answer.body) }
}

const isHardware = (target: string, pin: number, value: string) => (f: Frame) =>
  f._tag === "Message" && f.command === Command.HARDWARE &&
  bodyFields(f.body).join("|") === [target, "vw", String(pin), value].join("|")

const cases: ReadonlyArray<{ name: string; provisioned: () => ProvisionedDevice; transport: (srv: ServerProcess) => Transport }> = [
  { name: "plain TCP", provisioned: () => devices().tcp, transport: (srv) => ({ kind: "tcp", port: srv.httpPort }) },
  { name: "TLS", provisioned: () => devices().tls, transport: (srv) => ({ kind: "tls", port: srv.httpsPort, ca: srv.ca }) }
]

describe("sharing a dashboard (npm blynk-library device, npm blynk shared app)", () => {
  it.each(cases)(
    "a shared app controls a $name device; refreshing the share token closes it with NOT_ALLOWED while the device carries on",
    async ({ provisioned, transport }) => {
      const srv = server()
      const { dashId, deviceId } = provisioned()
      const target = `${dashId}-${deviceId}`

      const device = opened.device(await connectDevice(provisioned().token, transport(srv)))
      const owner = await activeApp(account, dashId, "owner")

      const { fields: [shareToken] } = await ownerAsk(owner, Command.GET_SHARE_TOKEN, [String(dashId)])
      expect(shareToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
      expect(await owner.statusOf(owner.send(Command.SHARING, [String(dashId), "on"]))).toBe(Status.OK)

      const guest = await connectSharedApp(srv)
      expect(await shareLogin(guest, account.email, shareToken!)).toBe(Status.OK)

      // The shared app writes V1: the device's handler gets it, the owner's app gets it as APP_SYNC.
      const atDevice = device.nextWrite(1)
      // (Matched on the body: activation already sent the owner an app sync of the stored values.)
      const atOwner = owner.waitFor((f) => f._tag === "Message" && f.command === Command.APP_SYNC && bodyFields(f.body)[3] === "123")
      // hardware() rejects if the server answered the write with an error status.
      await guest.client.hardware(target, "vw", "1", "123")
      expect(await atDevice).toEqual(["123"])
      const synced = await atOwner
      expect(synced._tag === "Message" && bodyFields(synced.body)).toEqual([target, "vw", "1", "123"])

      // The device writes V3: the shared app (and the owner) see it.
      const seenBefore = guest.pushed.frames.length
      device.blynk.virtualWrite(3, "from-device")
      await guest.pushed.waitFor(isHardware(target, 3, "from-device"), seenBefore)
      await owner.waitFor(isHardware(target, 3, "from-device"))

      // The owner revokes: the shared session gets NOT_ALLOWED with the refresh's id and is closed.
      const { id: refreshId, fields: [freshToken] } = await ownerAsk(owner, Command.REFRESH_SHARE_TOKEN, [String(dashId)])
      expect(freshToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
      expect(freshToken).not.toBe(shareToken)
      await guest.pushed.closed
      expect(guest.pushed.frames.at(-1)).toEqual({ _tag: "Response", command: 0, id: refreshId, status: Status.NOT_ALLOWED })

      // The device carries on: the owner's write reaches it, its write reaches the owner.
      const again = device.nextWrite(2)
      owner.virtualWrite(dashId, deviceId, 2, "owner-after-revoke")
      expect(await again).toEqual(["owner-after-revoke"])
      device.blynk.virtualWrite(4, "device-after-revoke")
      await owner.waitFor(isHardware(target, 4, "device-after-revoke"))
      expect(device.events.filter((e) => e === "disconnect")).toEqual([])

      // The old share token is refused (the socket stays open); the new one opens the dashboard.
      const late = await connectSharedApp(srv)
      expect(await shareLogin(late, account.email, shareToken!)).toBe(Status.NOT_ALLOWED)
      const fresh = await connectSharedApp(srv)
      expect(await shareLogin(fresh, account.email, freshToken!)).toBe(Status.OK)
      const viaFresh = device.nextWrite(1)
      await fresh.client.hardware(target, "vw", "1", "456")
      expect(await viaFresh).toEqual(["456"])
    }
  )
})
