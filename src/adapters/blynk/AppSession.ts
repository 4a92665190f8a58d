import { Deferred, Effect, Exit, Semaphore } from "effect"
import { deflateSync } from "node:zlib"
import { Directory } from "../../actors/Directory.ts"
import { addressOf, Throttle } from "../../actors/Throttle.ts"
import type { AppNotice, AppPeer, Status as StatusMeaning } from "../../actors/Peer.ts"
import type { ExecuteResult, UserActor, UserMessage, UserView } from "../../actors/UserActor.ts"
import {
  type Account,
  type AccountCommand,
  AccountRejected,
  type AccountState,
  findDashboard,
  findDevice,
  type NewDevice,
  normalizeEmail
} from "../../domain/Account.ts"
import { accountStream } from "../../domain/Streams.ts"
import { isJsonObject, type JsonObject, widgetId } from "../../domain/Widgets.ts"
import type { Metadata } from "../../eventstore/Event.ts"
import { findClone, findShare } from "../../eventstore/projections/Permissions.ts"
import { hasEventOfType } from "../../eventstore/Queries.ts"
import { hashPassword, newToken } from "../security/Passwords.ts"
import { mailVerification, newVerification, renewIfExpired, type VerificationSettings } from "../accounts/EmailVerification.ts"
import { handleResetRequest, parseResetRequest } from "../accounts/PasswordReset.ts"
import { checkPassword } from "../accounts/PasswordLogin.ts"
import { Command, commandName } from "./Command.ts"
import { FloodMeter } from "./FloodMeter.ts"
import { graphData, parseGraphDelete, parseGraphRequest } from "./GraphData.ts"
import { chartStreams } from "../../domain/Graphs.ts"
import { APP_HEADER, bodyFields, bodyText, encodeApp, encodeDashWs, type Frame, fromFields, type Message, response } from "./Frame.ts"
import { appDecoder, decodeDashWs, type FrameDecoder } from "./FrameDecoder.ts"
import { IllegalCommand, parseAppHardware } from "./HardwareBody.ts"
import { dashJson, deviceJson, type Live, profileJson, projectSettingKeys, settingsOf, type View, widgetJson } from "./ProfileJson.ts"
import { Delivery } from "./Delivery.ts"
import { defaultSizeLimits, type SessionEnv, type SizeLimits, type Watched } from "./SessionEnv.ts"
import { statusCode } from "./StatusCodes.ts"
import type { Transport, TransportEvents } from "./Transport.ts"
import { type ConnectionCounters, counters, shareLogin } from "../metrics/Counters.ts"

/** One registration at a time in this process, so two "first accounts" cannot both pass the closed check. */
const registrations = Semaphore.makeUnsafe(1)

/** GET_ENERGY's answer: Pinledger has no energy economy, so every app sees plenty. */
export const ENERGY = 1_000_000
const encoder = new TextEncoder()

/**
 * What a shared app may send (protocol.md §4.2, the legacy share handler's list); every other
 * command is a layout or account command and is refused with NOT_ALLOWED and recorded.
 */
const sharedCommands: ReadonlySet<number> = new Set([
  Command.PING,
  Command.LOGIN,
  Command.HARDWARE,
  Command.LOAD_PROFILE_GZIPPED,
  Command.GET_DEVICES,
  Command.APP_SYNC,
  Command.LOGOUT,
  Command.ADD_PUSH_TOKEN,
  Command.GET_ENHANCED_GRAPH_DATA,
  Command.DELETE_DEVICE_DATA
])

const rejectionStatus = (r: AccountRejected): StatusMeaning => {
  switch (r.reason) {
    case "AlreadyRegistered": return "alreadyRegistered"
    case "NotRegistered": return "notRegistered"
    case "DuplicateId":
    case "NotAllowed":
      return "notAllowed"
    case "UnknownDevice": return "illegalCommandBody"
    case "TooManyDashboards": return "quotaLimit"
    case "TooManyDevices": return "notAllowed"
    default: return "illegalCommand"
  }
}

class BadRequest {
  readonly status: StatusMeaning
  constructor(status: StatusMeaning) {
    this.status = status
  }
}

const numberOr = (text: string | undefined, status: StatusMeaning): number => {
  if (text === undefined || !/^-?\d{1,10}$/.test(text.trim())) throw new BadRequest(status)
  return Number(text.trim())
}

const int = (text: string | undefined): number => numberOr(text, "illegalCommand")

const json = (text: string | undefined, max: number): JsonObject => {
  if (text === undefined) throw new BadRequest("illegalCommand")
  if (text.length > max) throw new BadRequest("notAllowed")
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new BadRequest("illegalCommandBody")
  }
  if (!isJsonObject(value)) throw new BadRequest("illegalCommandBody")
  return value
}

const text = (value: unknown, fallback: string) =>
  typeof value === "string" && value.trim() !== "" ? value.slice(0, 50) : fallback

const newDevice = (o: JsonObject, id: number): NewDevice => {
  const { id: _id, name, boardType, token: _token, status: _s, ...extra } = o
  return { deviceId: id, name: text(name, "New Device"), boardType: text(boardType, "Generic Board"), token: newToken(), extra }
}

/**
 * One app connection (DESIGN.md's AppSession), over TLS with 7-byte frames or over `/dashws` with
 * 3-byte frames: login and registration, then every app command of protocol.md §2.1 that
 * Pinledger serves, turned into user actor messages; layout changes through the decider and log.
 */
export class AppSession {
  readonly #env: SessionEnv["Service"]
  readonly #framing: "app" | "dashws"
  readonly #sizes: SizeLimits
  readonly #decoder: FrameDecoder | undefined
  readonly #meter: FloodMeter
  readonly #watch: Watched
  readonly #session: string
  #transport: Transport | undefined
  readonly #delivery: Delivery<UserMessage>
  #state: "new" | "busy" | "ready" | "closed" = "new"
  #queued: Array<Frame> = []
  #registered = false
  #actor: UserActor | undefined
  #peer: AppPeer | undefined
  #email = ""
  /** This connection's counters (metrics/Counters.ts): an app's, or a shared app's after SHARE_LOGIN. */
  #counters: ConnectionCounters = counters.app

  constructor(env: SessionEnv["Service"], framing: "app" | "dashws", attach: (events: TransportEvents) => Transport) {
    this.#env = env
    this.#framing = framing
    this.#sizes = env.settings.sizes ?? defaultSizeLimits
    this.#decoder = framing === "app" ? appDecoder({ maxBody: this.#sizes.appBody }) : undefined
    this.#session = env.sessionId("app")
    this.#meter = new FloodMeter(env.settings.messageQuota, Date.now())
    this.#watch = { lastSeen: Date.now(), idleMs: env.settings.appIdleSeconds * 1000, onIdle: () => this.close("idle timeout") }
    env.sweeper.add(this.#watch)
    this.#delivery = new Delivery(env, () => this.#transport)
    this.#counters.open++
    this.#transport = attach({ data: (chunk) => this.#receive(chunk), closed: () => this.#closed() })
  }

  get remote() {
    return this.#transport?.remote ?? "unknown"
  }

  #deliver(message: UserMessage) {
    this.#delivery.send(this.#actor!, message)
  }

  #now() {
    return this.#state
  }

  close(reason: string) {
    if (this.#state === "closed") return
    if (reason !== "") this.#env.log("info", `app ${this.remote}: closing (${reason})`)
    this.#transport?.close()
    this.#closed()
  }

  #closed() {
    if (this.#state === "closed") return
    this.#state = "closed"
    this.#counters.open--
    this.#env.sweeper.remove(this.#watch)
    if (this.#actor && this.#peer) this.#deliver({ _tag: "AppDetach", peer: this.#peer })
  }

  #write(frame: Frame) {
    const bytes = this.#framing === "app" ? encodeApp(frame) : encodeDashWs(frame)
    if (bytes instanceof Error) return this.#env.log("warn", `app ${this.remote}: not sent: ${bytes.message}`)
    if (this.#transport?.write(bytes) === true) this.#counters.sent++
    else this.#counters.notSent++
  }

  #status(id: number, status: StatusMeaning) {
    this.#write(response(id, statusCode(status)))
  }

  #reply(command: number, id: number, body: string | Uint8Array) {
    this.#write({ _tag: "Message", command, id, body: typeof body === "string" ? encoder.encode(body) : body })
  }

  #receive(chunk: Uint8Array) {
    if (this.#state === "closed") return
    this.#watch.lastSeen = Date.now()
    let frames: ReadonlyArray<Frame>
    let error: Error | undefined
    if (this.#decoder) {
      const result = this.#decoder.push(chunk)
      frames = result.frames
      error = result.error
    } else {
      const frame = decodeDashWs(chunk, { maxBody: this.#sizes.appBody })
      frames = frame instanceof Error ? [] : [frame]
      error = frame instanceof Error ? frame : undefined
    }
    this.#counters.received += frames.length
    for (const frame of frames) {
      if (this.#now() === "closed") return
      if (this.#now() === "busy") this.#queued.push(frame)
      else this.#safely(frame)
    }
    if (error) this.close(error.message)
  }

  #safely(frame: Frame) {
    try {
      this.#handle(frame)
    } catch (cause) {
      if (cause instanceof BadRequest) return this.#status(frame.id, cause.status)
      this.close(`session failed: ${cause instanceof Error ? cause.stack ?? cause.message : String(cause)}`)
    }
  }

  /** Leaves the busy state (login, registration) and handles what arrived meanwhile. */
  #resume(state: "new" | "ready") {
    this.#state = state
    const queued = this.#queued
    this.#queued = []
    for (const frame of queued) {
      if (this.#now() === "closed") return
      if (this.#now() === "busy") this.#queued.push(frame)
      else this.#safely(frame)
    }
  }

  #handle(frame: Frame) {
    const decision = this.#meter.onFrame(Date.now())
    if (decision !== "accept") {
      this.#counters.overQuota++
      if (decision === "dropAndNotify") this.#status(frame.id, "quotaLimit")
      return
    }
    if (frame._tag === "Response") return
    if (this.#state === "new") return this.#preLogin(frame)
    this.#command(frame)
  }

  // ---- before login (protocol.md §3.3) ----

  #preLogin(frame: Message) {
    const fields = bodyFields(frame.body)
    switch (frame.command) {
      case Command.LOGIN: return this.#login(frame.id, fields)
      case Command.REGISTER: return this.#register(frame.id, fields)
      case Command.SHARE_LOGIN: return this.#shareLogin(frame.id, fields)
      case Command.RESET_PASSWORD: return this.#resetPassword(frame.id, fields)
      case Command.GET_SERVER:
        // One server owns every account. Refused, the socket stays.
        return this.#status(frame.id, "notAllowed")
      default:
        return this.close(`command ${frame.command} before login`)
    }
  }

  #metadata(): Metadata {
    return { actor: this.#email === "" ? "app" : `app:${this.#email}`, session: this.#session, remoteAddress: this.remote, time: new Date().toISOString() }
  }

  #verification(): VerificationSettings {
    return { publicUrl: this.#env.settings.publicUrl, tokenHours: this.#env.settings.verifyTokenHours }
  }

  /** RESET_PASSWORD (81): `start, email[, appName]` / `verify, token` / `reset, token, newPassHash` (accounts/PasswordReset.ts). */
  #resetPassword(id: number, fields: ReadonlyArray<string>) {
    const request = parseResetRequest(fields)
    if (request === undefined) return this.#status(id, "illegalCommand")
    this.#state = "busy"
    const context = { address: addressOf(this.remote), metadata: this.#metadata(), tokenMinutes: this.#env.settings.resetTokenMinutes }
    this.#env.run(handleResetRequest(request, context), (exit) => {
      if (this.#now() === "closed") return
      if (Exit.isFailure(exit)) this.#env.log("warn", `app ${this.remote}: password reset failed: ${exit.cause}`)
      this.#status(id, Exit.isSuccess(exit) ? exit.value : "serverError")
      this.#resume("new")
    })
  }

  #register(id: number, fields: ReadonlyArray<string>) {
    if (this.#registered) {
      this.#status(id, "notAllowed")
      return this.close("a second registration on one connection")
    }
    const [email, passHash, appName = "Blynk"] = fields
    if (email === undefined || passHash === undefined || fields.length < 3) return this.#status(id, "illegalCommand")
    this.#state = "busy"
    const metadata = this.#metadata()
    const mode = this.#env.settings.registration
    const verification = this.#verification()
    this.#env.run(
      registrations.withPermit(Effect.gen(function*() {
        const anyAccount = mode === "open" ? false : yield* hasEventOfType("AccountRegistered")
        // Closed registration (the default): the protocol may create the very first account only.
        if (mode === "closed" && anyAccount) return "closed" as const
        // Verify: every account but the very first confirms its address before it logs in.
        const link = mode === "verify" && anyAccount ? yield* newVerification(verification) : undefined
        const passwordHash = yield* hashPassword(passHash)
        const actor = yield* (yield* Directory).actor(accountStream(email, appName))
        const reply = yield* Deferred.make<ExecuteResult, AccountRejected>()
        yield* actor.ref.tell({
          _tag: "Execute",
          peer: undefined,
          id,
          commands: () => [{ _tag: "Register", email, appName, passwordHash, ...(link ? { verification: link.pending } : {}) }],
          metadata,
          answer: () => undefined,
          reply
        })
        const { account } = yield* Deferred.await(reply)
        return { account, token: link?.token }
      })).pipe(Effect.flatMap((registered) =>
        registered === "closed" || registered.token === undefined
          ? Effect.succeed(registered)
          : mailVerification(registered.account.email, registered.account.appName, registered.token, verification).pipe(
            Effect.as(registered),
            // The account stays: a password reset (which confirms the address) or a login after the link expired mails again.
            Effect.catchTag("MailError", (e) => Effect.as(Effect.logWarning(`registration: no confirmation mail to ${registered.account.email}: ${e.reason}`), "mailFailed" as const))
          )
      )),
      (exit) => {
        if (this.#now() === "closed") return
        if (Exit.isSuccess(exit) && exit.value === "closed") {
          this.#env.log("info", `app ${this.remote}: registration of ${email} refused (PINLEDGER_REGISTRATION=closed)`)
          this.#status(id, "notAllowed")
        } else if (Exit.isSuccess(exit) && exit.value === "mailFailed") {
          this.#registered = true
          this.#status(id, "serverError")
        } else if (Exit.isSuccess(exit)) {
          this.#registered = true
          this.#status(id, "ok")
        } else {
          const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error
          this.#status(id, error instanceof AccountRejected ? rejectionStatus(error) : "serverError")
        }
        this.#resume("new")
      }
    )
  }

  #login(id: number, fields: ReadonlyArray<string>) {
    const [rawEmail, passHash, , , appName = "Blynk"] = fields
    if (rawEmail === undefined || passHash === undefined) return this.#status(id, "illegalCommand")
    const email = normalizeEmail(rawEmail)
    this.#state = "busy"
    const peer: AppPeer = { remote: this.remote, session: this.#session, send: (n: AppNotice) => this.#guarded(n) }
    const address = addressOf(this.remote)
    const metadata = { ...this.#metadata(), actor: `app:${email}` }
    const verification = this.#verification()
    this.#env.run(
      Effect.gen(function*() {
        const stream = accountStream(email, appName)
        const checked = yield* checkPassword({ stream, email, clientHash: passHash, address, metadata })
        switch (checked._tag) {
          case "Blocked": return "notAllowed" as const
          case "UnknownAccount": return "notRegistered" as const
          case "WrongPassword": return "notAuthenticated" as const
          case "Unconfirmed":
            yield* renewIfExpired(stream, checked.account, verification, metadata)
            return "notAllowed" as const
        }
        const actor = yield* (yield* Directory).actor(stream)
        const attached = yield* ask<boolean>(actor, (reply) => ({ _tag: "AppAttach", peer, reply }))
        return attached ? { actor, peer } : "notRegistered" as const
      }),
      (exit) => this.#loggedIn(id, email, exit)
    )
  }

  /** The end of a login or share login: attached to the actor, or the status to answer. */
  #loggedIn(id: number, email: string, exit: Exit.Exit<{ actor: UserActor; peer: AppPeer } | StatusMeaning, unknown>) {
    if (this.#now() === "closed") {
      if (Exit.isSuccess(exit) && typeof exit.value !== "string") this.#delivery.send(exit.value.actor, { _tag: "AppDetach", peer: exit.value.peer })
      return
    }
    if (Exit.isFailure(exit)) {
      this.#env.log("warn", `app ${this.remote}: login failed: ${exit.cause}`)
      this.#status(id, "serverError")
      return this.#resume("new")
    }
    if (typeof exit.value === "string") {
      this.#env.log("info", `app ${this.remote}: login refused for ${email} (${exit.value})`)
      this.#status(id, exit.value)
      return this.#resume("new")
    }
    this.#actor = exit.value.actor
    this.#peer = exit.value.peer
    if (exit.value.peer.shared !== undefined) this.#counters = shareLogin()
    this.#email = email
    this.#status(id, "ok")
    this.#resume("ready")
  }

  /**
   * SHARE_LOGIN `ownerEmail, shareToken[, os, version[, appName]]` (protocol.md §4.2): no account
   * needed; the token must be the dashboard's current one (the permissions projection, then the
   * actor's own state) and sharing on. Failures count towards the address's login throttle.
   */
  #shareLogin(id: number, fields: ReadonlyArray<string>) {
    const [rawEmail, rawToken, , , appName = "Blynk"] = fields
    if (rawEmail === undefined || rawToken === undefined) return this.#status(id, "illegalCommand")
    const email = normalizeEmail(rawEmail)
    const token = rawToken.trim()
    this.#state = "busy"
    const address = addressOf(this.remote)
    const metadata = { ...this.#metadata(), actor: `app:shared:${email}` }
    const stream = accountStream(email, appName)
    const base = { remote: this.remote, session: this.#session, send: (n: AppNotice) => this.#guarded(n) }
    this.#env.run(
      Effect.gen(function*() {
        const throttle = yield* Throttle
        if (yield* throttle.blocked("login", address)) return "notAllowed" as const
        const grant = yield* findShare(token)
        if (grant._tag === "None" || grant.value.accountStream !== stream || !grant.value.shared) {
          yield* throttle.fail("login", address, `share:${email}`, metadata)
          return "notAllowed" as const
        }
        const peer: AppPeer = { ...base, shared: { dashId: grant.value.dashId, token } }
        const actor = yield* (yield* Directory).actor(stream)
        const attached = yield* ask<boolean>(actor, (reply) => ({ _tag: "AppAttach", peer, reply }))
        if (!attached) {
          yield* throttle.fail("login", address, `share:${email}`, metadata)
          return "notAllowed" as const
        }
        return { actor, peer }
      }),
      (exit) => this.#loggedIn(id, email, exit)
    )
  }

  // ---- after login ----

  /** Called by the user actor: whatever goes wrong here closes this connection, never the actor. */
  #guarded(notice: AppNotice) {
    try {
      this.#notice(notice)
    } catch (cause) {
      this.close(`session failed: ${cause instanceof Error ? cause.stack ?? cause.message : String(cause)}`)
    }
  }

  #notice(notice: AppNotice) {
    if (this.#state === "closed") return
    switch (notice._tag) {
      case "DeviceWrite": {
        if (this.#framing === "app") {
          if (this.#transport?.write(encodeForward(notice.id, notice.dashId, notice.deviceId, notice.body)) === true) this.#counters.sent++
          else this.#counters.notSent++
          return
        }
        const prefix = encoder.encode(`${notice.dashId}-${notice.deviceId}\0`)
        const body = new Uint8Array(prefix.length + notice.body.length)
        body.set(prefix)
        body.set(notice.body, prefix.length)
        return this.#reply(Command.HARDWARE, notice.id, body)
      }
      case "AppWrite": return this.#reply(Command.APP_SYNC, notice.id, notice.body)
      case "Connected": return this.#reply(Command.HARDWARE_CONNECTED, notice.id, `${notice.dashId}-${notice.deviceId}`)
      case "Offline": return this.#reply(Command.DEVICE_OFFLINE, 0, `${notice.dashId}-${notice.deviceId}`)
      case "Activated": return this.#reply(Command.ACTIVATE_DASHBOARD, notice.id, String(notice.dashId))
      case "Deactivated": return this.#reply(Command.DEACTIVATE_DASHBOARD, notice.id, notice.dashId === undefined ? "" : String(notice.dashId))
      case "Sharing": return this.#write(fromFields(Command.SHARING, notice.id, [String(notice.dashId), notice.on ? "on" : "off"]))
      case "Sync": return this.#write(fromFields(Command.APP_SYNC, notice.id, [`${notice.dashId}-${notice.deviceId}`, ...notice.fields]))
      case "Property":
        return this.#write(fromFields(Command.SET_WIDGET_PROPERTY, notice.id, [
          `${notice.dashId}-${notice.deviceId}`, String(notice.pin), notice.property, notice.value
        ]))
      case "Status": return this.#status(notice.id, notice.status)
      case "Reply": return this.#reply(notice.command, notice.id, notice.body)
      case "Close": return this.close(notice.reason)
    }
  }

  /** Runs commands through the user actor; it answers (after the commit) with `answer`, or OK. */
  #execute(
    id: number,
    commands: (state: AccountState) => ReadonlyArray<AccountCommand>,
    answer: (result: ExecuteResult) => AppNotice | undefined | null = () => undefined,
    onReject: (status: StatusMeaning) => StatusMeaning | null = (status) => status
  ) {
    const actor = this.#actor!
    const peer = this.#peer!
    const metadata = this.#metadata()
    this.#env.run(
      Effect.flatMap(Deferred.make<ExecuteResult, AccountRejected>(), (reply) =>
        Effect.andThen(
          actor.ref.tell({ _tag: "Execute", peer, id, commands, metadata, answer, reply }),
          Deferred.await(reply)
        )),
      (exit) => {
        if (Exit.isSuccess(exit) || this.#now() === "closed") return
        const error = exit.cause.reasons.find((r) => r._tag === "Fail")?.error
        if (error instanceof AccountRejected) {
          const status = onReject(rejectionStatus(error))
          return status === null ? undefined : this.#status(id, status)
        }
        this.#env.log("warn", `app ${this.remote}: command ${id} failed: ${exit.cause}`)
        this.#status(id, "serverError")
      }
    )
  }

  /** Reads the actor's state and answers from it. */
  #read(id: number, answer: (view: UserView, account: Account) => void) {
    this.#env.run(ask<UserView>(this.#actor!, (reply) => ({ _tag: "Read", reply })), (exit) => {
      if (this.#now() === "closed") return
      if (Exit.isFailure(exit) || exit.value.account === undefined) return this.#status(id, "serverError")
      try {
        answer(exit.value, exit.value.account)
      } catch (cause) {
        if (cause instanceof BadRequest) return this.#status(id, cause.status)
        throw cause
      }
    })
  }

  /** The owner's view, or a shared app's restrictive one. */
  #view(): View {
    return { restricted: this.#peer?.shared !== undefined }
  }

  /** NOT_ALLOWED for a shared app, and an event saying what it tried. */
  #refuse(id: number, what: string) {
    this.#status(id, "notAllowed")
    this.#deliver({ _tag: "Refused", peer: this.#peer!, command: what })
  }

  /** GET_ENHANCED_GRAPH_DATA (protocol.md §7.3): the chart's streams from the history (GraphData.ts); none → NO_DATA. */
  #graphData(id: number, fields: ReadonlyArray<string>) {
    const request = parseGraphRequest(fields)
    if (request === undefined) throw new BadRequest("illegalCommand")
    if (!this.#inScope(request.dashId)) return this.#refuse(id, `GET_ENHANCED_GRAPH_DATA ${request.dashId}`)
    const stream = this.#actor!.stream
    this.#read(id, (_, account) => {
      const dash = findDashboard(account, request.dashId)
      const streams = dash && chartStreams(dash, request.widgetId, request.targetId)
      if (streams === undefined) throw new BadRequest("illegalCommand")
      this.#env.run(graphData(stream, request, streams, Date.now()), (exit) => {
        if (this.#now() === "closed") return
        if (Exit.isFailure(exit)) {
          this.#env.log("warn", `app ${this.remote}: graph data failed: ${exit.cause}`)
          return this.#status(id, "serverError")
        }
        if (exit.value === undefined) return this.#status(id, "noData")
        this.#reply(Command.GET_ENHANCED_GRAPH_DATA, id, exit.value)
      })
    })
  }

  /** For a shared app: the dashboard named in a body must be the one it was shared. */
  #inScope(dashId: number) {
    const scope = this.#peer?.shared
    return scope === undefined || scope.dashId === dashId
  }

  #command(frame: Message) {
    const id = frame.id
    const fields = () => bodyFields(frame.body)
    const shared = this.#peer?.shared
    if (shared !== undefined && !sharedCommands.has(frame.command)) {
      return this.#refuse(id, commandName(frame.command) ?? String(frame.command))
    }
    switch (frame.command) {
      case Command.PING: return this.#status(id, "ok")
      case Command.LOGIN: return // protocol.md §3.3: ignored once logged in
      case Command.HARDWARE: return this.#hardware(frame)
      case Command.LOAD_PROFILE_GZIPPED: {
        const [dash] = fields()
        const wanted = dash === undefined || dash === "" ? undefined : int(dash)
        if (wanted !== undefined && !this.#inScope(wanted)) return this.#refuse(id, `LOAD_PROFILE_GZIPPED ${wanted}`)
        const view = this.#view()
        return this.#read(id, (state, account) => {
          const live: Live = state
          let value: JsonObject
          if (wanted === undefined) value = profileJson(account, live, view, shared?.dashId)
          else {
            const d = findDashboard(account, wanted)
            if (d === undefined) throw new BadRequest("illegalCommand")
            value = dashJson(d, live, view)
          }
          this.#reply(Command.LOAD_PROFILE_GZIPPED, id, deflateSync(JSON.stringify(value)))
        })
      }
      case Command.CREATE_DASH: {
        const f = fields()
        const body = f[0] === "no_token" ? f[1] : f.join("\0")
        const dash = json(body, this.#sizes.dashboardJson)
        const dashId = typeof dash["id"] === "number" ? dash["id"] : Number.NaN
        const widgets = Array.isArray(dash["widgets"]) ? dash["widgets"].filter(isJsonObject) : []
        const devices = (Array.isArray(dash["devices"]) ? dash["devices"].filter(isJsonObject) : []).map((d) =>
          newDevice(d, typeof d["id"] === "number" ? d["id"] : 0)
        )
        return this.#execute(id, () => [{
          _tag: "CreateDashboard",
          dashId,
          name: text(dash["name"], "New Project"),
          settings: settingsOf(dash),
          widgets,
          devices
        }])
      }
      case Command.UPDATE_DASH: {
        const dash = json(fields().join("\0"), this.#sizes.dashboardJson)
        const dashId = typeof dash["id"] === "number" ? dash["id"] : Number.NaN
        const widgets = Array.isArray(dash["widgets"]) ? dash["widgets"].filter(isJsonObject) : []
        return this.#execute(id, (s) => [{
          _tag: "UpdateDashboard",
          dashId,
          name: text(dash["name"], findDashboard(s, dashId)?.name ?? "New Project"),
          settings: settingsOf(dash),
          widgets
        }])
      }
      case Command.DELETE_DASH: {
        const dashId = int(fields()[0])
        return this.#execute(id, () => [{ _tag: "DeleteDashboard", dashId }])
      }
      case Command.UPDATE_PROJECT_SETTINGS: {
        const [dashText, ...rest] = fields()
        const dashId = int(dashText)
        const settings = json(rest.join("\0"), this.#sizes.dashboardJson)
        return this.#execute(id, (s) => {
          const dash = findDashboard(s, dashId)
          const merged: Record<string, JsonObject[string]> = { ...dash?.settings }
          for (const key of projectSettingKeys) if (key in settings) merged[key] = settings[key]!
          return [{ _tag: "UpdateProjectSettings", dashId, name: text(settings["name"], dash?.name ?? "New Project"), settings: merged }]
        })
      }
      case Command.ACTIVATE_DASHBOARD: {
        const dashId = int(fields()[0])
        return this.#execute(id, () => [{ _tag: "Activate", dashId }])
      }
      case Command.DEACTIVATE_DASHBOARD: {
        const [dash] = fields()
        const dashId = dash === undefined || dash === "" ? undefined : int(dash)
        return this.#execute(id, () => [dashId === undefined ? { _tag: "Deactivate" } : { _tag: "Deactivate", dashId }])
      }
      case Command.CREATE_DEVICE: {
        const [dashText, ...rest] = fields()
        const dashId = int(dashText)
        const device = json(rest.join("\0"), this.#sizes.widgetJson)
        if (typeof device["boardType"] !== "string" || typeof device["name"] !== "string" || device["name"].length > 50) {
          throw new BadRequest("illegalCommand")
        }
        return this.#execute(id, (s) => {
          const dash = findDashboard(s, dashId)
          const deviceId = typeof device["id"] === "number"
            ? device["id"]
            : Math.max(-1, ...(dash?.devices.map((d) => d.id) ?? [])) + 1
          return [{ _tag: "CreateDevice", dashId, ...newDevice(device, deviceId) }]
        }, ({ account, events }) => {
          const created = events.find((e) => e._tag === "DeviceCreated")
          const dash = findDashboard(account, dashId)
          const d = created && dash ? findDevice(dash, created.deviceId) : undefined
          return d && dash
            ? { _tag: "Reply", command: Command.CREATE_DEVICE, id, body: encoder.encode(JSON.stringify(deviceJson(dash, d, { pins: new Map(), online: new Set() }))) }
            : undefined
        })
      }
      case Command.UPDATE_DEVICE: {
        const [dashText, ...rest] = fields()
        const dashId = int(dashText)
        const device = json(rest.join("\0"), this.#sizes.widgetJson)
        const deviceId = typeof device["id"] === "number" ? device["id"] : Number.NaN
        return this.#execute(id, (s) => {
          const old = findDevice(findDashboard(s, dashId), deviceId)
          const { id: _id, name, boardType, token: _t, status: _s, ...extra } = device
          return [{
            _tag: "UpdateDevice",
            dashId,
            deviceId,
            name: text(name, old?.name ?? "New Device"),
            boardType: text(boardType, old?.boardType ?? "Generic Board"),
            extra: { ...old?.extra, ...extra }
          }]
        })
      }
      case Command.REFRESH_TOKEN: {
        // protocol.md §3.4: a new token; the device's sockets are closed; the old token is refused.
        const [dashText, deviceText] = fields()
        const dashId = int(dashText)
        const deviceId = deviceText === undefined || deviceText === "" ? 0 : int(deviceText)
        const token = newToken()
        return this.#execute(
          id,
          () => [{ _tag: "RefreshToken", dashId, deviceId, token }],
          () => ({ _tag: "Reply", command: Command.REFRESH_TOKEN, id, body: encoder.encode(token) })
        )
      }
      case Command.DELETE_DEVICE: {
        const [dashText, deviceText] = fields()
        const dashId = int(dashText)
        const deviceId = int(deviceText)
        return this.#execute(id, () => [{ _tag: "DeleteDevice", dashId, deviceId }])
      }
      case Command.GET_DEVICES: {
        const dashId = int(fields()[0])
        if (!this.#inScope(dashId)) return this.#refuse(id, `GET_DEVICES ${dashId}`)
        const view = this.#view()
        return this.#read(id, (live, account) => {
          const dash = findDashboard(account, dashId)
          if (dash === undefined) throw new BadRequest("illegalCommand")
          // A shared app never sees device tokens (fixed on purpose, issue 4).
          this.#reply(Command.GET_DEVICES, id, JSON.stringify(dash.devices.map((d) => deviceJson(dash, d, live, view))))
        })
      }
      case Command.MOBILE_GET_DEVICE: {
        const [dashText, deviceText] = fields()
        const dashId = int(dashText)
        const deviceId = int(deviceText)
        return this.#read(id, (view, account) => {
          const dash = findDashboard(account, dashId)
          const device = findDevice(dash, deviceId)
          if (dash === undefined || device === undefined) throw new BadRequest("illegalCommandBody")
          this.#reply(Command.MOBILE_GET_DEVICE, id, JSON.stringify(deviceJson(dash, device, view)))
        })
      }
      case Command.CREATE_WIDGET:
      case Command.UPDATE_WIDGET: {
        const f = fields()
        if (f.length !== 2) throw new BadRequest("illegalCommand")
        const dashId = int(f[0])
        const widget = json(f[1], this.#sizes.widgetJson)
        for (const side of ["width", "height"]) {
          if (typeof widget[side] === "number" && (widget[side] as number) < 1) throw new BadRequest("notAllowed")
        }
        const { value: _value, ...layout } = widget
        return this.#execute(id, () => [
          frame.command === Command.CREATE_WIDGET
            ? { _tag: "CreateWidget", dashId, widget: layout }
            : { _tag: "UpdateWidget", dashId, widget: layout }
        ])
      }
      case Command.DELETE_WIDGET: {
        const [dashText, widgetText] = fields()
        const dashId = int(dashText)
        const widget = int(widgetText)
        return this.#execute(id, () => [{ _tag: "DeleteWidget", dashId, widgetId: widget }])
      }
      case Command.GET_WIDGET: {
        const [dashText, widgetText] = fields()
        const dashId = int(dashText)
        const wanted = int(widgetText)
        return this.#read(id, (view, account) => {
          const dash = findDashboard(account, dashId)
          const widget = dash?.widgets.find((w) => widgetId(w) === wanted)
          if (dash === undefined || widget === undefined) throw new BadRequest("illegalCommand")
          this.#reply(Command.GET_WIDGET, id, JSON.stringify(widgetJson(dash.id, widget, view)))
        })
      }
      case Command.CREATE_TAG:
      case Command.UPDATE_TAG: {
        const [dashText, ...rest] = fields()
        const dashId = int(dashText)
        const tag = json(rest.join("\0"), this.#sizes.widgetJson)
        const deviceIds = Array.isArray(tag["deviceIds"]) ? tag["deviceIds"] : []
        if (typeof tag["id"] !== "number" || !deviceIds.every((d) => typeof d === "number")) throw new BadRequest("illegalCommand")
        const value = { id: tag["id"], name: typeof tag["name"] === "string" ? tag["name"] : "", deviceIds: deviceIds as Array<number> }
        return this.#execute(id, () => [
          frame.command === Command.CREATE_TAG ? { _tag: "CreateTag", dashId, tag: value } : { _tag: "UpdateTag", dashId, tag: value }
        ])
      }
      case Command.DELETE_TAG: {
        const [dashText, tagText] = fields()
        const dashId = int(dashText)
        const tagId = int(tagText)
        return this.#execute(id, () => [{ _tag: "DeleteTag", dashId, tagId }])
      }
      case Command.GET_TAGS: {
        const dashId = int(fields()[0])
        return this.#read(id, (_, account) => {
          const dash = findDashboard(account, dashId)
          if (dash === undefined) throw new BadRequest("illegalCommand")
          this.#reply(Command.GET_TAGS, id, JSON.stringify(dash.tags))
        })
      }
      case Command.APP_SYNC: {
        const [target = ""] = fields()
        const [dashText, deviceText] = target.split("-")
        const dashId = int(dashText)
        const deviceId = deviceText === undefined ? undefined : int(deviceText)
        return this.#deliver({ _tag: "AppSync", peer: this.#peer!, id, dashId, deviceId })
      }
      case Command.GET_ENERGY: return this.#reply(Command.GET_ENERGY, id, String(ENERGY))
      case Command.GET_SHARE_TOKEN: {
        // protocol.md §4.2: the existing token, or a new one the first time. Non-numeric id → 6.
        const dashId = numberOr(fields()[0], "notAllowed")
        const token = newToken()
        return this.#execute(id, () => [{ _tag: "GetShareToken", dashId, token }], ({ account }) => {
          const current = findDashboard(account, dashId)?.shareToken
          return current === undefined ? undefined : { _tag: "Reply", command: Command.GET_SHARE_TOKEN, id, body: encoder.encode(current) }
        })
      }
      case Command.REFRESH_SHARE_TOKEN: {
        // A new token to the owner; the shared sessions get NOT_ALLOWED and are closed (the actor does that).
        const dashId = numberOr(fields()[0], "notAllowed")
        const token = newToken()
        return this.#execute(
          id,
          () => [{ _tag: "RefreshShareToken", dashId, token }],
          () => ({ _tag: "Reply", command: Command.REFRESH_SHARE_TOKEN, id, body: encoder.encode(token) })
        )
      }
      case Command.SHARING: {
        const [dashText, onOff] = fields()
        const dashId = int(dashText)
        if (onOff !== "on" && onOff !== "off") throw new BadRequest("illegalCommand")
        return this.#execute(id, () => [{ _tag: "SetSharing", dashId, on: onOff === "on" }])
      }
      case Command.GET_CLONE_CODE: {
        const dashId = int(fields()[0])
        const code = newToken()
        return this.#execute(
          id,
          () => [{ _tag: "IssueCloneCode", dashId, code }],
          () => ({ _tag: "Reply", command: Command.GET_CLONE_CODE, id, body: encoder.encode(code) })
        )
      }
      case Command.GET_PROJECT_BY_CLONE_CODE: return this.#projectByCloneCode(id, fields())
      case Command.GET_ENHANCED_GRAPH_DATA: return this.#graphData(id, fields())
      case Command.DELETE_ENHANCED_GRAPH_DATA: {
        const request = parseGraphDelete(fields())
        if (request === undefined) throw new BadRequest("illegalCommand")
        return this.#execute(id, () => [{ _tag: "DeleteGraphData", ...request }])
      }
      case Command.LOGOUT:
        this.#status(id, "ok")
        return this.close("")
      default:
        // protocol.md §1.1: a known-range code this server does not serve is ignored.
        return
    }
  }

  /**
   * GET_PROJECT_BY_CLONE_CODE `code[, new]` (protocol.md §4.3): the cloned layout (zlib JSON);
   * with `new` it also becomes a dashboard of this account, next free id, fresh device tokens,
   * not shared. Unknown code → SERVER_ERROR (19), as the legacy server answers.
   */
  #projectByCloneCode(id: number, fields: ReadonlyArray<string>) {
    const [code, mode] = fields
    if (code === undefined || code.trim() === "") throw new BadRequest("illegalCommand")
    const create = mode === "new"
    this.#env.run(findClone(code.trim()), (exit) => {
      if (this.#now() === "closed") return
      if (Exit.isFailure(exit)) {
        this.#env.log("warn", `app ${this.remote}: clone lookup failed: ${exit.cause}`)
        return this.#status(id, "serverError")
      }
      if (exit.value._tag === "None") return this.#status(id, "serverError")
      const layout = exit.value.value
      if (!create) return this.#reply(Command.GET_PROJECT_BY_CLONE_CODE, id, deflateSync(JSON.stringify(layout)))
      const widgets = Array.isArray(layout["widgets"]) ? layout["widgets"].filter(isJsonObject) : []
      const devices = (Array.isArray(layout["devices"]) ? layout["devices"].filter(isJsonObject) : []).map((d) =>
        newDevice(d, typeof d["id"] === "number" ? d["id"] : 0)
      )
      const tags = (Array.isArray(layout["tags"]) ? layout["tags"].filter(isJsonObject) : []).flatMap((t) =>
        typeof t["id"] === "number" && Array.isArray(t["deviceIds"])
          ? [{ id: t["id"], name: typeof t["name"] === "string" ? t["name"] : "", deviceIds: t["deviceIds"].filter((d) => typeof d === "number") }]
          : []
      )
      let dashId = 0
      this.#execute(id, (s) => {
        dashId = Math.max(0, ...(s?.dashboards.map((d) => d.id + 1) ?? []))
        return [
          {
            _tag: "CreateDashboard",
            dashId,
            name: text(layout["name"], "New Project"),
            settings: { ...settingsOf(layout as JsonObject), isShared: false },
            widgets,
            devices
          },
          ...tags.map((tag) => ({ _tag: "CreateTag" as const, dashId, tag }))
        ]
      }, ({ account }) => {
        const dash = findDashboard(account, dashId)
        return dash === undefined ? undefined : {
          _tag: "Reply",
          command: Command.GET_PROJECT_BY_CLONE_CODE,
          id,
          body: deflateSync(JSON.stringify(dashJson(dash, { pins: new Map(), online: new Set() })))
        }
      })
    })
  }

  #hardware(frame: Message) {
    const text = bodyText(frame.body)
    const parsed = parseAppHardware(text)
    if (parsed instanceof IllegalCommand) return this.#status(frame.id, "illegalCommand")
    const { target, command } = parsed
    if (!this.#inScope(target.dashId)) return this.#refuse(frame.id, `HARDWARE to dashboard ${target.dashId}`)
    if (command._tag === "DeviceSelector") {
      // `vu`: the selector now shows another device. Not forwarded to hardware, no answer.
      return this.#execute(
        frame.id,
        () => [{ _tag: "SelectDevice", dashId: target.dashId, widgetId: command.selectorId, deviceId: command.deviceId }],
        () => null,
        (status) => (status === "illegalCommandBody" ? "illegalCommand" : status)
      )
    }
    // From an app only writes act (protocol.md §2.2); reads and pin modes are the server's job.
    if (command._tag !== "Write") return
    const nul = frame.body.indexOf(0)
    this.#deliver({
      _tag: "AppWrite",
      peer: this.#peer!,
      id: frame.id,
      dashId: target.dashId,
      targetId: target.targetId,
      write: [command.pinType, command.pin, ...(command.values as [string, ...Array<string>])],
      body: frame.body.subarray(nul + 1),
      fullBody: frame.body
    })
  }
}

/**
 * The hot path of the app side: a device's write as HARDWARE `dashId-deviceId\0<body>` in app
 * framing, built in one allocation (the prefix is ASCII digits).
 */
const encodeForward = (id: number, dashId: number, deviceId: number, body: Uint8Array): Buffer => {
  const prefix = `${dashId}-${deviceId}\0`
  const length = prefix.length + body.length
  const out = Buffer.allocUnsafe(APP_HEADER + length)
  out[0] = Command.HARDWARE
  out.writeUInt16BE(id, 1)
  out.writeUInt32BE(length, 3)
  out.write(prefix, APP_HEADER, "latin1")
  out.set(body, APP_HEADER + prefix.length)
  return out
}

const ask = <A>(actor: UserActor, make: (reply: Deferred.Deferred<A>) => Parameters<UserActor["ref"]["offer"]>[0]) =>
  actor.ref.ask<A, never>(make as never)

