import { Schema } from "effect"

/**
 * What a device does: the `device-<id>` streams (DESIGN.md). Pin writes from the device, from
 * apps (and later HTTP), widget properties, connects and disconnects.
 */

export const PinTypeSchema = Schema.Literals(["v", "d", "a"])
export type PinType = typeof PinTypeSchema.Type

/** One write: `[pinType, pin, value, value...]` keeps long batches small in the log. */
export const PinWrite = Schema.TupleWithRest(Schema.Tuple([PinTypeSchema, Schema.Int, Schema.String]), [Schema.String])
export type PinWrite = typeof PinWrite.Type

export const Source = Schema.Literals(["hardware", "app", "http"])
export type Source = typeof Source.Type

/**
 * Writes, in order, that arrived while the previous append of the stream was in flight: at low
 * load one write per event, under load many, so the log keeps up with the sockets.
 */
export class PinsWritten extends Schema.TaggedClass<PinsWritten>()("PinsWritten", {
  dashId: Schema.Int,
  deviceId: Schema.Int,
  source: Source,
  writes: Schema.Array(PinWrite),
  /**
   * Each write's own time in epoch ms, parallel to `writes`, when the writer gave one (HTTP
   * `extra/pin`); otherwise the event's time is the writes' time. The last write of a pin is
   * still its current value.
   */
  timestamps: Schema.optional(Schema.Array(Schema.Number))
}) {}
export class PropertySet extends Schema.TaggedClass<PropertySet>()("PropertySet", {
  dashId: Schema.Int,
  deviceId: Schema.Int,
  pin: Schema.Int,
  property: Schema.String,
  value: Schema.String,
  /**
   * The items after the first of a list property (`labels`, `urls`: `setProperty(V1, "labels",
   * "a", "b")`, or `labels=a&labels=b` over HTTP). Kept apart, not NUL-joined in `value`:
   * PostgreSQL's JSON cannot hold a NUL.
   */
  more: Schema.optional(Schema.Array(Schema.String))
}) {}
export class DeviceConnected extends Schema.TaggedClass<DeviceConnected>()("DeviceConnected", {
  dashId: Schema.Int,
  deviceId: Schema.Int,
  remote: Schema.String
}) {}
export class DeviceDisconnected extends Schema.TaggedClass<DeviceDisconnected>()("DeviceDisconnected", {
  dashId: Schema.Int,
  deviceId: Schema.Int,
  remote: Schema.String
}) {}

/**
 * An event the device reported (Blynk IoT `logEvent`, spec §2.2 #11): a code and an optional
 * description. Pinledger has no event templates, so the code is whatever the caller named.
 */
export class EventLogged extends Schema.TaggedClass<EventLogged>()("EventLogged", {
  dashId: Schema.Int,
  deviceId: Schema.Int,
  code: Schema.String,
  description: Schema.optional(Schema.String)
}) {}

export const DeviceEvent = Schema.Union([PinsWritten, PropertySet, DeviceConnected, DeviceDisconnected, EventLogged])
export type DeviceEvent = typeof DeviceEvent.Type

/** The key of a pin's value within an account, in the text form of the legacy `pinsStorage`: `1-0-v10`. */
export const pinKey = (dashId: number, deviceId: number, pinType: PinType, pin: number) => `${dashId}-${deviceId}-${pinType}${pin}`
/** A pin of a device as one integer (its number and type), a cheap map key or array index where a key string is too dear. */
export const pinCode = (pinType: PinType, pin: number) => pin * 4 + (pinType === "v" ? 0 : pinType === "d" ? 1 : 2)
/** A property's key: `1-0-v10-label`. */
export const propertyKey = (dashId: number, deviceId: number, pin: number, property: string) =>
  `${dashId}-${deviceId}-v${pin}-${property}`

export const parsePinKey = (key: string) => {
  const m = /^(\d+)-(\d+)-([vda])(\d+)$/.exec(key)
  return m ? { dashId: Number(m[1]), deviceId: Number(m[2]), pinType: m[3] as PinType, pin: Number(m[4]) } : undefined
}
export const parsePropertyKey = (key: string) => {
  const m = /^(\d+)-(\d+)-v(\d+)-(.+)$/.exec(key)
  return m ? { dashId: Number(m[1]), deviceId: Number(m[2]), pin: Number(m[3]), property: m[4]! } : undefined
}

/** A property's items: `value`, then `more`. */
export const propertyValues = (event: { readonly value: string; readonly more?: ReadonlyArray<string> | undefined }): ReadonlyArray<string> =>
  event.more === undefined || event.more.length === 0 ? [event.value] : [event.value, ...event.more]

/** Pin values and widget properties of an account: key → values. */
export type PinValues = Map<string, ReadonlyArray<string>>

export const applyDeviceEvent = (pins: PinValues, event: DeviceEvent) => {
  switch (event._tag) {
    case "PinsWritten":
      for (const [t, pin, ...values] of event.writes) pins.set(pinKey(event.dashId, event.deviceId, t, pin), values)
      return
    case "PropertySet":
      pins.set(propertyKey(event.dashId, event.deviceId, event.pin, event.property), propertyValues(event))
      return
    default:
      return
  }
}
