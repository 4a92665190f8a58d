import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { BlynkClient, isMessage, type Received } from "../../support/BlynkClient.ts"
import { createDash, createDevice, newAccount } from "../../support/blynkFixtures.ts"
import { type RunningServer, startOnFreshStorage } from "../../support/blynkServer.ts"

/**
 * A model-based test of the session rules of protocol.md §2.5, §3.2, §3.4, §3.6 and §3.7: one
 * account, dashboard 1 with device 0, up to three sockets on the device's token, one app. The
 * model says who is logged in, whether the dashboard is active and the last value of each pin;
 * every command checks what the real server does against it. "Nothing arrived" is checked
 * without sleeping, by a roundtrip that passes through the same actor mailbox (or the same
 * connection) after the command: whatever the command caused was written before its answer.
 */

const SLOTS = 3
/** A pin the model never writes, seeded at setup: `vr 9` always answers, so it orders a device connection. */
const SENTINEL_PIN = "9"
const SENTINEL = "seed"

interface Model {
  readonly loggedIn: Array<boolean>
  active: boolean
  /** pin → values of its last stored write. */
  readonly pins: Map<number, ReadonlyArray<string>>
}

interface Real {
  readonly server: RunningServer
  readonly app: BlynkClient
  token: string
  readonly sockets: Array<BlynkClient | undefined>
  /** Every connection the run opened, closed at the end whatever happened. */
  readonly opened: Array<BlynkClient>
  readonly id: () => number
}

let server: RunningServer

beforeAll(async () => {
  server = await startOnFreshStorage()
})
afterAll(() => server.close())

const since = (client: BlynkClient, from: number, match: (f: Received) => boolean) => client.received.slice(from).filter(match)
const withId = (id: number) => (f: Received) => f.id === id

const online = (m: Model) => m.loggedIn.some((x) => x)
const loggedInSockets = (m: Model, r: Real) =>
  r.sockets.flatMap((s, i) => (m.loggedIn[i] && s !== undefined ? [s] : []))

/** A write's fields as the server sends it back on sync: `vw pin v1 v2...`. */
const writeFields = (pin: number, values: ReadonlyArray<string>) => ["vw", String(pin), ...values]

/** What APP_SYNC must send for dashboard 1: every stored pin of device 0, the sentinel included. */
const expectedSync = (m: Model) =>
  [
    ["1-0", "vw", SENTINEL_PIN, SENTINEL],
    ...[...m.pins].map(([pin, values]) => ["1-0", ...writeFields(pin, values)])
  ].map((f) => f.join(" ")).sort()

/**
 * APP_SYNC then PING on the app: the sync goes through the user actor (so everything the actor
 * did before for this app has been written first), the PING after it makes sure every sync frame
 * has arrived. Checks the sync against the model.
 */
const appBarrier = async (m: Model, r: Real) => {
  const syncId = r.id()
  const from = r.app.received.length
  expect(await r.app.request(Command.APP_SYNC, syncId, ["1"])).toBe(Status.OK)
  expect(await r.app.request(Command.PING, r.id())).toBe(Status.OK)
  const synced = since(r.app, from, (f) => f.command === Command.APP_SYNC && f.id === 1111)
  expect(synced.map((f) => f.fields.join(" ")).sort()).toEqual(expectedSync(m))
}

/** `vr pin... 9` on a device: the answers come from the actor, the sentinel's last. */
const deviceSync = async (device: BlynkClient, id: number, pins: ReadonlyArray<string>) => {
  const from = device.received.length
  device.send(Command.HARDWARE_SYNC, id, ["vr", ...pins, SENTINEL_PIN])
  await device.next((f) => f.id === id && f.command === Command.HARDWARE && f.fields[1] === SENTINEL_PIN, from)
  return since(device, from, withId(id)).map((f) => f.fields)
}

/** Orders a device connection after everything the actor did so far. */
const deviceBarrier = async (device: BlynkClient, r: Real) => {
  expect(await deviceSync(device, r.id(), [])).toEqual([["vw", SENTINEL_PIN, SENTINEL]])
}

/**
 * Commands name a socket by a number that picks among the sockets that qualify (logged in, or free
 * for a connect), so that few generated commands are discarded by their check.
 */
const pickSlot = (m: Readonly<Model>, pick: number, loggedIn: boolean) => {
  const slots = m.loggedIn.flatMap((x, i) => (x === loggedIn ? [i] : []))
  return slots.length === 0 ? undefined : slots[pick % slots.length]!
}

const expectSocketsOpen = (m: Model, r: Real) => {
  for (let i = 0; i < SLOTS; i++) expect(r.sockets[i]?.isClosed ?? true).toBe(!m.loggedIn[i])
}

type Cmd = fc.AsyncCommand<Model, Real>

class Connect implements Cmd {
  readonly pick: number
  readonly tls: boolean
  constructor(pick: number, tls: boolean) {
    this.pick = pick
    this.tls = tls
  }
  check = (m: Readonly<Model>) => pickSlot(m, this.pick, false) !== undefined
  async run(m: Model, r: Real) {
    const slot = pickSlot(m, this.pick, false)!
    const device = await BlynkClient.connect({ port: this.tls ? r.server.tlsPort : r.server.plainPort, framing: "hardware", tls: this.tls })
    r.opened.push(device)
    // On the TLS port a device is recognised by a first frame with id 1 (protocol.md §1.2).
    const id = this.tls ? 1 : r.id()
    const from = r.app.received.length
    expect(await device.request(Command.HARDWARE_LOGIN, id, [r.token])).toBe(Status.OK)
    // §3.7: the apps are told, active or not, with the login's id. The actor told them with the
    // login's OK, so before this PING's answer.
    expect(await r.app.request(Command.PING, r.id())).toBe(Status.OK)
    expect(since(r.app, from, isMessage(Command.HARDWARE_CONNECTED)).map((f) => [f.id, ...f.fields])).toEqual([[id, "1-0"]])
    r.sockets[slot] = device
    m.loggedIn[slot] = true
    expectSocketsOpen(m, r)
  }
  toString = () => `Connect(${this.pick}${this.tls ? ", tls" : ""})`
}

class Close implements Cmd {
  readonly pick: number
  readonly byServer: boolean
  constructor(pick: number, byServer: boolean) {
    this.pick = pick
    this.byServer = byServer
  }
  check = (m: Readonly<Model>) => pickSlot(m, this.pick, true) !== undefined
  async run(m: Model, r: Real) {
    const slot = pickSlot(m, this.pick, true)!
    const device = r.sockets[slot]!
    const from = r.app.received.length
    // A close by the client is seen by the server whenever its socket says so; only DEVICE_OFFLINE
    // (sent while active) tells when. Otherwise the server closes it (a code >= 100, §1.1): it
    // tells the actor before its socket closes, so the next command is handled after the logout.
    if (this.byServer || !m.active) {
      device.sendRaw(new Uint8Array([100, 0, 1, 0, 0]))
      await device.closed
    } else {
      await device.close()
    }
    m.loggedIn[slot] = false
    r.sockets[slot] = undefined
    // The only way to know the server has seen a close by the client.
    if (!this.byServer && m.active) await r.app.next(isMessage(Command.DEVICE_OFFLINE), from)
    await appBarrier(m, r)
    // §3.4, §3.7: while active, every socket that goes tells the apps (id 0), even if another
    // socket of the device stays; while inactive, nobody is told.
    expect(since(r.app, from, isMessage(Command.DEVICE_OFFLINE)).map((f) => [f.id, ...f.fields])).toEqual(m.active ? [[0, "1-0"]] : [])
    expectSocketsOpen(m, r)
  }
  toString = () => `Close(${this.pick}${this.byServer ? ", by server" : ""})`
}

class DeviceWrite implements Cmd {
  readonly pick: number
  readonly pin: number
  readonly values: ReadonlyArray<string>
  constructor(pick: number, pin: number, values: ReadonlyArray<string>) {
    this.pick = pick
    this.pin = pin
    this.values = values
  }
  check = (m: Readonly<Model>) => pickSlot(m, this.pick, true) !== undefined
  async run(m: Model, r: Real) {
    const device = r.sockets[pickSlot(m, this.pick, true)!]!
    const others = loggedInSockets(m, r).filter((s) => s !== device)
    const id = r.id()
    const fromApp = r.app.received.length
    const fromOthers = others.map((s) => s.received.length)
    device.send(Command.HARDWARE, id, writeFields(this.pin, this.values))
    m.pins.set(this.pin, this.values)
    // Stored, whether active or not: the sync answers it (and orders this connection).
    expect(await deviceSync(device, r.id(), [String(this.pin)])).toEqual([
      writeFields(this.pin, this.values),
      ["vw", SENTINEL_PIN, SENTINEL]
    ])
    // Whatever the write sent the app was written before the sync's answer, so before this PING's.
    expect(await r.app.request(Command.PING, r.id())).toBe(Status.OK)
    // §2.5: forwarded to the app with the device's id while active, else not at all.
    expect(since(r.app, fromApp, withId(id)).map((f) => [f.command, ...f.fields])).toEqual(
      m.active ? [[Command.HARDWARE, "1-0", ...writeFields(this.pin, this.values)]] : []
    )
    // A device's write is never echoed to the other sockets of its token.
    for (const [i, other] of others.entries()) {
      await deviceBarrier(other, r)
      expect(since(other, fromOthers[i]!, withId(id))).toEqual([])
    }
    expect(device.received.filter(withId(id))).toEqual([])
    expectSocketsOpen(m, r)
  }
  toString = () => `DeviceWrite(${this.pick}, vw ${this.pin} ${this.values.join(" ")})`
}

class AppWrite implements Cmd {
  readonly pin: number
  readonly values: ReadonlyArray<string>
  constructor(pin: number, values: ReadonlyArray<string>) {
    this.pin = pin
    this.values = values
  }
  check = () => true
  async run(m: Model, r: Real) {
    const sockets = loggedInSockets(m, r)
    const id = r.id()
    const fromApp = r.app.received.length
    const fromSockets = sockets.map((s) => s.received.length)
    r.app.send(Command.HARDWARE, id, ["1-0", ...writeFields(this.pin, this.values)])
    // §2.5: while active, stored and sent to every online socket with the app's id, and 7 when
    // none is online; while inactive, dropped without a word and not stored (the barrier's sync
    // checks the pins).
    if (m.active) m.pins.set(this.pin, this.values)
    await appBarrier(m, r)
    expect(since(r.app, fromApp, withId(id)).map((f) => (f._tag === "Response" ? f.status : f.command))).toEqual(
      m.active && sockets.length === 0 ? [Status.DEVICE_NOT_IN_NETWORK] : []
    )
    for (const [i, socket] of sockets.entries()) {
      await deviceBarrier(socket, r)
      expect(since(socket, fromSockets[i]!, withId(id)).map((f) => [f.command, ...f.fields])).toEqual(
        m.active ? [[Command.HARDWARE, ...writeFields(this.pin, this.values)]] : []
      )
    }
    expectSocketsOpen(m, r)
  }
  toString = () => `AppWrite(1-0 vw ${this.pin} ${this.values.join(" ")})`
}

class Activate implements Cmd {
  check = () => true
  async run(m: Model, r: Real) {
    const from = r.app.received.length
    // §3.6: OK when some hardware of the dashboard is online, else DEVICE_NOT_IN_NETWORK.
    expect(await r.app.request(Command.ACTIVATE_DASHBOARD, r.id(), ["1"])).toBe(online(m) ? Status.OK : Status.DEVICE_NOT_IN_NETWORK)
    m.active = true
    // Then the stored values as app sync (id 1111), after the answer.
    expect(await r.app.request(Command.PING, r.id())).toBe(Status.OK)
    const synced = since(r.app, from, (f) => f.command === Command.APP_SYNC && f.id === 1111)
    expect(synced.map((f) => f.fields.join(" ")).sort()).toEqual(expectedSync(m))
    expectSocketsOpen(m, r)
  }
  toString = () => "Activate"
}

class Deactivate implements Cmd {
  check = () => true
  async run(m: Model, r: Real) {
    expect(await r.app.request(Command.DEACTIVATE_DASHBOARD, r.id(), ["1"])).toBe(Status.OK)
    m.active = false
    expectSocketsOpen(m, r)
  }
  toString = () => "Deactivate"
}

class HardwareSync implements Cmd {
  readonly pick: number
  readonly pin: number
  constructor(pick: number, pin: number) {
    this.pick = pick
    this.pin = pin
  }
  check = (m: Readonly<Model>) => pickSlot(m, this.pick, true) !== undefined
  async run(m: Model, r: Real) {
    const stored = m.pins.get(this.pin)
    // A pin without a value is not answered; the sentinel is, last.
    expect(await deviceSync(r.sockets[pickSlot(m, this.pick, true)!]!, r.id(), [String(this.pin)])).toEqual([
      ...(stored === undefined ? [] : [writeFields(this.pin, stored)]),
      ["vw", SENTINEL_PIN, SENTINEL]
    ])
    expectSocketsOpen(m, r)
  }
  toString = () => `HardwareSync(${this.pick}, vr ${this.pin})`
}

class AppSync implements Cmd {
  check = () => true
  async run(m: Model, r: Real) {
    await appBarrier(m, r)
    expectSocketsOpen(m, r)
  }
  toString = () => "AppSync"
}

class SecondLogin implements Cmd {
  readonly pick: number
  constructor(pick: number) {
    this.pick = pick
  }
  check = (m: Readonly<Model>) => pickSlot(m, this.pick, true) !== undefined
  async run(m: Model, r: Real) {
    // §3.2: USER_ALREADY_REGISTERED, and the socket stays logged in.
    expect(await r.sockets[pickSlot(m, this.pick, true)!]!.request(Command.HARDWARE_LOGIN, r.id(), [r.token])).toBe(Status.USER_ALREADY_REGISTERED)
    expectSocketsOpen(m, r)
  }
  toString = () => `SecondLogin(${this.pick})`
}

const early = {
  ping: [Command.PING, []],
  write: [Command.HARDWARE, ["vw", "1", "x"]],
  sync: [Command.HARDWARE_SYNC, ["vr", "1"]]
} as const

class FrameBeforeLogin implements Cmd {
  readonly kind: keyof typeof early
  constructor(kind: keyof typeof early) {
    this.kind = kind
  }
  check = () => true
  async run(m: Model, r: Real) {
    const stranger = await BlynkClient.connect({ port: r.server.plainPort, framing: "hardware" })
    r.opened.push(stranger)
    const [command, fields] = early[this.kind]
    stranger.send(command, r.id(), fields)
    // §3.2: closed silently.
    await stranger.closed
    expect(stranger.received).toEqual([])
    expectSocketsOpen(m, r)
  }
  toString = () => `FrameBeforeLogin(${this.kind})`
}

/**
 * Far above what any command takes. Waits are for events, but an answer that never comes must
 * fail the command (which fast-check then shrinks) rather than time the whole test out.
 */
const DEADLINE_MS = 8000

/** `running`, failing if it has not settled within the deadline. */
const within = <A>(what: string, running: Promise<A>): Promise<A> => {
  // Settles later (the run's connections get closed); only the race's outcome counts.
  running.catch(() => {})
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${DEADLINE_MS} ms`)), DEADLINE_MS)
  })
  return Promise.race([running, deadline]).finally(() => clearTimeout(timer))
}

const bounded = (command: Cmd): Cmd => ({
  check: (m) => command.check(m),
  run: (m, r) => within(command.toString(), command.run(m, r)),
  toString: () => command.toString()
})

const slot = fc.nat({ max: SLOTS - 1 })
const pin = fc.integer({ min: 0, max: 3 })
const value = fc.string({ unit: fc.constantFrom(..."ab09.-_XéЖ水"), minLength: 1, maxLength: 6 })
const values = fc.array(value, { minLength: 1, maxLength: 2 })

const connect = fc.tuple(slot, fc.boolean()).map(([s, tls]) => new Connect(s, tls))
const deviceWrite = fc.tuple(slot, pin, values).map(([s, p, v]) => new DeviceWrite(s, p, v))
const appWrite = fc.tuple(pin, values).map(([p, v]) => new AppWrite(p, v))

/** `fc.commands` picks among these evenly: the more useful ones appear more than once. */
const commandArbs: Array<fc.Arbitrary<Cmd>> = [
  connect,
  connect,
  fc.tuple(slot, fc.boolean()).map(([s, byServer]) => new Close(s, byServer)),
  deviceWrite,
  deviceWrite,
  deviceWrite,
  appWrite,
  appWrite,
  fc.constant(new Activate()),
  fc.constant(new Deactivate()),
  fc.tuple(slot, pin).map(([s, p]) => new HardwareSync(s, p)),
  fc.constant(new AppSync()),
  slot.map((s) => new SecondLogin(s)),
  fc.constantFrom("ping" as const, "write" as const, "sync" as const).map((k) => new FrameBeforeLogin(k))
]

/** A fresh account with dashboard 1, device 0 and the sentinel pin stored, the dashboard inactive. */
const setup = async (): Promise<Real> => {
  const { app } = await newAccount(server)
  let ids = 2000
  const id = () => (ids = ids >= 60_000 ? 2000 : ids + 1)
  const real: Real = { server, app, token: "", sockets: Array.from({ length: SLOTS }, () => undefined), opened: [app], id }
  await within("setup", (async () => {
    await createDash(app)
    real.token = await createDevice(app, 1, 0)
    // An app write is stored only while active; with no device online it answers 7 (checked
    // after an APP_SYNC, which the actor answers after the write).
    expect(await app.request(Command.ACTIVATE_DASHBOARD, id(), ["1"])).toBe(Status.DEVICE_NOT_IN_NETWORK)
    const seed = id()
    app.send(Command.HARDWARE, seed, ["1-0", "vw", SENTINEL_PIN, SENTINEL])
    expect(await app.request(Command.APP_SYNC, id(), ["1"])).toBe(Status.OK)
    expect(app.received.filter(withId(seed))).toMatchObject([{ _tag: "Response", status: Status.DEVICE_NOT_IN_NETWORK }])
    expect(await app.request(Command.DEACTIVATE_DASHBOARD, id(), ["1"])).toBe(Status.OK)
  })()).catch(async (error) => {
    await app.close()
    throw error
  })
  return real
}

describe("device and app sessions against a model (protocol.md §2.5, §3.2-§3.7)", () => {
  it("forwarding, storing, syncing, activation and logins follow the model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.commands(commandArbs.map((arb) => arb.map(bounded)), { maxCommands: 30, size: "max" }), async (cmds) => {
        const real = await setup()
        try {
          const model: Model = { loggedIn: Array.from({ length: SLOTS }, () => false), active: false, pins: new Map() }
          await fc.asyncModelRun(() => ({ model, real }), cmds)
        } finally {
          await Promise.all(real.opened.map((c) => c.close()))
        }
      }),
      { numRuns: 25 }
    )
  })
})
