import { Effect } from "effect"
import { deflateSync, inflateSync } from "node:zlib"
import { combine, type GraphPeriod, type GraphStream, graphWindow, parseGraphPeriod } from "../../domain/Graphs.ts"
import * as HistoryQueries from "../../eventstore/HistoryQueries.ts"

/**
 * GET_ENHANCED_GRAPH_DATA (60) and DELETE_ENHANCED_GRAPH_DATA (61) of the app protocol
 * (protocol.md §2.1, §7.2–§7.3): the bodies, and the binary answer built from the history.
 */

export interface GraphRequest {
  readonly dashId: number
  /** A device, tag or device selector that replaces each stream's own target (a chart in Device Tiles). */
  readonly targetId?: number
  readonly widgetId: number
  readonly period: GraphPeriod
  readonly page: number
}

export interface GraphDeleteRequest {
  readonly dashId: number
  readonly targetId?: number
  readonly widgetId: number
  readonly streamIndex?: number
}

const INT = /^\d{1,10}$/
const LONG = /^-?\d{1,15}$/

const target = (text: string | undefined): { dashId: number; targetId?: number } | undefined => {
  const [dash, tgt, ...rest] = (text ?? "").trim().split("-")
  if (rest.length > 0 || dash === undefined || !INT.test(dash)) return undefined
  if (tgt === undefined) return { dashId: Number(dash) }
  return INT.test(tgt) ? { dashId: Number(dash), targetId: Number(tgt) } : undefined
}

/** `dashId[-targetId], widgetId, PERIOD[, page]`; undefined when malformed (ILLEGAL_COMMAND). */
export const parseGraphRequest = (fields: ReadonlyArray<string>): GraphRequest | undefined => {
  const [where, widget, periodText, pageText] = fields
  const t = target(where)
  const period = periodText === undefined ? undefined : parseGraphPeriod(periodText)
  if (t === undefined || widget === undefined || !LONG.test(widget.trim()) || period === undefined) return undefined
  if (pageText !== undefined && pageText.trim() !== "" && !/^\d{1,6}$/.test(pageText.trim())) return undefined
  const page = pageText === undefined || pageText.trim() === "" ? 0 : Number(pageText.trim())
  return { ...t, widgetId: Number(widget.trim()), period, page }
}

/** `dashId[-targetId], widgetId[, streamIndex]`; undefined when malformed. */
export const parseGraphDelete = (fields: ReadonlyArray<string>): GraphDeleteRequest | undefined => {
  const [where, widget, indexText] = fields
  const t = target(where)
  if (t === undefined || widget === undefined || !LONG.test(widget.trim())) return undefined
  if (indexText === undefined || indexText.trim() === "") return { ...t, widgetId: Number(widget.trim()) }
  if (!/^\d{1,4}$/.test(indexText.trim())) return undefined
  return { ...t, widgetId: Number(widget.trim()), streamIndex: Number(indexText.trim()) }
}

export interface GraphPoint {
  readonly value: number
  readonly ts: number
}

/**
 * The answer's body: zlib (with header, not gzip) of `int32 dashId`, then per stream `int32
 * count` and `count` × (`float64 value`, `int64 ts`), big-endian.
 */
export const encodeGraphData = (dashId: number, streams: ReadonlyArray<ReadonlyArray<GraphPoint>>): Uint8Array => {
  const size = 4 + streams.reduce((n, s) => n + 4 + s.length * 16, 0)
  const out = Buffer.alloc(size)
  let at = out.writeInt32BE(dashId, 0)
  for (const points of streams) {
    at = out.writeInt32BE(points.length, at)
    for (const p of points) {
      at = out.writeDoubleBE(p.value, at)
      at = out.writeBigInt64BE(BigInt(Math.trunc(p.ts)), at)
    }
  }
  return deflateSync(out)
}

/** The inverse of `encodeGraphData` (for clients and tests). */
export const decodeGraphData = (body: Uint8Array): { dashId: number; streams: Array<Array<GraphPoint>> } => {
  const buf = inflateSync(body)
  const dashId = buf.readInt32BE(0)
  const streams: Array<Array<GraphPoint>> = []
  let at = 4
  while (at < buf.length) {
    const count = buf.readInt32BE(at)
    at += 4
    const points: Array<GraphPoint> = []
    for (let i = 0; i < count; i++, at += 16) points.push({ value: buf.readDoubleBE(at), ts: Number(buf.readBigInt64BE(at + 8)) })
    streams.push(points)
  }
  return { dashId, streams }
}

/** One source's points for the period: LIVE the last raw numbers, else the rollups' averages in the window. */
const sourcePoints = (pin: HistoryQueries.PinRef, period: GraphPeriod, page: number, now: number) => {
  const { granularity } = period
  if (granularity === "raw") {
    return HistoryQueries.lastSamples(pin, period.points, { numeric: true }).pipe(
      Effect.map((samples) => samples.map((s): GraphPoint => ({ value: s.num!, ts: s.ts })))
    )
  }
  const { from, to } = graphWindow({ ...period, granularity }, page, now)
  return HistoryQueries.rollups(pin, granularity, from, to).pipe(
    Effect.map((points) => points.map((p): GraphPoint => ({ value: p.avg, ts: p.ts })))
  )
}

/** Several devices' points (a tag) as one line: values at the same time combined by the stream's function. */
const merge = (stream: GraphStream, lines: ReadonlyArray<ReadonlyArray<GraphPoint>>): ReadonlyArray<GraphPoint> => {
  if (lines.length === 1) return lines[0]!
  const at = new Map<number, Array<number>>()
  for (const line of lines) {
    for (const p of line) {
      const values = at.get(p.ts)
      if (values === undefined) at.set(p.ts, [p.value])
      else values.push(p.value)
    }
  }
  return [...at.entries()].sort((a, b) => a[0] - b[0]).map(([ts, values]) => ({ ts, value: combine(stream.fn, values) }))
}

/**
 * The GET_ENHANCED_GRAPH_DATA answer for a chart's streams (domain/Graphs.ts `chartStreams`) at
 * `now`: the zlib body, or undefined when no stream has a point (NO_DATA).
 */
export const graphData = (accountStream: string, request: GraphRequest, streams: ReadonlyArray<GraphStream>, now: number) =>
  Effect.gen(function*() {
    const lines = yield* Effect.forEach(streams, (stream) =>
      Effect.forEach(stream.sources, (s) =>
        sourcePoints({ accountStream, dashId: request.dashId, deviceId: s.deviceId, pinType: s.pinType, pin: s.pin }, request.period, request.page, now)
      ).pipe(Effect.map((perSource) => (perSource.length === 0 ? [] : merge(stream, perSource)))))
    if (lines.every((l) => l.length === 0)) return undefined
    return encodeGraphData(request.dashId, lines)
  }).pipe(Effect.withSpan("GraphData.graphData"))
