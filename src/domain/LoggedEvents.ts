import { EventLogged } from "./Pins.ts"

/**
 * Events a device reports (Blynk IoT `logEvent`, blynk2-device-api.md §2.2 #11 and §2.6): what
 * makes one acceptable, and the limits per device. Pure: the time and the day's count so far
 * come in.
 */

/** spec §2.6: a description of at most 300 characters. */
export const MAX_DESCRIPTION = 300

export interface EventLimits {
  /** Events one device may log per UTC day; 0 = no limit. */
  readonly perDay: number
  /** Milliseconds that must pass between two events of one code on one device; 0 = none. */
  readonly codeIntervalMs: number
}

/** spec §2.6: 100 per device per day, at least 1 s between events of one code. */
export const defaultEventLimits: EventLimits = { perDay: 100, codeIntervalMs: 1000 }

/** What the limits remember of one device: today's count (from the log at first use) and each code's last time. */
export interface DeviceEventsToday {
  /** The UTC day `count` is for (epoch ms / 86,400,000, floored). */
  readonly day: number
  readonly count: number
  readonly lastByCode: ReadonlyMap<string, number>
}

export const DAY_MS = 86_400_000

export const dayOf = (ms: number) => Math.floor(ms / DAY_MS)

export interface LogEvent {
  readonly dashId: number
  readonly deviceId: number
  readonly code: string
  readonly description: string | undefined
  /** When it arrived, epoch ms. */
  readonly now: number
}

export type LogEventDecision =
  | { readonly _tag: "Accepted"; readonly event: EventLogged; readonly next: DeviceEventsToday }
  /** No code, or only blanks. */
  | { readonly _tag: "NoCode" }
  | { readonly _tag: "DescriptionTooLong" }
  /** The same code again within `codeIntervalMs`. */
  | { readonly _tag: "TooSoon" }
  /** `perDay` events already today. */
  | { readonly _tag: "DayLimit" }

/**
 * Accepts an event or says why not. A refused event changes nothing (it does not count, and does
 * not move its code's time); the count starts again at 0 with a new UTC day.
 */
export const decideLogEvent = (limits: EventLimits, state: DeviceEventsToday, command: LogEvent): LogEventDecision => {
  if (command.code.trim() === "") return { _tag: "NoCode" }
  if (command.description !== undefined && command.description.length > MAX_DESCRIPTION) return { _tag: "DescriptionTooLong" }
  const day = dayOf(command.now)
  const count = day === state.day ? state.count : 0
  if (limits.perDay > 0 && count >= limits.perDay) return { _tag: "DayLimit" }
  const last = state.lastByCode.get(command.code)
  if (limits.codeIntervalMs > 0 && last !== undefined && command.now - last < limits.codeIntervalMs) return { _tag: "TooSoon" }
  const lastByCode = new Map(state.lastByCode)
  lastByCode.set(command.code, command.now)
  // Codes whose interval is over need not be remembered (a device inventing codes stays small).
  for (const [code, at] of lastByCode) if (command.now - at >= limits.codeIntervalMs && code !== command.code) lastByCode.delete(code)
  const event = new EventLogged({
    dashId: command.dashId,
    deviceId: command.deviceId,
    code: command.code,
    ...(command.description === undefined || command.description === "" ? {} : { description: command.description })
  })
  return { _tag: "Accepted", event, next: { day, count: count + 1, lastByCode } }
}
