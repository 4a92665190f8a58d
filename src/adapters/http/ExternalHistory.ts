import { Effect } from "effect"
import { deviceStream } from "../../domain/Streams.ts"
import * as HistoryQueries from "../../eventstore/HistoryQueries.ts"
import { eventsLogged } from "../../eventstore/LoggedEventQueries.ts"
import type { ExportRequest, TimeFormat } from "./ExternalParams.ts"
import { jsonValue } from "./ExternalParams.ts"
import { pinName } from "./LegacyHttp.ts"
import { zonedParts } from "../ZonedTime.ts"
import { zip } from "./Zip.ts"

/**
 * The Blynk IoT history export (`GET /external/api/data/get`, blynk2-device-api.md §2.4): a
 * device's pins over a period, as raw samples or one value of each minute, hour or day rollup,
 * and its logged events if asked; as a table (`output=JSON`) or a CSV in a ZIP behind a link.
 */

/** One line of the export: a pin's value at a time, or (with `sendEvents=true`) an event. */
export interface ExportRow {
  /** `V1`, `D3`, `A0`; `event` for an event. */
  readonly name: string
  /** Epoch ms: the sample's time, the rollup period's start (UTC), the event's time. */
  readonly ts: number
  /** A number, a text, or several (a multi-value write); an event's code. */
  readonly value: number | string | ReadonlyArray<number | string>
  /** An event's description. */
  readonly description?: string | undefined
}

export interface DeviceRef {
  readonly accountStream: string
  readonly dashId: number
  readonly deviceId: number
}


/**
 * The rows of an export at `now`, pin after pin (then the events), each oldest first; at most
 * `maxRows` of them, `truncated` when there were more.
 */
export const exportRows = (device: DeviceRef, request: ExportRequest, now: number, maxRows: number) =>
  Effect.gen(function*() {
    const from = now - request.spanMs
    const pins = request.pin === undefined ? yield* HistoryQueries.devicePins(device) : [{ ...device, ...request.pin }]
    const rows: Array<ExportRow> = []
    // One more than fits, to know whether anything was left out.
    const room = () => maxRows + 1 - rows.length
    for (const pin of pins) {
      if (room() <= 0) break
      const name = pinName(pin)
      if (request.granularity === "raw") {
        for (const s of yield* HistoryQueries.samples(pin, from, now + 1, room())) {
          rows.push({ name, ts: s.ts, value: jsonValue([s.value, ...s.more]) })
        }
      } else {
        // Every period that overlaps the window.
        const size = { minute: 60_000, hour: 3_600_000, day: 86_400_000 }[request.granularity]
        for (const r of yield* HistoryQueries.rollups(pin, request.granularity, from - size + 1, now + 1, room())) {
          rows.push({ name, ts: r.ts, value: sourceValue(r, request.source) })
        }
      }
    }
    if (request.sendEvents && room() > 0) {
      for (const e of yield* eventsLogged(deviceStream(device.accountStream, device.dashId, device.deviceId), from, now + 1, room())) {
        rows.push({ name: "event", ts: e.ts, value: e.code, description: e.description })
      }
    }
    const truncated = rows.length > maxRows
    return { rows: truncated ? rows.slice(0, maxRows) : rows, truncated }
  }).pipe(Effect.withSpan("ExternalHistory.exportRows"))

const sourceValue = (r: HistoryQueries.RollupPoint, source: ExportRequest["source"]): number => {
  switch (source) {
    case "AVG":
      return r.avg
    case "MIN":
      return r.min
    case "MAX":
      return r.max
    case "SUM":
      return r.sum
    case "COUNT":
      return r.count
  }
}

const two = (n: number) => String(n).padStart(2, "0")

/**
 * A time as `format` writes it, in `timeZone`: `TS` epoch ms; `ISO_US` `04/10/19 11:45:41 AM`;
 * `ISO_SIMPLE` `2018-06-07 22:01:20` (spec §2.4).
 */
export const formatTime = (ts: number, format: TimeFormat, timeZone: string): number | string => {
  if (format === "TS") return ts
  const p = zonedParts(ts, timeZone)
  const [month, day, minute, second] = [two(p.month), two(p.day), two(p.minute), two(p.second)]
  if (format === "ISO_SIMPLE") return `${p.year}-${month}-${day} ${two(p.hour)}:${minute}:${second}`
  const hour12 = p.hour % 12 === 0 ? 12 : p.hour % 12
  return `${month}/${day}/${two(p.year % 100)} ${two(hour12)}:${minute}:${second} ${p.hour < 12 ? "AM" : "PM"}`
}

/** The table `output=JSON` answers (the older docs' shape): `meta`, `data`, `rows`, `rows_before_limit_at_least`. */
export const tableJson = (rows: ReadonlyArray<ExportRow>, request: ExportRequest, truncated: boolean) => {
  const numeric = rows.every((r) => r.name === "event" || typeof r.value === "number")
  const meta = [
    { name: "data_stream_name", type: "String" },
    { name: "ts", type: request.format === "TS" ? "UInt64" : "String" },
    { name: "value", type: numeric ? "Float64" : "String" },
    ...(request.sendEvents ? [{ name: "description", type: "String" }] : [])
  ]
  const data = rows.map((r) => ({
    data_stream_name: r.name,
    ts: formatTime(r.ts, request.format, request.timeZone),
    value: r.value,
    ...(request.sendEvents ? { description: r.description ?? "" } : {})
  }))
  // A lower bound, as the name says: one more row was seen than was kept.
  return { meta, data, rows: data.length, rows_before_limit_at_least: data.length + (truncated ? 1 : 0) }
}

/** A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break. */
export const csvField = (text: string) => (/[",\r\n]/.test(text) ? `"${text.replaceAll("\"", "\"\"")}"` : text)

const cell = (value: ExportRow["value"]) => (Array.isArray(value) ? value.join(",") : String(value))

/** The export as CSV: a header line (`data_stream_name,ts,value`, and `description` with events), then a line per row. */
export const csvOf = (rows: ReadonlyArray<ExportRow>, request: ExportRequest): string => {
  const header = ["data_stream_name", "ts", "value", ...(request.sendEvents ? ["description"] : [])]
  let out = `${header.join(",")}\r\n`
  for (const r of rows) {
    const fields = [r.name, String(formatTime(r.ts, request.format, request.timeZone)), cell(r.value)]
    if (request.sendEvents) fields.push(r.description ?? "")
    out += `${fields.map(csvField).join(",")}\r\n`
  }
  return out
}

/** `2024-03-01T16-47-57` (UTC): the time in an export's name. */
export const fileStamp = (now: number) => new Date(now).toISOString().slice(0, 19).replaceAll(":", "-")

/** The export's ZIP: one CSV named as the archive. */
export const exportZip = (baseName: string, csv: string, now: number) =>
  zip([{ name: `${baseName}.csv`, data: Buffer.from(csv, "utf8"), modified: new Date(now) }])
