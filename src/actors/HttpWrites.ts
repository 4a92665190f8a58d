import { Deferred, Exit } from "effect"
import { type AccountState, findDashboard, findDevice } from "../domain/Account.ts"
import { dayOf, decideLogEvent, type DeviceEventsToday, type EventLimits, type LogEventDecision } from "../domain/LoggedEvents.ts"
import { type PinType, type PinValues, pinKey, PropertySet, propertyKey } from "../domain/Pins.ts"
import { deviceStream } from "../domain/Streams.ts"
import { boundTo } from "../domain/Widgets.ts"
import type { DeviceLog, Writer } from "./DeviceLog.ts"
import type { AppNotice, DevicePeer } from "./Peer.ts"

/** The message id of what the HTTP API sends to devices and apps (protocol.md §5). */
export const HTTP_MESSAGE_ID = 111

/** One pin's values in an HTTP write, with their own time when the caller gave one (`extra/pin`, a timestamped batch). */
export interface PinValuesWrite {
  readonly pinType: PinType
  readonly pin: number
  readonly values: readonly [string, ...Array<string>]
  readonly timestamp?: number
}

/**
 * Pin writes through the HTTP API, made as one append (one commit, all or nothing). In log order:
 * each pin's last write becomes its value and is what the device and the apps are sent; earlier
 * ones of the same pin (`extra/pin`, a timestamped batch) are only recorded, with their times.
 */
export interface HttpWrite {
  readonly _tag: "HttpWrite"
  readonly dashId: number
  readonly deviceId: number
  readonly writes: readonly [PinValuesWrite, ...Array<PinValuesWrite>]
  readonly by: Writer
  /** The metadata's actor (the owner API's `api:<email>`); `http` by default. */
  readonly actor?: string
  /** Completed once the writes are committed, or at once when they cannot be made. */
  readonly reply: Deferred.Deferred<HttpWriteOutcome>
}

/** One widget property and its items (several for a list property: `labels`, `urls`, an indexed `url`). */
export interface PropertyValues {
  readonly property: string
  readonly values: readonly [string, ...Array<string>]
}

/** Widget properties of a virtual pin set through the HTTP API, in one append. */
export interface HttpProperty {
  readonly _tag: "HttpProperty"
  readonly dashId: number
  readonly deviceId: number
  readonly pinType: PinType
  readonly pin: number
  readonly properties: readonly [PropertyValues, ...Array<PropertyValues>]
  /**
   * The legacy API's rule (`GET /{token}/update/{pin}?label=…`): only while the project is active
   * and with a widget on the pin. The Blynk IoT API sets the property regardless (the apps hear of
   * it while the project is active).
   */
  readonly needsWidget: boolean
  readonly by: Writer
  readonly reply: Deferred.Deferred<HttpWriteOutcome>
}

/** An event the device reports through the Blynk IoT API (`logEvent`), replied to once committed. */
export interface HttpLogEvent {
  readonly _tag: "HttpLogEvent"
  readonly dashId: number
  readonly deviceId: number
  readonly code: string
  readonly description: string | undefined
  readonly by: Writer
  readonly reply: Deferred.Deferred<HttpEventOutcome>
}

export type HttpMessage = HttpWrite | HttpProperty | HttpLogEvent

/** The answer's text for `notStored`, in every HTTP API. */
export const NOT_STORED = "The server could not store this (its log says why)."

/**
 * `committed`; or why nothing was written: the device is gone (its token no longer opens it), the
 * project is not active, no widget is on the pin, or the property's value does not fit it; or
 * `notStored`: the store refused it for good (DeviceLog dropped it and logged why), a server fault.
 */
export type HttpWriteOutcome = "committed" | "noDevice" | "notActive" | "noWidget" | "badValue" | "notStored"

/** `committed`, or why the event was refused (LoggedEvents.ts), or the device is gone, or `notStored` (above). */
export type HttpEventOutcome = "committed" | "noDevice" | "notStored" | Exclude<LogEventDecision["_tag"], "Accepted">

/** What of the user actor the HTTP messages use: the account's device log and live connections. */
export interface HttpWriteContext {
  readonly accountStream: string
  readonly deviceLog: DeviceLog
  readonly socketsOf: (dashId: number, deviceId: number) => ReadonlySet<DevicePeer> | undefined
  readonly toApps: (notice: AppNotice, dashId: number | undefined) => void
  readonly eventLimits: EventLimits
  /** Per device stream, what the event limits remember; a device missing here has its day's count read from the log first. */
  readonly eventsToday: Map<string, DeviceEventsToday>
}

const encoder = new TextEncoder()
const ignore = () => {}

const settle = <A>(reply: Deferred.Deferred<A>, outcome: A) => {
  Deferred.doneUnsafe(reply, Exit.succeed(outcome))
}

/** Whether the actor must read a device's count of today's events from the log before `handle` can decide this message. */
export const needsEventCount = (message: HttpMessage, context: HttpWriteContext): boolean =>
  message._tag === "HttpLogEvent" && context.eventLimits.perDay > 0 &&
  !context.eventsToday.has(deviceStream(context.accountStream, message.dashId, message.deviceId))

/**
 * Handles an HTTP message inside the user actor (no effect: it runs on the actor's fast path; a
 * `logEvent` for a device whose count is not known yet waits for `needsEventCount`'s read).
 * Writes are stored, sent to the device's connections with id 111 and to the apps as
 * `dashId-deviceId …` while the project is active, as a device's own writes are; they are
 * appended with the caller's metadata and the reply completes only after the commit.
 */
export const handle = (account: AccountState, pins: PinValues, message: HttpMessage, context: HttpWriteContext): void => {
  const dash = findDashboard(account, message.dashId)
  if (dash === undefined || findDevice(dash, message.deviceId) === undefined) {
    // Narrowed apart: the two replies take different outcome types.
    return message._tag === "HttpLogEvent" ? settle(message.reply, "noDevice") : settle(message.reply, "noDevice")
  }
  const { dashId, deviceId, by } = message
  const stream = deviceStream(context.accountStream, dashId, deviceId)
  const at = Date.now()
  switch (message._tag) {
    case "HttpLogEvent": {
      const today = context.eventsToday.get(stream) ?? { day: dayOf(at), count: 0, lastByCode: new Map() }
      const decided = decideLogEvent(context.eventLimits, today, { dashId, deviceId, code: message.code, description: message.description, now: at })
      if (decided._tag !== "Accepted") return settle(message.reply, decided._tag)
      context.eventsToday.set(stream, decided.next)
      context.deviceLog.push(stream, {
        _tag: "Event",
        event: decided.event,
        by,
        at,
        actor: "http",
        committed: () => settle(message.reply, "committed"),
        refused: () => settle(message.reply, "notStored")
      })
      return
    }
    case "HttpProperty": {
      const { pinType, pin } = message
      if (message.needsWidget) {
        if (!dash.isActive) return settle(message.reply, "notActive")
        const bound = dash.widgets.some((w) => boundTo(w, deviceId, pinType, pin))
        if (!bound) return settle(message.reply, "noWidget")
      }
      // A property is kept per virtual pin (as SET_WIDGET_PROPERTY from a device is).
      if (pinType !== "v") return settle(message.reply, "noWidget")
      if (!message.properties.every((p) => p.values.every((v) => propertyValueFits(p.property, v)))) return settle(message.reply, "badValue")
      const last = message.properties.length - 1
      context.deviceLog.pushAll(stream, message.properties.map(({ property, values: [value, ...more] }, i) => ({
        _tag: "Event",
        event: new PropertySet({ dashId, deviceId, pin, property, value, ...(more.length > 0 ? { more } : {}) }),
        by,
        at,
        actor: "http",
        committed: i === last ? () => settle(message.reply, "committed") : ignore,
        refused: () => settle(message.reply, "notStored")
      })))
      for (const { property, values } of message.properties) {
        pins.set(propertyKey(dashId, deviceId, pin, property), values)
        if (dash.isActive) {
          context.toApps({ _tag: "Property", id: HTTP_MESSAGE_ID, dashId, deviceId, pin, property, value: values.join("\0") }, dashId)
        }
      }
      return
    }
    case "HttpWrite": {
      const { writes } = message
      const last = writes.length - 1
      context.deviceLog.pushAll(stream, writes.map((item, i) => ({
        _tag: "Write",
        dashId,
        deviceId,
        source: "http",
        write: [item.pinType, item.pin, ...item.values],
        by,
        at,
        ...(item.timestamp === undefined ? {} : { timestamp: item.timestamp }),
        ...(message.actor === undefined ? {} : { actor: message.actor }),
        committed: i === last ? () => settle(message.reply, "committed") : ignore,
        refused: () => settle(message.reply, "notStored")
      })))
      // Each pin's last write is its value now, and what the device and the apps hear.
      const current = new Map<string, PinValuesWrite>()
      for (const item of writes) {
        const key = pinKey(dashId, deviceId, item.pinType, item.pin)
        current.delete(key)
        current.set(key, item)
      }
      const sockets = context.socketsOf(dashId, deviceId) ?? []
      for (const [key, item] of current) {
        pins.set(key, item.values)
        const body = encoder.encode([`${item.pinType}w`, String(item.pin), ...item.values].join("\0"))
        for (const socket of sockets) socket.send({ _tag: "Write", id: HTTP_MESSAGE_ID, body })
        if (dash.isActive) context.toApps({ _tag: "DeviceWrite", id: HTTP_MESSAGE_ID, dashId, deviceId, body }, dashId)
      }
      return
    }
  }
}

const numeric = new Set(["min", "max", "step", "maximumFractionDigits", "opacity", "scale", "rotation"])
const colors = new Set(["color", "onColor", "offColor", "onBackColor", "offBackColor"])

/**
 * Whether a property's value can be set (the legacy "Error setting widget property."): numbers
 * for the numeric ones, `true`/`false` for `isOnPlay`, `#RRGGBB`, `#AARRGGBB` or an integer for colours.
 */
export const propertyValueFits = (property: string, value: string): boolean => {
  if (numeric.has(property)) return value.trim() !== "" && Number.isFinite(Number(value))
  if (property === "isOnPlay") return value === "true" || value === "false"
  if (colors.has(property)) return /^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$/.test(value) || /^-?\d+$/.test(value)
  return true
}
