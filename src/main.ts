import { Cause, Effect, Exit, Layer, Option, Runtime } from "effect"
import { Command } from "effect/cli"
import { HttpRouter } from "effect/http"
import { NodeHttpServer, NodeRuntime, NodeServices } from "@effect/platform-node"
import { makeCli } from "./adapters/cli/Cli.ts"
import { eventLimits, publicUrl, ServerConfig } from "./adapters/Config.ts"
import { DatabaseLayer } from "./adapters/DatabaseLayer.ts"
import { HealthRoute } from "./adapters/http/HealthRoute.ts"
import { VerifyEmailRoute } from "./adapters/http/VerifyEmailRoute.ts"
import { MetricsRouteFromConfig } from "./adapters/http/MetricsRoute.ts"
import { requestLog } from "./adapters/http/RequestLog.ts"
import { withLogFormat } from "./adapters/Logging.ts"
import * as ExportFiles from "./adapters/http/CsvExports.ts"
import * as ExternalApi from "./adapters/http/ExternalApi.ts"
import * as LegacyApi from "./adapters/http/LegacyApi.ts"
import * as OwnerRoutes from "./adapters/http/OwnerRoutes.ts"
import { hostname } from "node:os"
import * as Certificates from "./adapters/net/Certificates.ts"
import * as CertificateReloader from "./adapters/net/CertificateReloader.ts"
import { layerHttpHandoffWith } from "./adapters/net/ConnectionRouter.ts"
import * as PlainListener from "./adapters/net/PlainListener.ts"
import * as TlsListener from "./adapters/net/TlsListener.ts"
import { migrate } from "./eventstore/Migrations.ts"
import * as AccountFollower from "./actors/AccountFollower.ts"
import * as Directory from "./actors/Directory.ts"
import * as Throttle from "./actors/Throttle.ts"
import * as BlynkEndpoints from "./adapters/blynk/Endpoints.ts"
import * as SessionEnv from "./adapters/blynk/SessionEnv.ts"
import * as Mailer from "./adapters/notify/Mailer.ts"
import * as RegistrationMailer from "./adapters/accounts/RegistrationMailer.ts"
import * as OutboxSender from "./adapters/notify/OutboxSender.ts"
import { HistoryLayer } from "./adapters/HistoryConfig.ts"
import * as SqlEventStore from "./eventstore/SqlEventStore.ts"
import { inlineProjections } from "./eventstore/projections/Inline.ts"

/** The composition root: layers chosen from configuration, nothing else. */
const Migrated = Layer.effectDiscard(
  migrate.pipe(Effect.tap((applied) => Effect.logInfo(`migrations: ${applied.length} applied`)))
)

const EventStoreLayer = Layer.unwrap(
  Effect.map(ServerConfig, (config) => SqlEventStore.layer({
    maxBatch: config.groupCommitMaxBatch,
    writers: config.groupCommitWriters,
    inline: inlineProjections
  }))
)

/**
 * The TLS port, with the configured certificate or a self-signed one kept in the data directory;
 * the certificate is loaded again when its files change, and on SIGHUP while the server runs.
 */
const TlsLayer = Layer.unwrap(Effect.gen(function*() {
  const config = yield* ServerConfig
  const endpoints = yield* BlynkEndpoints.BlynkEndpoints
  const certificateOptions: Certificates.CertificateOptions = {
    certFile: Option.getOrUndefined(config.tlsCert),
    keyFile: Option.getOrUndefined(config.tlsKey),
    dataDir: config.dataDir,
    hostnames: Certificates.parseHostnames(config.tlsHostnames)
  }
  const certificate = yield* Certificates.load(certificateOptions)
  yield* Effect.logInfo(
    certificate.origin === "files"
      ? `TLS certificate from PINLEDGER_TLS_CERT (SHA-256 ${certificate.fingerprint})`
      : `TLS certificate: self-signed, ${certificate.origin} in ${Certificates.generatedDir(config.dataDir)} (SHA-256 ${certificate.fingerprint})`
  )
  return CertificateReloader.reloadOnSignal("SIGHUP").pipe(
    Layer.provideMerge(CertificateReloader.layer({ files: Certificates.files(certificateOptions) })),
    Layer.provideMerge(TlsListener.layerWith({
      port: config.httpsPort,
      host: config.bind,
      cert: certificate.cert,
      key: certificate.key,
      hardware: endpoints.hardware,
      app: endpoints.app
    }))
  )
}))

const PlainLayer = Layer.unwrap(Effect.gen(function*() {
  const config = yield* ServerConfig
  const endpoints = yield* BlynkEndpoints.BlynkEndpoints
  return PlainListener.layerWith({ port: config.httpPort, host: config.bind, hardware: endpoints.hardware })
}))

const sizeLimits = (config: ServerConfig) => ({
  hardwareBody: config.maxHardwareBody,
  appBody: config.maxAppBody,
  widgetJson: config.maxWidgetJsonKb * 1024,
  dashboardJson: config.maxDashboardJsonKb * 1024
})

/** Blynk sessions for devices and apps, with the user actors they talk to. */
const SessionsLayer = Layer.unwrap(Effect.map(ServerConfig, (config) =>
  Layer.merge(BlynkEndpoints.layer, AccountFollower.layer()).pipe(
    Layer.provide(SessionEnv.layer({
      messageQuota: config.messageQuota,
      hardwareIdleSeconds: config.hardwareIdleSeconds,
      appIdleSeconds: config.appIdleSeconds,
      registration: config.registration,
      notifyIntervalSeconds: config.notifyIntervalSeconds,
      resetTokenMinutes: config.resetTokenMinutes,
      verifyTokenHours: config.verifyTokenHours,
      publicUrl: publicUrl(config, hostname()),
      sizes: sizeLimits(config)
    })),
    // Password-reset and confirmation mails go out from the sessions (the outbox sender shares it).
    Layer.provide(RegistrationMailer.layer(config.registration)),
    // Merged: the HTTP routes (GET /verify-email) reach the same actors and throttle.
    Layer.provideMerge(Directory.layerWith({
      deviceLogIntervalMillis: config.deviceLogIntervalMs,
      limits: { maxDashboards: config.maxDashboards, maxDevicesPerDashboard: config.maxDevicesPerDashboard },
      notifications: { emailsPerDay: config.emailsPerDay, vendorEmail: Mailer.addressOf(config.mailFrom) },
      events: eventLimits(config)
    })),
    Layer.provideMerge(Throttle.layer({
      maxFailures: config.loginMaxFailures,
      windowMs: config.loginBlockSeconds * 1000,
      blockMs: config.loginBlockSeconds * 1000
    }))
  )))

/** The legacy HTTP API (protocol.md §5); its QR links point at the public URL. */
const LegacyApiLayer = Layer.unwrap(Effect.map(ServerConfig, (config) => LegacyApi.layer({ publicUrl: publicUrl(config, hostname()) })))

/** The Blynk IoT device API (`/external/api/…`); its export links point at the public URL. */
const ExternalApiLayer = Layer.unwrap(Effect.map(ServerConfig, (config) =>
  ExternalApi.layer({
    publicUrl: publicUrl(config, hostname()),
    batch: {
      maxPoints: config.externalBatchMaxPoints,
      maxAgeMs: config.externalBatchMaxAgeDays * 86_400_000,
      maxAheadMs: config.externalBatchMaxAheadSeconds * 1000
    },
    events: eventLimits(config),
    exportMaxRows: config.externalExportMaxRows
  })
))

/** The owner API under /api/v1, with its OpenAPI document. */
const OwnerApiLayer = Layer.unwrap(Effect.map(ServerConfig, (config) => OwnerRoutes.layer({ sessionMinutes: config.apiSessionMinutes })))

/** One HTTP app, served on the plain port and (as HTTPS) on the TLS port. Requests are logged by RequestLog.ts (no device tokens in the log). */
const HttpLayer = HttpRouter.serve(Layer.mergeAll(HealthRoute, VerifyEmailRoute, LegacyApiLayer, ExternalApiLayer, OwnerApiLayer, MetricsRouteFromConfig), {
  disableLogger: true,
  middleware: requestLog
}).pipe(
  Layer.provide(Layer.merge(PlainLayer, TlsLayer)),
  // The export files both APIs make and `GET /{file}` serves.
  Layer.provide(ExportFiles.layer),
  Layer.provide(SessionsLayer),
  Layer.provide(Layer.unwrap(Effect.map(ServerConfig, (config) =>
    // The largest Blynk frame either WebSocket path carries, and its header.
    layerHttpHandoffWith({ maxWebSocketMessage: Math.max(config.maxAppBody, config.maxHardwareBody) + 16 })
  ))),
  Layer.provide(NodeHttpServer.layerHttpServices)
)

/** The migrated event store on the configured database. */
const StoreLayer = EventStoreLayer.pipe(Layer.provide(Migrated), Layer.provideMerge(DatabaseLayer))

/** The notification outbox's sender, mailing through SMTP when configured. */
const NotifyLayer = OutboxSender.layer().pipe(Layer.provide(Mailer.layer))

export const ServerLayer = Layer.mergeAll(HttpLayer, NotifyLayer, HistoryLayer).pipe(Layer.provide(StoreLayer))

const cli = makeCli({ server: ServerLayer, database: DatabaseLayer, store: StoreLayer })

/** SIGINT/SIGTERM interrupt the server; once it has closed everything cleanly, that is exit 0. */
const signalIsCleanExit: Runtime.Teardown = (exit, onExit) =>
  Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)

/** Runs one CLI command; no command at all means "serve", so `node src/main.ts` starts the server. */
export const runCli = (args: ReadonlyArray<string>) =>
  Command.runWith(cli, { version: "0.1.0" })(args.length === 0 ? ["serve"] : args).pipe(
    Effect.provide(NodeServices.layer),
    // Logs (and a failure's report) as PINLEDGER_LOG_FORMAT says, so runMain's own report is off.
    withLogFormat,
    NodeRuntime.runMain({ teardown: signalIsCleanExit, disableErrorReporting: true })
  )

if (import.meta.main) runCli(process.argv.slice(2))
