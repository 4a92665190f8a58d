import { Config, Effect, Layer, Schema } from "effect"
import * as PinHistory from "../eventstore/projections/PinHistory.ts"

/**
 * The pin history's settings (README's configuration table): how long each table keeps its
 * rows, and how often the cleanup runs. 0 days = kept for ever.
 */
const Days = (name: string, fallback: number) =>
  Config.schema(Schema.NumberFromString.pipe(Schema.decodeTo(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))), name).pipe(
    Config.withDefault(fallback)
  )

export const HistoryConfig = Config.all({
  rawDays: Days("PINLEDGER_HISTORY_RAW_DAYS", PinHistory.defaultRetention.rawDays),
  minuteDays: Days("PINLEDGER_HISTORY_MINUTE_DAYS", PinHistory.defaultRetention.minuteDays),
  hourDays: Days("PINLEDGER_HISTORY_HOUR_DAYS", PinHistory.defaultRetention.hourDays),
  dayDays: Days("PINLEDGER_HISTORY_DAY_DAYS", PinHistory.defaultRetention.dayDays),
  cleanupMinutes: Config.schema(
    Schema.NumberFromString.pipe(Schema.decodeTo(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))),
    "PINLEDGER_HISTORY_CLEANUP_MINUTES"
  ).pipe(Config.withDefault(60))
})
export type HistoryConfig = Config.Success<typeof HistoryConfig>

export const retentionOf = (config: HistoryConfig): PinHistory.Retention => ({
  rawDays: config.rawDays,
  minuteDays: config.minuteDays,
  hourDays: config.hourDays,
  dayDays: config.dayDays
})

/** The pin history projection and its cleanup, as configured. */
export const HistoryLayer = Layer.unwrap(Effect.map(HistoryConfig, (config) =>
  PinHistory.layer({ retention: retentionOf(config), cleanupInterval: `${config.cleanupMinutes} minutes` })
))
