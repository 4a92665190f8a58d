import { Deferred, Effect, Exit, Option } from "effect"
import { Directory } from "../../actors/Directory.ts"
import { addressOf, Throttle } from "../../actors/Throttle.ts"
import type { DeviceNotice, DevicePeer } from "../../actors/Peer.ts"
import type { UserActor, UserMessage } from "../../actors/UserActor.ts"
import { findByToken } from "../../eventstore/projections/DeviceTokens.ts"
import { Command } from "./Command.ts"
import { FloodMeter } from "./FloodMeter.ts"
import { bodyFields, bodyText, encodeHardware, type Frame, fromFields, type Message, message, response } from "./Frame.ts"
import { type FrameDecoder, hardwareDecoder } from "./FrameDecoder.ts"
import { IllegalCommand, parseHardware, parseInternal } from "./HardwareBody.ts"
import { Delivery } from "./Delivery.ts"
import { NotificationGate } from "./NotificationGate.ts"
import { defaultSizeLimits, type SessionEnv, type Watched } from "./SessionEnv.ts"
import { counters } from "../metrics/Counters.ts"
import { statusCode } from "./StatusCodes.ts"
import type { Transport, TransportEvents } from "./Transport.ts"
import { zonedParts } from "../ZonedTime.ts"

/** The size filter's limit when the device never said `buff-in` (protocol.md §1.1). */
const DEFAULT_BUFF_IN = 250

/** Widget properties a device may set (protocol.md §5, the HTTP list). */
export const widgetProperties = new Set([
  "label", "color", "onLabel", "offLabel", "onColor", "offColor", "onBackColor", "offBackColor", "labels", "min", "max",
  "isOnPlay", "url", "urls", "step", "valueFormatting", "suffix", "maximumFractionDigits", "opacity", "scale", "rotation",
  "isDisabled", "isHidden"
])

/**
 * One device connection (DESIGN.md's DeviceSession): decodes its frames, meters them, keeps it
 * alive or times it out, logs it in by token and turns what it says into messages for its
 * account's user actor; encodes what the actor sends back. A plain object, not a fiber: an idle
 * device must cost only a few kilobytes. Any failure inside closes this connection only.
 */
export class HardwareSession {
  readonly #env: SessionEnv["Service"]
  readonly #decoder: FrameDecoder
  readonly #meter: FloodMeter
  readonly #watch: Watched
  readonly #session: string
  #transport: Transport | undefined
  readonly #delivery: Delivery<UserMessage>
  #state: "new" | "loggingIn" | "ready" | "closed" = "new"
  #queued: Array<Frame> = []
  #actor: UserActor | undefined
  #peer: DevicePeer | undefined
  #buffIn = DEFAULT_BUFF_IN
  /** Made on the first notification: most devices never send one. */
  #notifications: NotificationGate | undefined

  constructor(env: SessionEnv["Service"], attach: (events: TransportEvents) => Transport, options: { readonly idleFactor?: number } = {}) {
    this.#env = env
    this.#session = env.sessionId("hw")
    this.#decoder = hardwareDecoder({ maxBody: (env.settings.sizes ?? defaultSizeLimits).hardwareBody })
    this.#meter = new FloodMeter(env.settings.messageQuota, Date.now())
    const factor = options.idleFactor ?? 2.3
    this.#watch = {
      lastSeen: Date.now(),
      idleMs: Math.ceil(env.settings.hardwareIdleSeconds * factor) * 1000,
      onIdle: () => this.close("idle timeout")
    }
    this.#idleFactor = factor
    env.sweeper.add(this.#watch)
    this.#delivery = new Delivery(env, () => this.#transport)
    counters.hardware.open++
    this.#transport = attach({ data: (chunk) => this.#receive(chunk), closed: () => this.#closed() })
  }
  readonly #idleFactor: number

  /** The state, read through a call so that checks after a handler ran are not narrowed away. */
  #deliver(message: UserMessage) {
    this.#delivery.send(this.#actor!, message)
  }

  #now() {
    return this.#state
  }

  get remote() {
    return this.#transport?.remote ?? "unknown"
  }

  close(reason: string) {
    if (this.#state === "closed") return
    if (reason !== "") this.#env.log("info", `device ${this.remote}: closing (${reason})`)
    this.#transport?.close()
    this.#closed()
  }

  #closed() {
    if (this.#state === "closed") return
    this.#state = "closed"
    counters.hardware.open--
    this.#env.sweeper.remove(this.#watch)
    if (this.#actor && this.#peer) this.#deliver({ _tag: "DeviceLogout", peer: this.#peer })
  }

  #write(frame: Frame) {
    const bytes = encodeHardware(frame)
    if (bytes instanceof Error) return this.#env.log("warn", `device ${this.remote}: not sent: ${bytes.message}`)
    if (this.#transport?.write(bytes) === true) counters.hardware.sent++
    else counters.hardware.notSent++
  }

  #status(id: number, status: number) {
    this.#write(response(id, status))
  }

  #receive(chunk: Uint8Array) {
    if (this.#state === "closed") return
    this.#watch.lastSeen = Date.now()
    const { frames, error } = this.#decoder.push(chunk)
    counters.hardware.received += frames.length
    try {
      for (const frame of frames) {
        if (this.#now() === "closed") return
        if (this.#now() === "loggingIn") this.#queued.push(frame)
        else this.#handle(frame)
      }
    } catch (cause) {
      return this.close(`session failed: ${cause instanceof Error ? cause.stack ?? cause.message : String(cause)}`)
    }
    if (error) this.close(error.message)
  }

  #handle(frame: Frame) {
    const decision = this.#meter.onFrame(Date.now())
    if (decision !== "accept") {
      counters.hardware.overQuota++
      if (decision === "dropAndNotify") this.#status(frame.id, statusCode("quotaLimit"))
      return
    }
    if (frame._tag === "Response") return
    if (this.#state === "new") {
      if (frame.command === Command.HARDWARE_LOGIN || frame.command === Command.LOGIN) return this.#login(frame)
      return this.close("a frame before login")
    }
    switch (frame.command) {
      case Command.HARDWARE: return this.#hardware(frame)
      case Command.BRIDGE: return this.#bridge(frame)
      case Command.PING: return this.#status(frame.id, statusCode("ok"))
      case Command.HARDWARE_LOGIN:
      case Command.LOGIN:
        return this.#status(frame.id, statusCode("alreadyRegistered"))
      case Command.BLYNK_INTERNAL: return this.#internal(frame)
      case Command.HARDWARE_SYNC: return this.#sync(frame)
      case Command.SET_WIDGET_PROPERTY: return this.#property(frame)
      case Command.PUSH_NOTIFICATION:
      case Command.EMAIL:
      case Command.TWEET:
      case Command.SMS: {
        const request = (this.#notifications ??= new NotificationGate())
          .request(frame, this.#peer!, Date.now(), this.#env.settings.notifyIntervalSeconds)
        return request === undefined ? this.#status(frame.id, statusCode("quotaLimit")) : this.#deliver(request)
      }
      default:
        // protocol.md §1.1: a known-range code this handler does not serve is ignored.
        return
    }
  }

  #login(frame: Message) {
    const token = bodyText(frame.body).trim()
    const address = addressOf(this.remote)
    const metadata = { actor: "device", session: this.#session, remoteAddress: this.remote, time: new Date().toISOString() }
    const identity = `token ${token.slice(0, 4)}…`
    if (token.length !== 32 || token.includes("\0")) {
      this.#env.run(Effect.flatMap(Throttle, (t) => t.fail("hardware", address, identity, metadata)), () => {})
      return this.#status(frame.id, statusCode("invalidToken"))
    }
    this.#state = "loggingIn"
    this.#env.run(
      Effect.gen(function*() {
        const throttle = yield* Throttle
        // Repeated invalid tokens from one address: refused without a lookup while blocked.
        if (yield* throttle.blocked("hardware", address)) return undefined
        const owner = yield* findByToken(token)
        if (Option.isNone(owner)) {
          yield* throttle.fail("hardware", address, identity, metadata)
          return undefined
        }
        const directory = yield* Directory
        const actor = yield* directory.actor(owner.value.accountStream)
        return { actor, owner: owner.value }
      }),
      (exit) => {
        if (this.#state === "closed") return
        if (Exit.isFailure(exit)) {
          this.#env.log("warn", `device ${this.remote}: login failed: ${exit.cause}`)
          this.#status(frame.id, statusCode("serverError"))
          return this.#ready("new")
        }
        const found = exit.value
        if (found === undefined) {
          this.#status(frame.id, statusCode("invalidToken"))
          return this.#ready("new")
        }
        this.#attach(found.actor, found.owner.dashId, found.owner.deviceId, frame.id)
      }
    )
  }

  #attach(actor: UserActor, dashId: number, deviceId: number, id: number) {
    const peer: DevicePeer = {
      dashId,
      deviceId,
      remote: this.remote,
      session: this.#session,
      send: (notice) => this.#guarded(notice)
    }
    this.#env.run(
      Effect.flatMap(Deferred.make<boolean>(), (reply) =>
        Effect.andThen(
          actor.ref.tell({ _tag: "DeviceLogin", peer, id, reply }),
          Deferred.await(reply)
        )),
      (exit) => {
        if (this.#state === "closed") {
          if (Exit.isSuccess(exit) && exit.value) this.#delivery.send(actor, { _tag: "DeviceLogout", peer })
          return
        }
        if (Exit.isFailure(exit) || !exit.value) {
          this.#status(id, statusCode(Exit.isFailure(exit) ? "serverError" : "invalidToken"))
          return this.#ready("new")
        }
        this.#actor = actor
        this.#peer = peer
        this.#ready("ready")
      }
    )
  }

  /** Leaves the login state and handles what arrived meanwhile. */
  #ready(state: "new" | "ready") {
    this.#state = state
    const queued = this.#queued
    this.#queued = []
    try {
      for (const frame of queued) {
        if (this.#now() === "closed") return
        if (this.#now() === "loggingIn") this.#queued.push(frame)
        else this.#handle(frame)
      }
    } catch (cause) {
      this.close(`session failed: ${String(cause)}`)
    }
  }

  /** Called by the user actor: whatever goes wrong here closes this connection, never the actor. */
  #guarded(notice: DeviceNotice) {
    try {
      this.#notice(notice)
    } catch (cause) {
      this.close(`session failed: ${cause instanceof Error ? cause.stack ?? cause.message : String(cause)}`)
    }
  }

  #notice(notice: DeviceNotice) {
    if (this.#state === "closed") return
    switch (notice._tag) {
      case "Write":
        return this.#send(message(Command.HARDWARE, notice.id, notice.body))
      case "Bridge":
        return this.#send(message(Command.BRIDGE, notice.id, notice.body))
      case "PinModes":
        return this.#send(fromFields(Command.HARDWARE, 1, ["pm", ...notice.modes]))
      case "Status":
        return this.#status(notice.id, statusCode(notice.status))
      case "AppPresence":
        return this.#send(fromFields(Command.BLYNK_INTERNAL, 7777, [notice.connected ? "acon" : "adis"]))
      case "Rtc":
        return this.#send(fromFields(Command.BLYNK_INTERNAL, notice.id, ["rtc", String(wallClockSeconds(Date.now(), notice.timeZone))]))
      case "Close":
        return this.close(notice.reason)
    }
  }

  /** The size filter (protocol.md §1.1): what the device could not read is not sent to it. */
  #send(message: Message) {
    const fits = this.#buffIn === DEFAULT_BUFF_IN
      ? message.body.length <= DEFAULT_BUFF_IN
      : message.body.length + 5 <= this.#buffIn
    if (fits) this.#write(message)
  }

  #hardware(frame: Message) {
    const parsed = parseHardware(bodyText(frame.body))
    if (parsed instanceof IllegalCommand) return this.#status(frame.id, statusCode("illegalCommand"))
    // From a device only writes do anything (protocol.md §2.2).
    if (parsed._tag !== "Write") return
    this.#deliver({
      _tag: "DeviceWrite",
      peer: this.#peer!,
      id: frame.id,
      write: [parsed.pinType, parsed.pin, ...(parsed.values as [string, ...Array<string>])],
      body: frame.body
    })
  }

  /**
   * BRIDGE (protocol.md §2.4): `pin i token` ties a bridge pin to another device of the account;
   * `pin op pin value…` sends the rest to it. Fewer than 3 fields, or a bad pin in a write → 2.
   */
  #bridge(frame: Message) {
    const fields = bodyFields(frame.body)
    if (fields.length < 3) return this.#status(frame.id, statusCode("illegalCommand"))
    const [pin, op] = fields as [string, string, ...Array<string>]
    if (op === "i") {
      const token = fields[2]!.trim()
      if (token.length !== 32) return this.#status(frame.id, statusCode("notAllowed"))
      return this.#deliver({ _tag: "BridgeInit", peer: this.#peer!, id: frame.id, pin, token })
    }
    const body = frame.body.subarray(frame.body.indexOf(0) + 1)
    const parsed = parseHardware(bodyText(body))
    if (parsed instanceof IllegalCommand) return this.#status(frame.id, statusCode("illegalCommand"))
    const write = parsed._tag === "Write" ? [parsed.pinType, parsed.pin, ...(parsed.values as [string, ...Array<string>])] as const : undefined
    this.#deliver({ _tag: "BridgeWrite", peer: this.#peer!, id: frame.id, pin, write, body })
  }

  #internal(frame: Message) {
    const internal = parseInternal(bodyText(frame.body))
    switch (internal._tag) {
      case "HardwareInfo": {
        if (internal.buffIn !== undefined) this.#buffIn = internal.buffIn <= 0 ? DEFAULT_BUFF_IN : internal.buffIn
        if (internal.heartbeat !== undefined && internal.heartbeat > 0 && this.#watch.idleMs > 0) {
          this.#watch.idleMs = Math.ceil(internal.heartbeat * this.#idleFactor) * 1000
        }
        return this.#status(frame.id, statusCode("ok"))
      }
      case "Rtc":
        return this.#deliver({ _tag: "DeviceRtc", peer: this.#peer!, id: frame.id })
      case "Other":
        return
    }
  }

  #sync(frame: Message) {
    const fields = bodyFields(frame.body)
    if (fields.length === 0) {
      return this.#deliver({ _tag: "DeviceSync", peer: this.#peer!, id: frame.id, pins: undefined })
    }
    const op = fields[0]!.toLowerCase()
    const pinType = op.charAt(0)
    if (op.length !== 2 || op.charAt(1) !== "r" || (pinType !== "v" && pinType !== "d" && pinType !== "a")) {
      return this.#status(frame.id, statusCode("illegalCommand"))
    }
    const pins = fields.slice(1).map(Number)
    if (pins.length === 0 || !pins.every((p) => Number.isInteger(p) && p >= 0 && p <= 255)) {
      return this.#status(frame.id, statusCode("illegalCommand"))
    }
    this.#deliver({ _tag: "DeviceSync", peer: this.#peer!, id: frame.id, pins: pins.map((pin) => ({ pinType, pin })) })
  }

  #property(frame: Message) {
    const [pinText, property, ...values] = bodyFields(frame.body)
    const pin = Number(pinText)
    if (!Number.isInteger(pin) || pin < 0 || pin > 255 || property === undefined || values.length === 0) {
      return this.#status(frame.id, statusCode("illegalCommand"))
    }
    if (!widgetProperties.has(property)) return this.#status(frame.id, statusCode("illegalCommandBody"))
    this.#deliver({ _tag: "DeviceProperty", peer: this.#peer!, id: frame.id, pin, property, value: values.join("\0") })
    this.#status(frame.id, statusCode("ok"))
  }
}

/**
 * The RTC widget's answer (protocol.md §2.3): the wall clock of its time zone written as epoch
 * seconds (UTC when the zone is unset or unknown).
 */
export const wallClockSeconds = (nowMs: number, timeZone: string | undefined): number => {
  const utc = Math.floor(nowMs / 1000)
  if (timeZone === undefined) return utc
  try {
    const p = zonedParts(utc * 1000, timeZone)
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) / 1000
  } catch {
    return utc
  }
}


