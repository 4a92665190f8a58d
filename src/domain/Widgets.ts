/**
 * Widgets are kept as the app's JSON (protocol.md §4.1: 55 types, unknown fields kept); this file
 * reads what the server needs from them: id, type, and the pins they are bound to.
 */
export type Json = string | number | boolean | null | ReadonlyArray<Json> | { readonly [key: string]: Json }
export type JsonObject = { readonly [key: string]: Json }
export type Widget = JsonObject

export type PinType = "v" | "d" | "a"

export interface PinBinding {
  readonly deviceId: number
  readonly pinType: PinType
  readonly pin: number
}

export const isJsonObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

export const widgetId = (w: Widget): number => (typeof w["id"] === "number" ? w["id"] : Number.NaN)
export const widgetType = (w: Widget): string | undefined => (typeof w["type"] === "string" ? w["type"] : undefined)

const pinTypes: Record<string, PinType> = { VIRTUAL: "v", DIGITAL: "d", ANALOG: "a" }

const bindingOf = (o: JsonObject, fallbackDevice: number): PinBinding | undefined => {
  const pinType = typeof o["pinType"] === "string" ? pinTypes[o["pinType"]] : undefined
  const pin = o["pin"]
  if (pinType === undefined || typeof pin !== "number" || !Number.isInteger(pin) || pin < 0 || pin > 255) return undefined
  const deviceId = typeof o["deviceId"] === "number" ? o["deviceId"] : fallbackDevice
  return { deviceId, pinType, pin }
}

/** The pins a widget is bound to: its own `pin`, and those of its `dataStreams` (multi-pin widgets). */
export const widgetPins = (w: Widget): ReadonlyArray<PinBinding> => {
  const fallback = typeof w["deviceId"] === "number" ? w["deviceId"] : 0
  const own = bindingOf(w, fallback)
  const streams = Array.isArray(w["dataStreams"]) ? w["dataStreams"] : []
  const more = streams.flatMap((s) => {
    const b = isJsonObject(s) ? bindingOf(s, fallback) : undefined
    return b ? [b] : []
  })
  return own ? [own, ...more] : more
}

/** Whether a widget is bound to this pin of this device. */
export const boundTo = (w: Widget, deviceId: number, pinType: string, pin: number): boolean =>
  widgetPins(w).some((b) => b.deviceId === deviceId && b.pinType === pinType && b.pin === pin)

/** Widgets that show a value (the device's pin is an input to them, so the pin is an output... of the device). */
const displays = new Set([
  "LED",
  "GAUGE",
  "LCD",
  "LABELED_VALUE_DISPLAY",
  "DIGIT4_DISPLAY",
  "LEVEL_DISPLAY",
  "VERTICAL_LEVEL_DISPLAY",
  "ENHANCED_GRAPH",
  "TERMINAL",
  "VIDEO",
  "TABLE",
  "MAP",
  "REPORT",
  "TEXT"
])

/**
 * `pm` pairs for a device (protocol.md §2.2): one `pin, mode` per widget bound to a digital or
 * analog pin of that device; controls make the pin an output, displays an input.
 */
export const pinModes = (widgets: ReadonlyArray<Widget>, deviceId: number): ReadonlyArray<string> =>
  widgets.flatMap((w) => {
    const type = widgetType(w)
    return widgetPins(w)
      .filter((b) => b.deviceId === deviceId && b.pinType !== "v")
      .flatMap((b) => [String(b.pin), type !== undefined && displays.has(type) ? "in" : "out"])
  })
