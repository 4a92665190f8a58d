import { Context, type Duration, Effect, Layer, Queue, Result, Semaphore, Stream } from "effect"
import { type FSWatcher, unwatchFile, watch, watchFile } from "node:fs"
import { dirname, resolve } from "node:path"
import * as Certificates from "./Certificates.ts"
import { TlsListener } from "./TlsListener.ts"

/** What one reload did. */
export type ReloadOutcome =
  /** The pair in the files is in use for new connections from now on. */
  | { readonly _tag: "Reloaded"; readonly trigger: string; readonly fingerprint: string }
  /** The files could not be used (missing, half-written, not PEM, key and certificate apart): the previous pair stays. */
  | { readonly _tag: "Kept"; readonly trigger: string; readonly error: Certificates.CertificateError }
  /** A change was seen in the files' directory, but the files hold what was read last time. */
  | { readonly _tag: "Unchanged"; readonly trigger: string }

export interface CertificateReloaderOptions {
  /** Where the certificate and key are read from (`Certificates.files`). */
  readonly files: Certificates.CertificateFiles
  /** Watch the files and reload when they change. Default true; with false, only `reload` (SIGHUP) does. */
  readonly watch?: boolean | undefined
  /** How long the files must be left alone after a change before they are read. Default 500 ms. */
  readonly debounce?: Duration.Input | undefined
  /** How often the files are also polled, for file systems that report no changes. Default 10 s. */
  readonly pollMillis?: number | undefined
  /** Told after each reload, whatever it did (tests await these). */
  readonly onReload?: ((outcome: ReloadOutcome) => void) | undefined
}

/** Loads the TLS port's certificate again without a restart. */
export class CertificateReloader extends Context.Service<CertificateReloader, {
  /**
   * Reads the files now and, if they hold a valid pair, uses it for new connections (open ones
   * keep theirs); otherwise logs a warning and keeps the pair in use. Never fails. `trigger` is
   * for the log line.
   */
  readonly reload: (trigger: string) => Effect.Effect<ReloadOutcome>
}>()("pinledger/net/CertificateReloader") {}

/**
 * Watches the certificate's files for the life of the layer and reloads them into the TLS
 * listener when they change. Editors and certbot replace files by rename (and Kubernetes swaps a
 * symlinked directory), so it watches the directories that hold them, not the files themselves,
 * and polls the paths too; changes are debounced, and a change that leaves the files as they were
 * is ignored. A pair that cannot be used is logged and the previous one stays: a half-written file
 * is read again on the next change.
 */
export const layer = (options: CertificateReloaderOptions): Layer.Layer<CertificateReloader, never, TlsListener> =>
  Layer.effect(
    CertificateReloader,
    Effect.gen(function*() {
      const listener = yield* TlsListener
      const lock = yield* Semaphore.make(1)
      // What the files held when last read (both texts, or why they could not be read), so that
      // events for other files in the same directories reload nothing. Undefined until the first read.
      let lastSeen: string | undefined

      const attempt = Effect.fn("CertificateReloader.reload")(
        function*(trigger: string, onlyIfChanged: boolean) {
          const read = yield* Effect.result(Certificates.reread(options.files))
          const seen = read._tag === "Success" ? `${read.success.cert}\0${read.success.key}` : `error\0${read.failure.reason}`
          if (onlyIfChanged && lastSeen === seen) return { _tag: "Unchanged", trigger } satisfies ReloadOutcome
          lastSeen = seen
          const applied = read._tag === "Success"
            ? yield* Effect.result(listener.setCertificate(read.success).pipe(Effect.as(read.success.fingerprint)))
            : Result.fail(read.failure)
          if (applied._tag === "Failure") {
            yield* Effect.logWarning(`TLS certificate not reloaded (${trigger}), the previous one stays in use: ${applied.failure.message}`)
            return { _tag: "Kept", trigger, error: applied.failure } satisfies ReloadOutcome
          }
          yield* Effect.logInfo(`TLS certificate reloaded (${trigger}): SHA-256 ${applied.success}, used for new connections`)
          return { _tag: "Reloaded", trigger, fingerprint: applied.success } satisfies ReloadOutcome
        },
        (effect) => effect.pipe(Effect.tap((outcome: ReloadOutcome) => Effect.sync(() => options.onReload?.(outcome))), lock.withPermit)
      )

      if (options.watch !== false) {
        // Until the first change, the files hold what the listener was started with.
        lastSeen = yield* Certificates.reread(options.files).pipe(
          Effect.match({ onSuccess: (pair) => `${pair.cert}\0${pair.key}`, onFailure: () => undefined })
        )
        const changes = yield* Queue.sliding<void>(1)
        const changed = () => void Queue.offerUnsafe(changes, undefined)
        const paths = [...new Set([resolve(options.files.cert), resolve(options.files.key)])]
        for (const directory of new Set(paths.map((path) => dirname(path)))) {
          yield* Effect.acquireRelease(
            Effect.sync((): FSWatcher | undefined => {
              try {
                const watcher = watch(directory, { persistent: false }, changed)
                // The directory went away or cannot be watched any more: polling still sees the files.
                watcher.on("error", () => watcher.close())
                return watcher
              } catch {
                return undefined
              }
            }),
            (watcher) => Effect.sync(() => watcher?.close())
          ).pipe(
            Effect.tap((watcher) =>
              watcher === undefined
                ? Effect.logWarning(`cannot watch ${directory} for certificate changes; the files are polled instead, and SIGHUP reloads them`)
                : Effect.void
            )
          )
        }
        for (const path of paths) {
          yield* Effect.acquireRelease(
            Effect.sync(() => watchFile(path, { persistent: false, interval: options.pollMillis ?? 10_000 }, changed)),
            () => Effect.sync(() => unwatchFile(path, changed))
          )
        }
        yield* Stream.fromQueue(changes).pipe(
          Stream.debounce(options.debounce ?? "500 millis"),
          Stream.runForEach(() => attempt("files changed", true)),
          Effect.forkScoped
        )
      }

      return CertificateReloader.of({ reload: (trigger) => attempt(trigger, false) })
    })
  )

/**
 * Reloads the certificate whenever the process gets `signal` (SIGHUP), for the life of the layer;
 * the handler is removed when the layer closes. While it is there, the signal no longer ends the
 * process.
 */
export const reloadOnSignal = (signal: NodeJS.Signals): Layer.Layer<never, never, CertificateReloader> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const { reload } = yield* CertificateReloader
    const signals = yield* Queue.sliding<void>(1)
    const handler = () => void Queue.offerUnsafe(signals, undefined)
    yield* Effect.acquireRelease(
      Effect.sync(() => process.on(signal, handler)),
      () => Effect.sync(() => process.off(signal, handler))
    )
    yield* Queue.take(signals).pipe(Effect.flatMap(() => reload(signal)), Effect.forever, Effect.forkScoped)
  }))
