import { Cause, type Config, Effect, Exit, Formatter, Layer, Logger, Runtime } from "effect"
import { LogFormat } from "./Config.ts"

/**
 * One log record as a line of JSON (PINLEDGER_LOG_FORMAT=json). Always these fields:
 * - `time`: ISO 8601, UTC, milliseconds;
 * - `level`: TRACE, DEBUG, INFO, WARN, ERROR or FATAL;
 * - `message`: the logged text (several parts joined by a space; a bare cause's first line);
 * - `annotations`: the fiber's log annotations (e.g. `subscriber`), `{}` when none;
 * - `spans`: each open log span's name and how long it has been open, in milliseconds, `{}` when none;
 * - `fiber`: the fiber's id (e.g. `#12`);
 * and, when there are, `details` (logged values other than text) and `cause` (an error's cause,
 * pretty-printed with its stack).
 */
export interface JsonRecord {
  readonly time: string
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
  readonly spans: Record<string, number>
  readonly fiber: string
  readonly details?: ReadonlyArray<unknown>
  readonly cause?: string
}

type Structured = typeof Logger.formatStructured extends Logger.Logger<unknown, infer O> ? O : never

const toRecord = (structured: Structured): JsonRecord => {
  const parts = Array.isArray(structured.message) ? structured.message : [structured.message]
  const texts = parts.filter((p): p is string => typeof p === "string")
  const details = parts.filter((p) => typeof p !== "string")
  return {
    time: structured.timestamp,
    level: structured.level,
    // A bare cause (a command's failure) is titled by its first line.
    message: texts.length > 0 ? texts.join(" ") : (structured.cause?.split("\n", 1)[0] ?? ""),
    annotations: structured.annotations,
    spans: structured.spans,
    fiber: structured.fiberId,
    ...(details.length > 0 ? { details } : {}),
    ...(structured.cause !== undefined ? { cause: structured.cause } : {})
  }
}

/** A log record as its JSON line (no newline inside: JSON escapes them). */
export const formatJsonLine: Logger.Logger<unknown, string> = Logger.map(
  Logger.formatStructured,
  (structured) => Formatter.formatJson(toRecord(structured))
)

/** JSON lines on standard output, where the text logger writes too. */
export const jsonLogger: Logger.Logger<unknown, void> = Logger.withConsoleLog(formatJsonLine)

/** The loggers for a format: `text` keeps effect's default logger (as before), `json` replaces it. */
export const layerFor = (format: "text" | "json"): Layer.Layer<never> =>
  format === "json" ? Logger.layer([jsonLogger]) : Layer.empty

/** Reports a failure as `runMain` does, but through the loggers in place (so as JSON too). */
const reportFailure = <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.tapCause(self, (cause) =>
    Cause.hasInterruptsOnly(cause) || !Runtime.getErrorReported(Cause.squash(cause)) ? Effect.void : Effect.logError(cause))

/**
 * Runs `self` (a whole CLI command, `serve` included) with the loggers PINLEDGER_LOG_FORMAT asks
 * for; its failures are logged by them too. Run it with `runMain`'s own reporting off. A
 * PINLEDGER_LOG_FORMAT that is neither `text` nor `json` is reported, as text, and fails.
 */
export const withLogFormat = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | Config.ConfigError, R> =>
  Effect.flatMap(Effect.exit(LogFormat), (format): Effect.Effect<A, E | Config.ConfigError, R> =>
    Exit.isFailure(format)
      ? Effect.andThen(Effect.logError(format.cause), Effect.failCause(format.cause))
      : reportFailure(self).pipe(Effect.provide(layerFor(format.value))))
