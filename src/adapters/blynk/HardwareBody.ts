import { Schema } from "effect"
import { Status } from "./Command.ts"

/**
 * Body grammars of HARDWARE (20) and BLYNK_INTERNAL (17), protocol.md §2.2, §2.3, §2.5.
 * Parsers take the body already decoded to text (Frame.bodyText), so malformed UTF-8 has become
 * U+FFFD and lengths are counted in UTF-16 units, as the legacy server counts them.
 */

/** Answered with ILLEGAL_COMMAND (2) and the request's id. */
export class IllegalCommand extends Schema.TaggedError<IllegalCommand>()("IllegalCommand", {
  reason: Schema.String
}) {
  get status(): typeof Status.ILLEGAL_COMMAND {
    return Status.ILLEGAL_COMMAND
  }
  override get message() {
    return `illegal command: ${this.reason}`
  }
}

export type PinType = "v" | "d" | "a"
export type PinMode = "in" | "out" | "pu" | "pd"

export interface Write {
  readonly _tag: "Write"
  readonly pinType: PinType
  readonly pin: number
  /** At least one; `vw 1 a b c` keeps all three. Single values may be empty, not all of them. */
  readonly values: ReadonlyArray<string>
}
export interface Read {
  readonly _tag: "Read"
  readonly pinType: PinType
  readonly pin: number
}
export interface PinModes {
  readonly _tag: "PinMode"
  readonly pairs: ReadonlyArray<readonly [pin: number, mode: PinMode]>
}
export interface DeviceSelector {
  readonly _tag: "DeviceSelector"
  readonly selectorId: number
  readonly deviceId: number
}
/** An op this server does not act on (e.g. `vm` sync lists, a malformed read): to be ignored. */
export interface OtherOp {
  readonly _tag: "Other"
  readonly op: string
}

export type HardwareBody = Write | Read | PinModes | DeviceSelector | OtherOp

const illegal = (reason: string) => new IllegalCommand({ reason })

const pinTypeOf = (char: string | undefined): PinType | undefined => {
  const lower = char?.toLowerCase()
  return lower === "v" || lower === "d" || lower === "a" ? lower : undefined
}

const parsePin = (field: string | undefined): number | IllegalCommand => {
  if (field === undefined || !/^[0-9]{1,3}$/.test(field)) return illegal(`pin ${JSON.stringify(field)} is not 0-255`)
  const pin = Number(field)
  return pin <= 255 ? pin : illegal(`pin ${field} is not 0-255`)
}

const INT_MAX = 2147483647
// Ids are Java ints on the legacy server: decimal, non-negative, no sign, at most 2^31-1.
const parseId = (field: string | undefined, what: string): number | IllegalCommand => {
  if (field === undefined || !/^[0-9]{1,10}$/.test(field)) return illegal(`${what} ${JSON.stringify(field)} is not a number`)
  const id = Number(field)
  return id <= INT_MAX ? id : illegal(`${what} ${field} is too large`)
}

const MODES: ReadonlySet<string> = new Set(["in", "out", "pu", "pd"])

/**
 * The HARDWARE grammar without any prefix: what a device sends, or an app body after its target.
 * IllegalCommand only where the legacy server answers 2: a body under 4 chars, a malformed write
 * (`?w`) or device selector (`vu`). Reads and pin modes are never acted on when received, so a
 * malformed one is Other (ignored), not an error, as on the legacy server.
 */
export const parseHardware = (body: string): HardwareBody | IllegalCommand => {
  // "ar 1" is the shortest meaningful body.
  if (body.length < 4) return illegal(`body ${JSON.stringify(body)} is too short`)
  const fields = body.split("\0")
  const op = fields[0]!
  if (op === "pm") return parsePinModes(fields)
  if (op === "vu") {
    const selectorId = parseId(fields[1], "selector id")
    if (typeof selectorId !== "number") return selectorId
    const deviceId = parseId(fields[2], "device id")
    if (typeof deviceId !== "number") return deviceId
    return fields.length === 3 ? { _tag: "DeviceSelector", selectorId, deviceId } : illegal("vu takes 2 fields")
  }
  const pinType = pinTypeOf(op[0])
  if (op.length === 2 && op[1] === "r") {
    const pin = parsePin(fields[1])
    return pinType !== undefined && typeof pin === "number" ? { _tag: "Read", pinType, pin } : { _tag: "Other", op }
  }
  if (op.length !== 2 || op[1] !== "w") return { _tag: "Other", op }
  if (pinType === undefined) return illegal(`pin type ${JSON.stringify(op[0])} is not v, d or a`)
  if (fields.length < 3) return illegal("write without a value")
  const pin = parsePin(fields[1])
  if (typeof pin !== "number") return pin
  const values = fields.slice(2)
  // As the legacy server: the value part as a whole must be non-empty.
  if (values.length === 1 && values[0] === "") return illegal("write with an empty value")
  return { _tag: "Write", pinType, pin, values }
}

const parsePinModes = (fields: ReadonlyArray<string>): PinModes | OtherOp => {
  const other: OtherOp = { _tag: "Other", op: "pm" }
  if (fields.length < 3 || fields.length % 2 === 0) return other
  const pairs: Array<readonly [number, PinMode]> = []
  for (let i = 1; i < fields.length; i += 2) {
    const pin = parsePin(fields[i])
    const mode = fields[i + 1]!
    if (typeof pin !== "number" || !MODES.has(mode)) return other
    pairs.push([pin, mode as PinMode])
  }
  return { _tag: "PinMode", pairs }
}

/** The fields of a HARDWARE body for this value (inverse of parseHardware; pin type lower-case). */
export const formatHardware = (body: Exclude<HardwareBody, OtherOp>): Array<string> => {
  switch (body._tag) {
    case "Write":
      return [`${body.pinType}w`, String(body.pin), ...body.values]
    case "Read":
      return [`${body.pinType}r`, String(body.pin)]
    case "PinMode":
      return ["pm", ...body.pairs.flatMap(([pin, mode]) => [String(pin), mode])]
    case "DeviceSelector":
      return ["vu", String(body.selectorId), String(body.deviceId)]
  }
}

export interface Target {
  readonly dashId: number
  /** < 100 000 a device, < 200 000 a tag, above that a Device Selector widget (§2.5). */
  readonly targetId: number
}

/** The app-side prefix `dashId` or `dashId-targetId`; no target means device 0. */
export const parseTarget = (field: string): Target | IllegalCommand => {
  const dash = field.indexOf("-")
  const dashId = parseId(dash < 0 ? field : field.slice(0, dash), "dash id")
  if (typeof dashId !== "number") return dashId
  if (dash < 0) return { dashId, targetId: 0 }
  const targetId = parseId(field.slice(dash + 1), "target id")
  return typeof targetId === "number" ? { dashId, targetId } : targetId
}

export const formatTarget = (target: Target): string => `${target.dashId}-${target.targetId}`

/** An app HARDWARE body: target prefix, then the device grammar. */
export const parseAppHardware = (
  body: string
): { readonly target: Target; readonly command: HardwareBody } | IllegalCommand => {
  const nul = body.indexOf("\0")
  if (nul < 0) return illegal("app hardware body without a target prefix")
  const target = parseTarget(body.slice(0, nul))
  if (target instanceof IllegalCommand) return target
  const command = parseHardware(body.slice(nul + 1))
  return command._tag === "IllegalCommand" ? command : { target, command }
}

/** BLYNK_INTERNAL from a device (§2.3). */
export type Internal =
  | {
    readonly _tag: "HardwareInfo"
    /** Every key/value pair as sent (`ver`, `h-beat`, `buff-in`, `dev`, …); a key without a value is dropped. */
    readonly info: Readonly<Record<string, string>>
    /** `h-beat` in seconds when it is a non-negative decimal, else undefined. */
    readonly heartbeat: number | undefined
    /** `buff-in` in bytes when it is a non-negative decimal, else undefined. */
    readonly buffIn: number | undefined
  }
  | { readonly _tag: "Rtc" }
  | { readonly _tag: "Other"; readonly fields: ReadonlyArray<string> }

const decimal = (value: string | undefined): number | undefined =>
  value !== undefined && /^[0-9]{1,9}$/.test(value) ? Number(value) : undefined

// The legacy server dispatches on the first character: these start a hardware-info list.
const INFO_START = new Set(["v", "f", "h", "b", "d", "c", "t"])

export const parseInternal = (body: string): Internal => {
  const fields = body.split("\0")
  const first = fields[0]!
  if (first === "rtc") return { _tag: "Rtc" }
  if (!INFO_START.has(first.charAt(0))) return { _tag: "Other", fields }
  // No prototype: a device sending "__proto__" or "constructor" as a key only adds data.
  const info: Record<string, string> = Object.create(null)
  for (let i = 0; i + 1 < fields.length; i += 2) info[fields[i]!] = fields[i + 1]!
  return { _tag: "HardwareInfo", info, heartbeat: decimal(info["h-beat"]), buffIn: decimal(info["buff-in"]) }
}
