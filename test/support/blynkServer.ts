import { Clock, Context, Effect, Exit, Layer, Scope } from "effect"
import { HttpRouter } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as AccountFollower from "../../src/actors/AccountFollower.ts"
import * as Directory from "../../src/actors/Directory.ts"
import * as Throttle from "../../src/actors/Throttle.ts"
import type { UserActorOptions } from "../../src/actors/UserActor.ts"
import type { ThrottleSettings } from "../../src/domain/Throttle.ts"
import * as BlynkEndpoints from "../../src/adapters/blynk/Endpoints.ts"
import * as SessionEnv from "../../src/adapters/blynk/SessionEnv.ts"
import { HealthRoute } from "../../src/adapters/http/HealthRoute.ts"
import { VerifyEmailRoute } from "../../src/adapters/http/VerifyEmailRoute.ts"
import { MetricsRoute } from "../../src/adapters/http/MetricsRoute.ts"
import * as ExportFiles from "../../src/adapters/http/CsvExports.ts"
import * as ExternalApi from "../../src/adapters/http/ExternalApi.ts"
import { defaultBatchLimits } from "../../src/adapters/http/ExternalParams.ts"
import * as LegacyApi from "../../src/adapters/http/LegacyApi.ts"
import { defaultEventLimits } from "../../src/domain/LoggedEvents.ts"
import * as OwnerRoutes from "../../src/adapters/http/OwnerRoutes.ts"
import * as Mailer from "../../src/adapters/notify/Mailer.ts"
import * as Certificates from "../../src/adapters/net/Certificates.ts"
import { layerHttpHandoff } from "../../src/adapters/net/ConnectionRouter.ts"
import * as PlainListener from "../../src/adapters/net/PlainListener.ts"
import * as TlsListener from "../../src/adapters/net/TlsListener.ts"
import type { Backend, Storage } from "./backends.ts"
import { backends, storeLayer } from "./backends.ts"
import { HttpServer } from "effect/http"
import { inlineProjections } from "../../src/eventstore/projections/Inline.ts"
import * as PinHistory from "../../src/eventstore/projections/PinHistory.ts"

/** A self-signed certificate, made once per test file. */
let certificate: Promise<Certificates.Certificate> | undefined
const certificateOnce = () =>
  (certificate ??= Effect.acquireUseRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), "pinledger-cert-"))),
    (dataDir) => Certificates.load({ dataDir }),
    (dataDir) => Effect.promise(() => rm(dataDir, { recursive: true, force: true }))
  ).pipe(Effect.runPromise))

export interface RunningServer {
  readonly plainPort: number
  readonly tlsPort: number
  /** Runs an effect with the server's services (directory, store, SQL). */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Directory.Directory | Layer.Success<ReturnType<typeof storeLayer>>>) => Promise<A>
  readonly close: () => Promise<void>
}

/** What else a test may choose about the server. */
export interface ServerOptions {
  /** How the sessions mail (password reset, address confirmation); the log by default. */
  readonly mailer?: Layer.Layer<Mailer.Mailer, Mailer.MailError>
  /** The clock of the sessions and HTTP routes (token expiry, the throttle); the real one by default. */
  readonly clock?: Clock.Clock
  /** The Blynk IoT API's limits (its `logEvent` limits are the actors' `events`). */
  readonly external?: Partial<Pick<ExternalApi.ExternalApiSettings, "batch" | "exportMaxRows">>
  /** How long an owner API session lasts (PINLEDGER_API_SESSION_MINUTES); a day by default. */
  readonly apiSessionMinutes?: number
}

/**
 * The whole Blynk server in this process, on free ports of 127.0.0.1, on a test storage: the same
 * layers as `src/main.ts` with settings chosen by the test.
 */
export const startBlynkServer = async (
  storage: Storage,
  settings: Partial<SessionEnv.SessionSettings> = {},
  throttle: ThrottleSettings = { maxFailures: 1000, windowMs: 600_000, blockMs: 600_000 },
  actors: UserActorOptions = {},
  options: ServerOptions = {}
): Promise<RunningServer> => {
  const { cert, key } = await certificateOnce()
  const scope = Effect.runSync(Scope.make())
  const Store = storeLayer(storage, { inline: inlineProjections })
  const Sessions = Layer.merge(BlynkEndpoints.layer, AccountFollower.layer()).pipe(
    Layer.provideMerge(SessionEnv.layer({
      messageQuota: 100,
      hardwareIdleSeconds: 10,
      appIdleSeconds: 300,
      registration: "open",
      notifyIntervalSeconds: 5,
      resetTokenMinutes: 60,
      verifyTokenHours: 48,
      publicUrl: "https://localhost:9443",
      ...settings
    })),
    Layer.provide(options.mailer ?? Mailer.layerLog),
    Layer.provideMerge(Directory.layerWith(actors)),
    Layer.provideMerge(Throttle.layer(throttle))
  )
  const Listeners = Layer.unwrap(Effect.gen(function*() {
    const endpoints = yield* BlynkEndpoints.BlynkEndpoints
    return Layer.merge(
      PlainListener.layerWith({ port: 0, host: "127.0.0.1", hardware: endpoints.hardware }),
      TlsListener.layerWith({ port: 0, host: "127.0.0.1", cert, key, hardware: endpoints.hardware, app: endpoints.app })
    )
  }))
  const publicUrl = settings.publicUrl ?? "https://localhost:9443"
  const Routes = Layer.mergeAll(
    HealthRoute,
    VerifyEmailRoute,
    MetricsRoute,
    LegacyApi.layer({ publicUrl }),
    ExternalApi.layer({
      publicUrl,
      batch: options.external?.batch ?? defaultBatchLimits,
      events: actors.events ?? defaultEventLimits,
      exportMaxRows: options.external?.exportMaxRows ?? 100_000
    }),
    OwnerRoutes.layer({ sessionMinutes: options.apiSessionMinutes ?? 1440 })
  )
  const All = HttpRouter.serve(Routes, { disableLogger: true, disableListenLog: true }).pipe(
    Layer.provideMerge(Listeners),
    Layer.provideMerge(Sessions),
    // The pin history follows the log as in the server (GET_ENHANCED_GRAPH_DATA reads it).
    Layer.merge(PinHistory.layer({ pollInterval: "200 millis" })),
    Layer.provide(layerHttpHandoff),
    Layer.provide(ExportFiles.layer),
    Layer.provide(NodeHttpServer.layerHttpServices),
    Layer.provideMerge(Store),
    Layer.provide(options.clock === undefined ? Layer.empty : Layer.succeed(Clock.Clock, options.clock))
  )
  const context = await Effect.runPromise(Layer.buildWithScope(All, scope))
  const http = Context.get(context, HttpServer.HttpServer)
  const tls = Context.get(context, TlsListener.TlsListener)
  const plainPort = http.address._tag === "UnixPathAddress" ? 0 : http.address.port
  return {
    plainPort,
    tlsPort: tls.port,
    run: (effect) => Effect.runPromise(Effect.provideContext(effect, context)),
    close: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** A fresh test storage (PGlite unless another backend is given), kept until `release`, which also removes it. */
export const openStorage = async (backend: Backend = backends[0]!) => {
  const scope = Effect.runSync(Scope.make())
  const storage = await Effect.runPromise(Scope.provide(backend.storage, scope).pipe(Effect.orDie))
  return { storage, release: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** `startBlynkServer` on a fresh storage of its own; `close` also removes the storage. */
export const startOnFreshStorage = async (
  settings: Partial<SessionEnv.SessionSettings> = {},
  backend: Backend = backends[0]!
): Promise<RunningServer> => {
  const { storage, release } = await openStorage(backend)
  const server = await startBlynkServer(storage, settings)
  return { ...server, close: () => server.close().then(release) }
}
