import { Effect } from "effect"
import { gzipSync } from "node:zlib"
import * as HistoryQueries from "../../eventstore/HistoryQueries.ts"

/**
 * A pin's history as the legacy server exports it (protocol.md §7.4, and `GET /{token}/data/{pin}`
 * of §5): gzip of `value,timestampMs,deviceId` lines, one per minute rollup (its average, at the
 * minute's start), oldest first, at most the last 43,200 minutes (30 days).
 */

/** The most minutes one export holds. */
export const CSV_POINTS = 43_200

/** A number as Java's `Double.toString` prints it: `10.0`, `0.5`, `1.0E7`, `1.25E-4`, `NaN`. */
export const javaDouble = (x: number): string => {
  if (Number.isNaN(x)) return "NaN"
  if (!Number.isFinite(x)) return x > 0 ? "Infinity" : "-Infinity"
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0"
  const abs = Math.abs(x)
  if (abs >= 1e-3 && abs < 1e7) {
    const s = String(x)
    return s.includes(".") ? s : `${s}.0`
  }
  const [mantissa, exponent] = x.toExponential().split("e") as [string, string]
  return `${mantissa.includes(".") ? mantissa : `${mantissa}.0`}E${exponent.replace("+", "")}`
}

/** The CSV text of points (`value,timestampMs,deviceId` per line). */
export const csvText = (points: ReadonlyArray<{ readonly value: number; readonly ts: number }>, deviceId: number): string => {
  let out = ""
  for (const p of points) out += `${javaDouble(p.value)},${p.ts},${deviceId}\n`
  return out
}

/** The gzip CSV of a pin's last minutes, or undefined when it has none (`No data.`). */
export const pinCsv = (pin: HistoryQueries.PinRef, options: { readonly points?: number } = {}) =>
  HistoryQueries.lastRollups(pin, "minute", Math.min(options.points ?? CSV_POINTS, CSV_POINTS)).pipe(
    Effect.map((rows) =>
      rows.length === 0 ? undefined : gzipSync(csvText(rows.map((r) => ({ value: r.avg, ts: r.ts })), pin.deviceId)) as Uint8Array
    ),
    Effect.withSpan("PinCsv.pinCsv")
  )

/** The legacy file name the export is served under: `<email>_<dashId>_<deviceId>_<t><pin>_<ms>.csv.gz`. */
export const csvFileName = (email: string, pin: HistoryQueries.PinRef, now: number) =>
  `${email}_${pin.dashId}_${pin.deviceId}_${pin.pinType}${pin.pin}_${now}.csv.gz`
