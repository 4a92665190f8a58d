import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Option } from "effect"
import fc from "fast-check"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { accountStream } from "../../../src/domain/Streams.ts"
import { findByToken } from "../../../src/eventstore/projections/DeviceTokens.ts"
import { inlineProjections, rebuild } from "../../../src/eventstore/projections/Inline.ts"
import { findShare } from "../../../src/eventstore/projections/Permissions.ts"
import { BlynkClient } from "../../support/BlynkClient.ts"
import { createDash, newAccount } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

/**
 * Issue 4 §6: random sequences of grants, revocations, sharing switches, reprovisions,
 * deletions and logins against the real server. A model written apart from the server's rules
 * says which tokens open what; every login and every shared write is checked against it, live,
 * and at the end of each run again after the projections were rebuilt from the log and the
 * server restarted (actors replayed).
 */

const DASHES = [1, 2] as const
const DEVICES = [0, 1] as const

interface Model {
  readonly dashes: Map<number, { shareToken: string | undefined; sharing: boolean; devices: Map<number, string> }>
  /** Every token ever handed out, current or not, to try logging in with. */
  readonly shareTokens: Array<string>
  readonly deviceTokens: Array<string>
  /** Open shared sessions: the dashboard each was shared. */
  readonly sessions: Array<{ readonly dashId: number; readonly client: BlynkClient }>
}

interface Real {
  readonly app: BlynkClient
  readonly email: string
  readonly opened: Array<BlynkClient>
}

let server: RunningServer
let opened: Awaited<ReturnType<typeof openStorage>>
const start = (storage: typeof opened.storage) =>
  startBlynkServer(storage, {}, { maxFailures: 1_000_000_000, windowMs: 600_000, blockMs: 600_000 })

beforeAll(async () => {
  opened = await openStorage()
  server = await start(opened.storage)
})
afterAll(async () => {
  await server.close()
  await opened.release()
})

let ids = 1000
const id = () => (ids = ids >= 60_000 ? 1000 : ids + 1)

/** What the rules say a share token opens: the dashboard whose current token it is, sharing on. */
const shareOpens = (m: Model, token: string) => {
  for (const [dashId, dash] of m.dashes) if (dash.shareToken === token && dash.sharing) return dashId
  return undefined
}
/** `dashId-deviceId` of the current device whose token this is. */
const deviceAt = (m: Model, token: string) => {
  for (const [dashId, dash] of m.dashes) for (const [deviceId, t] of dash.devices) if (t === token) return `${dashId}-${deviceId}`
  return undefined
}
const deviceOf = (m: Model, token: string) => deviceAt(m, token) !== undefined

const closeSessions = async (m: Model, dashId: number) => {
  const gone = m.sessions.filter((s) => s.dashId === dashId)
  for (const s of gone) await s.client.closed
  m.sessions.splice(0, m.sessions.length, ...m.sessions.filter((s) => s.dashId !== dashId))
}

const reply = async (r: Real, command: number, fields: ReadonlyArray<string>) => {
  const answer = await r.app.ask(command, id(), fields)
  return answer._tag === "Response" ? { status: answer.status, text: "" } : { status: Status.OK, text: answer.fields[0] ?? "" }
}

type Cmd = fc.AsyncCommand<Model, Real>

const cmd = (name: string, run: (m: Model, r: Real) => Promise<void>, check: (m: Model) => boolean = () => true): Cmd => ({
  check,
  run,
  toString: () => name
})

const createDashCmd = (dashId: number) =>
  cmd(`createDash(${dashId})`, async (m, r) => {
    const answer = await r.app.request(Command.CREATE_DASH, id(), [JSON.stringify({ id: dashId, name: `d${dashId}` })])
    if (m.dashes.has(dashId)) return void expect(answer).toBe(Status.NOT_ALLOWED)
    expect(answer).toBe(Status.OK)
    // Active, so a permitted write to an offline device answers DEVICE_NOT_IN_NETWORK.
    expect([Status.OK, Status.DEVICE_NOT_IN_NETWORK]).toContain(await r.app.request(Command.ACTIVATE_DASHBOARD, id(), [String(dashId)]))
    m.dashes.set(dashId, { shareToken: undefined, sharing: false, devices: new Map() })
  })

const createDeviceCmd = (dashId: number, deviceId: number) =>
  cmd(`createDevice(${dashId}, ${deviceId})`, async (m, r) => {
    const answer = await reply(r, Command.CREATE_DEVICE, [String(dashId), JSON.stringify({ id: deviceId, name: "d", boardType: "ESP32" })])
    const dash = m.dashes.get(dashId)
    if (dash === undefined) return void expect(answer.status).toBe(Status.ILLEGAL_COMMAND)
    if (dash.devices.has(deviceId)) return void expect(answer.status).toBe(Status.NOT_ALLOWED)
    const token = JSON.parse(answer.text).token as string
    dash.devices.set(deviceId, token)
    m.deviceTokens.push(token)
  })

const grantCmd = (dashId: number) =>
  cmd(`grant(${dashId})`, async (m, r) => {
    const answer = await reply(r, Command.GET_SHARE_TOKEN, [String(dashId)])
    const dash = m.dashes.get(dashId)
    if (dash === undefined) return void expect(answer.status).toBe(Status.ILLEGAL_COMMAND)
    expect(answer.status).toBe(Status.OK)
    if (dash.shareToken !== undefined) return void expect(answer.text).toBe(dash.shareToken)
    dash.shareToken = answer.text
    m.shareTokens.push(answer.text)
  })

const revokeCmd = (dashId: number) =>
  cmd(`revoke(${dashId})`, async (m, r) => {
    const answer = await reply(r, Command.REFRESH_SHARE_TOKEN, [String(dashId)])
    const dash = m.dashes.get(dashId)
    if (dash === undefined) return void expect(answer.status).toBe(Status.ILLEGAL_COMMAND)
    expect(answer.status).toBe(Status.OK)
    expect(answer.text).not.toBe(dash.shareToken)
    dash.shareToken = answer.text
    m.shareTokens.push(answer.text)
    await closeSessions(m, dashId)
  })

const sharingCmd = (dashId: number, on: boolean) =>
  cmd(`sharing(${dashId}, ${on ? "on" : "off"})`, async (m, r) => {
    const answer = await r.app.request(Command.SHARING, id(), [String(dashId), on ? "on" : "off"])
    const dash = m.dashes.get(dashId)
    if (dash === undefined) return void expect(answer).toBe(Status.ILLEGAL_COMMAND)
    expect(answer).toBe(Status.OK)
    dash.sharing = on
  })

const reprovisionCmd = (dashId: number, deviceId: number) =>
  cmd(`reprovision(${dashId}, ${deviceId})`, async (m, r) => {
    const answer = await reply(r, Command.REFRESH_TOKEN, [String(dashId), String(deviceId)])
    const dash = m.dashes.get(dashId)
    if (dash === undefined) return void expect(answer.status).toBe(Status.ILLEGAL_COMMAND)
    if (!dash.devices.has(deviceId)) return void expect(answer.status).toBe(Status.ILLEGAL_COMMAND_BODY)
    expect(answer.text).toMatch(/^[A-Za-z0-9_-]{32}$/)
    dash.devices.set(deviceId, answer.text)
    m.deviceTokens.push(answer.text)
  })

const deleteDeviceCmd = (dashId: number, deviceId: number) =>
  cmd(`deleteDevice(${dashId}, ${deviceId})`, async (m, r) => {
    const answer = await r.app.request(Command.DELETE_DEVICE, id(), [String(dashId), String(deviceId)])
    const dash = m.dashes.get(dashId)
    if (dash === undefined) return void expect(answer).toBe(Status.ILLEGAL_COMMAND)
    if (!dash.devices.has(deviceId)) return void expect(answer).toBe(Status.ILLEGAL_COMMAND_BODY)
    expect(answer).toBe(Status.OK)
    dash.devices.delete(deviceId)
  })

const deleteDashCmd = (dashId: number) =>
  cmd(`deleteDash(${dashId})`, async (m, r) => {
    const answer = await r.app.request(Command.DELETE_DASH, id(), [String(dashId)])
    if (!m.dashes.has(dashId)) return void expect(answer).toBe(Status.ILLEGAL_COMMAND)
    expect(answer).toBe(Status.OK)
    m.dashes.delete(dashId)
    await closeSessions(m, dashId)
  })

/** Share login with a token ever issued (or one never issued): OK exactly when the rules say so. */
const shareLoginCmd = (pick: number) =>
  cmd(`shareLogin(#${pick})`, async (m, r) => {
    const token = m.shareTokens.length === 0 ? "n".repeat(32) : m.shareTokens[pick % m.shareTokens.length]!
    const client = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
    r.opened.push(client)
    const status = await client.request(Command.SHARE_LOGIN, 1, [r.email, token, "Android", "2.27.0"])
    const dashId = shareOpens(m, token)
    expect(status).toBe(dashId === undefined ? Status.NOT_ALLOWED : Status.OK)
    if (dashId === undefined) return void (await client.close())
    m.sessions.push({ dashId, client })
  })

/** Hardware login with a device token ever issued: OK exactly when it is a current device's token. */
const deviceLoginCmd = (pick: number) =>
  cmd(`deviceLogin(#${pick})`, async (m, r) => {
    const token = m.deviceTokens[pick % m.deviceTokens.length]!
    const client = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
    r.opened.push(client)
    const at = deviceAt(m, token)
    expect(await client.request(Command.HARDWARE_LOGIN, 1, [token])).toBe(at !== undefined ? Status.OK : Status.INVALID_TOKEN)
    // Offline again, so permitted shared writes keep answering DEVICE_NOT_IN_NETWORK. Closing our
    // end is not enough: until the server has seen the close, a shared write is delivered to the
    // device and (as the protocol says) not answered. Every dash here is active, so the owner's
    // app hears DEVICE_OFFLINE once the server has the device offline.
    const from = r.app.received.length
    await client.close()
    if (at !== undefined) {
      await r.app.next((f) => f._tag === "Message" && f.command === Command.DEVICE_OFFLINE && f.fields[0] === at, from)
    }
  }, (m) => m.deviceTokens.length > 0)

/**
 * A shared session writes to a device of a dashboard: permitted (its own dashboard, sharing on)
 * answers DEVICE_NOT_IN_NETWORK (the devices are offline), refused answers NOT_ALLOWED.
 */
const sharedWriteCmd = (pick: number, dashId: number, deviceId: number) =>
  cmd(`sharedWrite(#${pick} → ${dashId}-${deviceId})`, async (m) => {
    const session = m.sessions[pick % m.sessions.length]!
    const status = await session.client.request(Command.HARDWARE, id(), [`${dashId}-${deviceId}`, "vw", "1", "1"])
    const dash = m.dashes.get(dashId)!
    const permitted = session.dashId === dashId && dash.sharing && dash.devices.has(deviceId)
    expect(status).toBe(permitted ? Status.DEVICE_NOT_IN_NETWORK : Status.NOT_ALLOWED)
  }, (m) => m.sessions.length > 0 && m.dashes.get(dashId)?.devices.has(deviceId) === true)

const dash = fc.constantFrom(...DASHES)
const device = fc.constantFrom(...DEVICES)
// Repeated entries make a command likelier: a session that sees sharing switched off under it
// needs a grant, sharing on, a login and a write in one run.
const commands = fc.commands([
  dash.map(createDashCmd),
  fc.tuple(dash, device).map(([d, v]) => createDeviceCmd(d, v)),
  fc.tuple(dash, device).map(([d, v]) => createDeviceCmd(d, v)),
  dash.map(grantCmd),
  dash.map(grantCmd),
  dash.map(revokeCmd),
  fc.tuple(dash, fc.boolean()).map(([d, on]) => sharingCmd(d, on)),
  fc.tuple(dash, fc.boolean()).map(([d, on]) => sharingCmd(d, on)),
  fc.tuple(dash, device).map(([d, v]) => reprovisionCmd(d, v)),
  fc.tuple(dash, device).map(([d, v]) => deleteDeviceCmd(d, v)),
  dash.map(deleteDashCmd),
  fc.nat(20).map(shareLoginCmd),
  fc.nat(20).map(shareLoginCmd),
  fc.nat(20).map(shareLoginCmd),
  fc.nat(20).map(deviceLoginCmd),
  fc.tuple(fc.nat(5), dash, device).map(([p, d, v]) => sharedWriteCmd(p, d, v)),
  fc.tuple(fc.nat(5), dash, device).map(([p, d, v]) => sharedWriteCmd(p, d, v)),
  fc.tuple(fc.nat(5), dash, device).map(([p, d, v]) => sharedWriteCmd(p, d, v))
], { maxCommands: 40, size: "max" })

/**
 * What the projections say about every token ever issued (what code outside an actor asks):
 * a share token leads to its dashboard while it is current, with the sharing flag; a device
 * token to its device while it is current.
 */
const checkProjections = (m: Model, email: string) =>
  server.run(Effect.gen(function*() {
    const stream = accountStream(email, "Blynk")
    for (const token of m.shareTokens) {
      const current = [...m.dashes].find(([, d]) => d.shareToken === token)
      const found = Option.getOrUndefined(yield* findShare(token))
      expect(found, `share token ${token}`).toEqual(
        current === undefined ? undefined : { accountStream: stream, dashId: current[0], shared: current[1].sharing }
      )
    }
    for (const token of m.deviceTokens) {
      const found = Option.getOrUndefined(yield* findByToken(token))
      expect(found !== undefined, `device token ${token}`).toBe(deviceOf(m, token))
      if (found !== undefined) expect(found.accountStream).toBe(stream)
    }
  }))

/** Every token ever issued, logged in with again: the answers must still follow the rules. */
const checkAllTokens = async (m: Model, email: string, opened: Array<BlynkClient>) => {
  for (const token of m.shareTokens) {
    const client = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
    opened.push(client)
    const status = await client.request(Command.SHARE_LOGIN, 1, [email, token, "Android", "2.27.0"])
    expect(status, `share token ${token}`).toBe(shareOpens(m, token) === undefined ? Status.NOT_ALLOWED : Status.OK)
    await client.close()
  }
  for (const token of m.deviceTokens) {
    const client = await BlynkClient.connect({ port: server.plainPort, framing: "hardware" })
    opened.push(client)
    expect(await client.request(Command.HARDWARE_LOGIN, 1, [token]), `device token ${token}`).toBe(
      deviceOf(m, token) ? Status.OK : Status.INVALID_TOKEN
    )
    await client.close()
  }
}

describe("permissions model (issue 4 §6)", () => {
  it("a principal can act exactly when the rules say so, live and after the projections are rebuilt and the server restarted", async () => {
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        const { app, email } = await newAccount(server)
        await createDash(app, { id: 9, name: "unrelated" })
        const model: Model = { dashes: new Map(), shareTokens: [], deviceTokens: [], sessions: [] }
        const real: Real = { app, email, opened: [app] }
        try {
          // Both dashboards with a device each to start from, the first one shared, so most
          // commands meet something.
          for (const dashId of DASHES) {
            await createDashCmd(dashId).run(model, real)
            await createDeviceCmd(dashId, 0).run(model, real)
          }
          await grantCmd(1).run(model, real)
          await sharingCmd(1, true).run(model, real)
          await fc.asyncModelRun(() => ({ model, real }), cmds)
          await checkProjections(model, email)
          // After replay: the projections rebuilt from the log, the actors from their streams.
          await Promise.all(real.opened.map((c) => c.close()))
          await server.run(Effect.forEach(inlineProjections, rebuild, { discard: true }))
          await checkProjections(model, email)
          await server.close()
          server = await start(opened.storage)
          await checkAllTokens(model, email, real.opened)
        } finally {
          await Promise.all(real.opened.map((c) => c.close()))
        }
      }),
      { numRuns: 15 }
    )
  }, 240_000)
})
