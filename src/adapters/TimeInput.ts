/**
 * Times as people type them on a command line or in a URL: an ISO 8601 date (`2026-01-01`,
 * midnight UTC) or date and time (`2026-01-01T12:00:00Z`, `2026-01-01 12:00+02:00`; without a
 * zone, UTC too, as the audit prints times: JavaScript would read it in the machine's zone, and
 * the date alone in UTC), or, where `parseInstant` is used, epoch
 * milliseconds. Anything else is refused rather than guessed at (`Date.parse("1")` is the year 2001).
 */

const ISO = /^(\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d(?::\d\d(?:\.\d+)?)?)(Z|[+-]\d\d:?\d\d)?)?$/

/** The largest time a Date holds (±8.64e15 ms). */
export const MAX_MILLIS = 8.64e15

/** An ISO date or date and time; undefined for anything else. */
export const parseIsoDate = (text: string): Date | undefined => {
  const m = ISO.exec(text)
  if (m === null) return undefined
  const [, day, time, offset] = m
  const date = new Date(time === undefined ? day! : `${day}T${time}${offset ?? "Z"}`)
  return Number.isNaN(date.getTime()) ? undefined : date
}

/** An ISO date or date and time, or epoch milliseconds (0 up to MAX_MILLIS): epoch ms; undefined for anything else. */
export const parseInstant = (text: string): number | undefined => {
  const trimmed = text.trim()
  if (/^\d{1,16}$/.test(trimmed)) {
    const ms = Number(trimmed)
    return ms <= MAX_MILLIS ? ms : undefined
  }
  return parseIsoDate(trimmed)?.getTime()
}
