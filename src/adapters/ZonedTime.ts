/** A time's wall clock in a time zone, for the answers that show local time (RTC, history exports). */

export interface WallClock {
  readonly year: number
  /** 1–12. */
  readonly month: number
  readonly day: number
  /** 0–23. */
  readonly hour: number
  readonly minute: number
  readonly second: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

/** The wall clock of `timeZone` (an IANA name, `UTC`, an offset) at `ms`; throws a RangeError for a zone `Intl` does not know. */
export const zonedParts = (ms: number, timeZone: string): WallClock => {
  let format = formatters.get(timeZone)
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit"
    })
    // Zones are few; names that are not zones throw above and are never kept.
    if (formatters.size < 1000) formatters.set(timeZone, format)
  }
  const parts: Record<string, number> = {}
  for (const p of format.formatToParts(new Date(ms))) parts[p.type] = Number(p.value)
  return { year: parts["year"]!, month: parts["month"]!, day: parts["day"]!, hour: parts["hour"]!, minute: parts["minute"]!, second: parts["second"]! }
}
