import { Deferred, Exit } from "effect"
import { type AccountState, findDashboard, findDevice } from "../domain/Account.ts"
import { type PinType, type PinValues, pinKey, PropertySet, propertyKey } from "../domain/Pins.ts"
import { deviceStream } from "../domain/Streams.ts"
import { widgetPins } from "../domain/Widgets.ts"
import type { DeviceLog, Entry, Writer } from "./DeviceLog.ts"
import type { AppNotice, DevicePeer } from "./Peer.ts"

/** The message id of what the HTTP API sends to devices and apps (protocol.md §5). */
export const HTTP_MESSAGE_ID = 111

/** One write's values, and its own time when the caller gave one (`extra/pin`). */
export interface TimedValues {
  readonly values: readonly [string, ...Array<string>]
  readonly timestamp?: number
}

/**
 * One pin's part of an HTTP write. `writes[0]` becomes the pin's value and is what the device and
 * the apps are sent; the others (`extra/pin`) are only recorded, with their times.
 */
export interface PinWrites {
  readonly pinType: PinType
  readonly pin: number
  readonly writes: readonly [TimedValues, ...Array<TimedValues>]
}

/**
 * A write through the HTTP API: one pin, or several pins of a device at once (the owner API),
 * appended together in one commit and answered once that is committed.
 */
export interface HttpWrite {
  readonly _tag: "HttpWrite"
  readonly dashId: number
  readonly deviceId: number
  readonly pins: readonly [PinWrites, ...Array<PinWrites>]
  readonly by: Writer
  /** The metadata's actor (the owner API's `api:<email>`); `http` by default. */
  readonly actor?: string
  /** Completed once the write is committed, or at once when it cannot be made. */
  readonly reply: Deferred.Deferred<HttpWriteOutcome>
}

/** A widget property set through the HTTP API (`GET /{token}/update/{pin}?label=…`). */
export interface HttpProperty {
  readonly _tag: "HttpProperty"
  readonly dashId: number
  readonly deviceId: number
  readonly pinType: PinType
  readonly pin: number
  readonly property: string
  readonly value: string
  readonly by: Writer
  readonly reply: Deferred.Deferred<HttpWriteOutcome>
}

export type HttpMessage = HttpWrite | HttpProperty

/**
 * `committed`; or why nothing was written: the device is gone (its token no longer opens it), the
 * project is not active, no widget is on the pin, or the property's value does not fit it.
 */
export type HttpWriteOutcome = "committed" | "noDevice" | "notActive" | "noWidget" | "badValue"

/** What of the user actor the HTTP messages use: the account's device log and live connections. */
export interface HttpWriteContext {
  readonly accountStream: string
  readonly deviceLog: DeviceLog
  readonly socketsOf: (dashId: number, deviceId: number) => ReadonlySet<DevicePeer> | undefined
  readonly toApps: (notice: AppNotice, dashId: number | undefined) => void
}

const encoder = new TextEncoder()
const ignore = () => {}

const settle = (reply: Deferred.Deferred<HttpWriteOutcome>, outcome: HttpWriteOutcome) => {
  Deferred.doneUnsafe(reply, Exit.succeed(outcome))
}

/**
 * Handles an HTTP message inside the user actor (no effect: it runs on the actor's fast path).
 * A write is stored, sent to the device's connections with id 111 and to the apps as
 * `dashId-deviceId …` while the project is active, as a device's own write is; it is appended
 * with the caller's metadata and the reply completes only after the commit.
 */
export const handle = (account: AccountState, pins: PinValues, message: HttpMessage, context: HttpWriteContext): void => {
  const dash = findDashboard(account, message.dashId)
  if (dash === undefined || findDevice(dash, message.deviceId) === undefined) return settle(message.reply, "noDevice")
  const { dashId, deviceId, by } = message
  const stream = deviceStream(context.accountStream, dashId, deviceId)
  const at = Date.now()
  const committed = () => settle(message.reply, "committed")
  if (message._tag === "HttpProperty") {
    const { pinType, pin } = message
    if (!dash.isActive) return settle(message.reply, "notActive")
    const bound = dash.widgets.some((w) => widgetPins(w).some((b) => b.deviceId === deviceId && b.pinType === pinType && b.pin === pin))
    // A property is kept per virtual pin (as SET_WIDGET_PROPERTY from a device is).
    if (!bound || pinType !== "v") return settle(message.reply, "noWidget")
    if (!propertyValueFits(message.property, message.value)) return settle(message.reply, "badValue")
    const { property, value } = message
    pins.set(propertyKey(dashId, deviceId, pin, property), [value])
    context.deviceLog.push(stream, {
      _tag: "Event",
      event: new PropertySet({ dashId, deviceId, pin, property, value }),
      by,
      at,
      actor: "http",
      committed
    })
    context.toApps({ _tag: "Property", id: HTTP_MESSAGE_ID, dashId, deviceId, pin, property, value }, dashId)
    return
  }
  const entries: Array<Entry> = message.pins.flatMap(({ pinType, pin, writes: [current, ...older] }) =>
    // The current value goes last, so that it is the pin's last write in the log as in the actor.
    [...older, current].map((item): Entry => ({
      _tag: "Write",
      dashId,
      deviceId,
      source: "http",
      write: [pinType, pin, ...item.values],
      by,
      at,
      ...(item.timestamp === undefined ? {} : { timestamp: item.timestamp }),
      ...(message.actor === undefined ? {} : { actor: message.actor }),
      // Every entry is awaited, so they are appended together, and the last one's commit is theirs.
      committed: ignore
    }))
  )
  entries[entries.length - 1] = { ...entries[entries.length - 1]!, committed }
  context.deviceLog.pushAll(stream, entries)
  for (const { pinType, pin, writes: [current] } of message.pins) {
    pins.set(pinKey(dashId, deviceId, pinType, pin), current.values)
    const body = encoder.encode([`${pinType}w`, String(pin), ...current.values].join("\0"))
    for (const socket of context.socketsOf(dashId, deviceId) ?? []) socket.send({ _tag: "Write", id: HTTP_MESSAGE_ID, body })
    if (dash.isActive) context.toApps({ _tag: "DeviceWrite", id: HTTP_MESSAGE_ID, dashId, deviceId, body }, dashId)
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
