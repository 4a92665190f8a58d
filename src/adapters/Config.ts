import { Config, Option, Redacted, Schema } from "effect"

/**
 * Every setting of the server, read from the environment. Keep this list and the README's
 * configuration table the same.
 */
/** A whole number of at least 1, given as text in the environment. */
const Positive = (name: string) => Config.schema(Schema.NumberFromString.pipe(Schema.decodeTo(Schema.Int.check(Schema.isGreaterThanOrEqualTo(1)))), name)

/** A whole number of at least 0. */
const NonNegative = (name: string) => Config.schema(Schema.NumberFromString.pipe(Schema.decodeTo(Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)))), name)

/** PINLEDGER_LOG_FORMAT: how logs are written (Logging.ts), for the server and the CLI alike. */
export const LogFormat = Config.schema(Schema.Literals(["text", "json"]), "PINLEDGER_LOG_FORMAT").pipe(Config.withDefault("text" as const))

export const ServerConfig = Config.all({
  httpPort: Config.Port("PINLEDGER_HTTP_PORT").pipe(Config.withDefault(8080)),
  httpsPort: Config.Port("PINLEDGER_HTTPS_PORT").pipe(Config.withDefault(9443)),
  tlsCert: Config.String("PINLEDGER_TLS_CERT").pipe(Config.option),
  tlsKey: Config.String("PINLEDGER_TLS_KEY").pipe(Config.option),
  tlsHostnames: Config.String("PINLEDGER_TLS_HOSTNAMES").pipe(Config.withDefault("")),
  bind: Config.String("PINLEDGER_BIND").pipe(Config.withDefault("0.0.0.0")),
  dataDir: Config.String("PINLEDGER_DATA_DIR").pipe(Config.withDefault("./data")),
  databaseUrl: Config.Redacted("DATABASE_URL").pipe(Config.option),
  databasePoolSize: Positive("PINLEDGER_DB_POOL_SIZE").pipe(Config.withDefault(10)),
  groupCommitMaxBatch: Positive("PINLEDGER_GROUP_COMMIT_MAX_BATCH").pipe(Config.withDefault(500)),
  groupCommitWriters: Positive("PINLEDGER_GROUP_COMMIT_WRITERS").pipe(Config.withDefault(2)),
  messageQuota: Positive("PINLEDGER_MESSAGE_QUOTA").pipe(Config.withDefault(100)),
  hardwareIdleSeconds: NonNegative("PINLEDGER_HARDWARE_IDLE_SECONDS").pipe(Config.withDefault(10)),
  appIdleSeconds: NonNegative("PINLEDGER_APP_IDLE_SECONDS").pipe(Config.withDefault(300)),
  registration: Config.schema(Schema.Literals(["closed", "open", "verify"]), "PINLEDGER_REGISTRATION").pipe(Config.withDefault("closed" as const)),
  resetTokenMinutes: Positive("PINLEDGER_RESET_TOKEN_MINUTES").pipe(Config.withDefault(60)),
  verifyTokenHours: Positive("PINLEDGER_VERIFY_TOKEN_HOURS").pipe(Config.withDefault(48)),
  publicUrl: Config.String("PINLEDGER_PUBLIC_URL").pipe(Config.option),
  loginMaxFailures: Positive("PINLEDGER_LOGIN_MAX_FAILURES").pipe(Config.withDefault(5)),
  loginBlockSeconds: Positive("PINLEDGER_LOGIN_BLOCK_SECONDS").pipe(Config.withDefault(600)),
  apiSessionMinutes: Positive("PINLEDGER_API_SESSION_MINUTES").pipe(Config.withDefault(1440)),
  deviceLogIntervalMs: NonNegative("PINLEDGER_DEVICE_LOG_INTERVAL_MS").pipe(Config.withDefault(250)),
  notifyIntervalSeconds: NonNegative("PINLEDGER_NOTIFY_INTERVAL_SECONDS").pipe(Config.withDefault(5)),
  emailsPerDay: NonNegative("PINLEDGER_EMAILS_PER_DAY").pipe(Config.withDefault(100)),
  smtpUrl: Config.Redacted("PINLEDGER_SMTP_URL").pipe(Config.option),
  mailFrom: Config.String("PINLEDGER_MAIL_FROM").pipe(Config.withDefault("Pinledger <pinledger@localhost>")),
  maxDashboards: Positive("PINLEDGER_MAX_DASHBOARDS").pipe(Config.withDefault(100)),
  maxDevicesPerDashboard: Positive("PINLEDGER_MAX_DEVICES_PER_DASHBOARD").pipe(Config.withDefault(50)),
  maxHardwareBody: Config.schema(
    Schema.NumberFromString.pipe(Schema.decodeTo(Schema.Int.check(Schema.isBetween({ minimum: 32, maximum: 65_535 })))),
    "PINLEDGER_MAX_HARDWARE_BODY"
  ).pipe(Config.withDefault(65_535)),
  maxAppBody: Positive("PINLEDGER_MAX_APP_BODY").pipe(Config.withDefault(1024 * 1024)),
  maxWidgetJsonKb: Positive("PINLEDGER_MAX_WIDGET_JSON_KB").pipe(Config.withDefault(20)),
  maxDashboardJsonKb: Positive("PINLEDGER_MAX_DASHBOARD_JSON_KB").pipe(Config.withDefault(256)),
  externalBatchMaxPoints: Positive("PINLEDGER_EXTERNAL_BATCH_MAX_POINTS").pipe(Config.withDefault(10_000)),
  externalBatchMaxAgeDays: Positive("PINLEDGER_EXTERNAL_BATCH_MAX_AGE_DAYS").pipe(Config.withDefault(30)),
  externalBatchMaxAheadSeconds: NonNegative("PINLEDGER_EXTERNAL_BATCH_MAX_AHEAD_SECONDS").pipe(Config.withDefault(3600)),
  externalExportMaxRows: Positive("PINLEDGER_EXTERNAL_EXPORT_MAX_ROWS").pipe(Config.withDefault(100_000)),
  logEventsPerDay: NonNegative("PINLEDGER_LOG_EVENTS_PER_DAY").pipe(Config.withDefault(100)),
  logEventIntervalMs: NonNegative("PINLEDGER_LOG_EVENT_INTERVAL_MS").pipe(Config.withDefault(1000)),
  metrics: Config.schema(Schema.Literals(["on", "off"]), "PINLEDGER_METRICS").pipe(Config.withDefault("on" as const)),
  logFormat: LogFormat
})
export type ServerConfig = Config.Success<typeof ServerConfig>

/**
 * Where the HTTP app is reached from outside, for mailed links: PINLEDGER_PUBLIC_URL without a
 * trailing slash, else `https://<host name>:<TLS port>`.
 */
export const publicUrl = (config: ServerConfig, hostname: string): string => {
  const configured = Option.getOrUndefined(Option.filter(config.publicUrl, (url) => url.trim() !== ""))
  return configured === undefined ? `https://${hostname}:${config.httpsPort}` : configured.trim().replace(/\/+$/, "")
}

/** The `logEvent` limits (domain/LoggedEvents.ts) as configured. */
export const eventLimits = (config: ServerConfig) => ({ perDay: config.logEventsPerDay, codeIntervalMs: config.logEventIntervalMs })

/** The PostgreSQL URL, if one is set; an empty DATABASE_URL counts as unset. */
export const databaseUrl = (config: ServerConfig): string | undefined =>
  Option.getOrUndefined(Option.filter(Option.map(config.databaseUrl, Redacted.value), (url) => url.trim() !== ""))
