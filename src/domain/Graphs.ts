import type { Dashboard } from "./Account.ts"
import type { PinType } from "./Pins.ts"
import { isJsonObject, type JsonObject, widgetId, widgetType } from "./Widgets.ts"

/**
 * Superchart (`ENHANCED_GRAPH`) history as the app asks for it (protocol.md §7.2–§7.3): which
 * pins a chart's data streams show, and the graph periods with the rollup each one reads.
 */

export type Granularity = "minute" | "hour" | "day"

export const granularityMillis: Readonly<Record<Granularity, number>> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000
}

/** The start of the period of `granularity` that holds `ts` (UTC, as the legacy period index × length). */
export const bucketOf = (ts: number, granularity: Granularity): number => {
  const size = granularityMillis[granularity]
  return Math.floor(ts / size) * size
}

export interface GraphPeriod {
  readonly name: string
  /** How many points the chart shows; paging skips `page × points`. */
  readonly points: number
  /** `raw`: the last `points` samples (LIVE); else the rollup it reads. */
  readonly granularity: Granularity | "raw"
}

const period = (name: string, points: number, granularity: Granularity | "raw"): GraphPeriod => ({ name, points, granularity })

/** `GraphPeriod` of the legacy server (protocol.md §7.2). */
export const graphPeriods: ReadonlyArray<GraphPeriod> = [
  period("LIVE", 60, "raw"),
  period("FIFTEEN_MINUTES", 15, "minute"),
  period("THIRTY_MINUTES", 30, "minute"),
  period("ONE_HOUR", 60, "minute"),
  period("THREE_HOURS", 180, "minute"),
  period("SIX_HOURS", 360, "minute"),
  period("TWELVE_HOURS", 720, "minute"),
  period("DAY", 1440, "minute"),
  period("THREE_DAYS", 72, "hour"),
  period("WEEK", 168, "hour"),
  period("TWO_WEEKS", 336, "hour"),
  period("MONTH", 720, "hour"),
  period("THREE_MONTHS", 2160, "hour"),
  period("ALL", 8640, "hour"),
  period("N_DAY", 24, "hour"),
  period("TWO_DAYS", 48, "hour"),
  period("N_THREE_DAYS", 72, "hour"),
  period("N_WEEK", 7, "day"),
  period("N_TWO_WEEKS", 14, "day"),
  period("N_MONTH", 30, "day"),
  period("N_THREE_MONTHS", 90, "day"),
  period("SIX_MONTHS", 180, "day"),
  period("ONE_YEAR", 360, "day")
]

const byName = new Map(graphPeriods.map((p) => [p.name, p]))

export const parseGraphPeriod = (text: string): GraphPeriod | undefined => byName.get(text.trim().toUpperCase())

/**
 * The time window a rollup period shows: `points` periods ending with the one that holds `now`
 * (so the chart moves while the current minute fills), `page` windows further back.
 */
export const graphWindow = (p: GraphPeriod & { readonly granularity: Granularity }, page: number, now: number) => {
  const size = granularityMillis[p.granularity]
  const to = bucketOf(now, p.granularity) + size - page * p.points * size
  return { from: to - p.points * size, to }
}

/** How a data stream over several devices (a tag) combines their values (protocol.md §7.2). */
export type GraphFunction = "AVG" | "MIN" | "MAX" | "SUM" | "MED"

export interface GraphSource {
  readonly deviceId: number
  readonly pinType: PinType
  readonly pin: number
}

export interface GraphStream {
  /** The devices' pins it shows: one, several for a tag, none for a target that is gone. */
  readonly sources: ReadonlyArray<GraphSource>
  readonly fn: GraphFunction
}

const pinTypes: Record<string, PinType> = { VIRTUAL: "v", DIGITAL: "d", ANALOG: "a" }
const functions: ReadonlySet<string> = new Set(["AVG", "MIN", "MAX", "SUM", "MED"])

const int = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isInteger(value) ? value : undefined

/** The devices a target id stands for (protocol.md §2.5): a device, a tag, or a device selector's device. */
export const targetDevices = (dash: Dashboard, targetId: number): ReadonlyArray<number> => {
  const exists = (id: number) => dash.devices.some((d) => d.id === id)
  if (targetId < 100_000) return exists(targetId) ? [targetId] : []
  if (targetId < 200_000) return (dash.tags.find((t) => t.id === targetId)?.deviceIds ?? []).filter(exists)
  const selector = dash.widgets.find((w) => widgetId(w) === targetId)
  const id = selector === undefined ? Number.NaN : Number(selector["value"])
  return Number.isInteger(id) && exists(id) ? [id] : []
}

/**
 * One data stream's pin and target. The legacy app sends `{targetId, dataStream: {pinType, pin}}`;
 * the flat form `{deviceId, pinType, pin}` (as `Widgets.widgetPins` reads) is taken too.
 */
const streamOf = (dash: Dashboard, chart: JsonObject, s: JsonObject, targetId: number | undefined): GraphStream => {
  const inner = isJsonObject(s["dataStream"]) ? s["dataStream"] : s
  const pinType = typeof inner["pinType"] === "string" ? pinTypes[inner["pinType"]] : undefined
  const pin = int(inner["pin"])
  const fnText = typeof s["functionType"] === "string" ? s["functionType"] : "AVG"
  const fn = (functions.has(fnText) ? fnText : "AVG") as GraphFunction
  if (pinType === undefined || pin === undefined || pin < 0 || pin > 255) return { sources: [], fn }
  // A target in the request (a chart in Device Tiles) wins over the stream's own.
  const target = targetId ?? int(s["targetId"]) ?? int(s["deviceId"]) ?? int(chart["deviceId"]) ?? 0
  return { sources: targetDevices(dash, target).map((deviceId) => ({ deviceId, pinType, pin })), fn }
}

/**
 * The data streams of the Superchart `chartId` of a dashboard, in the chart's order (the answer
 * has one block per stream, empty ones included); undefined when there is no such chart.
 */
export const chartStreams = (dash: Dashboard, chartId: number, targetId?: number): ReadonlyArray<GraphStream> | undefined => {
  const chart = dash.widgets.find((w) => widgetId(w) === chartId)
  if (chart === undefined || widgetType(chart) !== "ENHANCED_GRAPH") return undefined
  const streams = Array.isArray(chart["dataStreams"]) ? chart["dataStreams"] : []
  return streams.map((s) => (isJsonObject(s) ? streamOf(dash, chart, s, targetId) : { sources: [], fn: "AVG" }))
}

/** Combines the values several devices have at one timestamp (a tag's stream). */
export const combine = (fn: GraphFunction, values: ReadonlyArray<number>): number => {
  switch (fn) {
    case "MIN": return Math.min(...values)
    case "MAX": return Math.max(...values)
    case "SUM": return values.reduce((a, b) => a + b, 0)
    case "MED": {
      const sorted = [...values].sort((a, b) => a - b)
      const mid = sorted.length >> 1
      return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
    }
    case "AVG": return values.reduce((a, b) => a + b, 0) / values.length
  }
}
