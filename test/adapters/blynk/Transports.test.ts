import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { WebSocket } from "ws"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { bodyFields, encodeDashWs, encodeHardware, fromFields, type Frame } from "../../../src/adapters/blynk/Frame.ts"
import { decodeDashWs, hardwareDecoder } from "../../../src/adapters/blynk/FrameDecoder.ts"
import { wallClockSeconds } from "../../../src/adapters/blynk/HardwareSession.ts"
import { isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { type RunningServer, startOnFreshStorage } from "../../support/blynkServer.ts"

let server: RunningServer

beforeAll(async () => {
  server = await startOnFreshStorage()
})
afterAll(() => server.close())

/** A WebSocket peer that collects decoded frames and lets the test wait for one. */
const openWs = async (url: string, decode: (bytes: Uint8Array) => ReadonlyArray<Frame>) => {
  const ws = new WebSocket(url, { rejectUnauthorized: false })
  const frames: Array<Frame> = []
  const waiters: Array<{ match: (f: Frame) => boolean; resolve: (f: Frame) => void }> = []
  ws.on("message", (data: Buffer) => {
    for (const frame of decode(data)) {
      frames.push(frame)
      for (const w of waiters.splice(0)) (w.match(frame) ? w.resolve(frame) : waiters.push(w))
    }
  })
  const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)))
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve())
    ws.once("error", reject)
  })
  const next = (match: (f: Frame) => boolean) =>
    new Promise<Frame>((resolve) => {
      const seen = frames.find(match)
      if (seen) resolve(seen)
      else waiters.push({ match, resolve })
    })
  return { ws, frames, next, closed }
}

describe("Blynk over WebSocket (protocol.md §1.1, §3.1)", () => {
  it("a device on /websockets of the plain port logs in and writes a pin the app receives", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.DEVICE_NOT_IN_NETWORK)
    const decoder = hardwareDecoder()
    const device = await openWs(`ws://127.0.0.1:${server.plainPort}/websockets`, (b) => decoder.push(b).frames)
    device.ws.send(encodeHardware(fromFields(Command.HARDWARE_LOGIN, 1, [token])) as Buffer)
    expect(await device.next((f) => f.id === 1)).toMatchObject({ _tag: "Response", status: Status.OK })
    const forwarded = app.next(isMessage(Command.HARDWARE))
    device.ws.send(encodeHardware(fromFields(Command.HARDWARE, 2, ["vw", "4", "over ws"])) as Buffer)
    expect((await forwarded).fields).toEqual(["1-0", "vw", "4", "over ws"])
    const back = device.next((f) => f._tag === "Message" && f.command === Command.HARDWARE)
    app.send(Command.HARDWARE, 3, ["1-0", "vw", "5", "to ws"])
    const got = await back
    expect(got._tag === "Message" ? bodyFields(got.body) : []).toEqual(["vw", "5", "to ws"])
    device.ws.close()
    await device.closed
    await app.close()
  })

  it("an app on /dashws of the TLS port speaks the 3-byte framing; the plain port refuses /dashws", async () => {
    const { email, hash, app } = await newAccount(server)
    const one = (b: Uint8Array) => {
      const f = decodeDashWs(b)
      return f instanceof Error ? [] : [f]
    }
    const dash = await openWs(`wss://127.0.0.1:${server.tlsPort}/dashws`, one)
    dash.ws.send(encodeDashWs(fromFields(Command.LOGIN, 1, [email, hash, "web", "1.0.0"])) as Buffer)
    expect(await dash.next((f) => f.id === 1)).toMatchObject({ _tag: "Response", status: Status.OK })
    dash.ws.send(encodeDashWs(fromFields(Command.GET_ENERGY, 2, [])) as Buffer)
    const energy = await dash.next((f) => f.id === 2)
    expect(energy._tag === "Message" && Number(bodyFields(energy.body)[0]) > 0).toBe(true)
    dash.ws.close()
    await dash.closed
    const plain = await openWs(`ws://127.0.0.1:${server.plainPort}/dashws`, one)
    expect(await plain.closed).toBe(1008)
    await app.close()
  })
})

describe("timeouts and time (protocol.md §3.5, §2.3)", () => {
  it("a device that announced h-beat 1 and then stays silent is closed after ceil(1 × 2.3) s", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const device = await connectDevice(server, await createDevice(app, 1, 0))
    expect(await device.request(Command.BLYNK_INTERNAL, 2, ["ver", "1", "h-beat", "1"])).toBe(Status.OK)
    const started = Date.now()
    await device.closed
    // The sweeper runs each second: closed after 3 s of silence, not before.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2500)
    await app.close()
  })

  it("answers INTERNAL rtc only when the project has an RTC widget", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    await createDash(app, { id: 2, widgets: [{ id: 1, type: "RTC", tzName: "Asia/Tokyo" }] })
    const plain = await connectDevice(server, await createDevice(app, 1, 0))
    plain.send(Command.BLYNK_INTERNAL, 5, ["rtc"])
    expect(await plain.request(Command.PING, 6)).toBe(Status.OK)
    expect(plain.received.filter((f) => f.command === Command.BLYNK_INTERNAL)).toEqual([])
    const timed = await connectDevice(server, await createDevice(app, 2, 0))
    const before = wallClockSeconds(Date.now(), "Asia/Tokyo")
    const answer = await timed.ask(Command.BLYNK_INTERNAL, 7, ["rtc"])
    expect(answer.fields[0]).toBe("rtc")
    const seconds = Number(answer.fields[1])
    expect(seconds - before).toBeGreaterThanOrEqual(0)
    expect(seconds - before).toBeLessThan(5)
    // Tokyo is 9 hours ahead of UTC all year.
    expect(Math.round((seconds - Date.now() / 1000) / 3600)).toBe(9)
    for (const c of [plain, timed, app]) await c.close()
  })
})
