import { describe, expect, it } from "@effect/vitest"
import { Context, Effect, Layer, Queue } from "effect"
import { generate } from "selfsigned"
import { X509Certificate } from "node:crypto"
import { mkdtemp, rename, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"
import * as Certificates from "../../../src/adapters/net/Certificates.ts"
import * as CertificateReloader from "../../../src/adapters/net/CertificateReloader.ts"
import * as TlsListener from "../../../src/adapters/net/TlsListener.ts"

interface Pair {
  readonly cert: string
  readonly key: string
  readonly fingerprint: string
}

/** A fresh self-signed certificate for `localhost` (EC, so that making one is quick). */
const makePair = (name: string) =>
  Effect.promise(async (): Promise<Pair> => {
    const made = await generate([{ name: "commonName", value: name }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      extensions: [{ name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }] }]
    })
    return { cert: made.cert, key: made.private, fingerprint: new X509Certificate(made.cert).fingerprint256 }
  })

/** A temporary directory, removed with the scope. */
const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "pinledger-certreload-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** Replaces a file the way editors and certbot do: a new file renamed over the old one. */
const replace = (path: string, text: string) =>
  Effect.promise(async () => {
    await writeFile(`${path}.new`, text)
    await rename(`${path}.new`, path)
  })

/** Writes a pair into the files, key first (so a reload may well see the new key with the old certificate for a moment). */
const install = (files: Certificates.CertificateFiles, pair: Pick<Pair, "cert" | "key">) =>
  Effect.andThen(replace(files.key, pair.key), replace(files.cert, pair.cert))

/**
 * A TLS listener started with `pair` whose app connections are echoed back, and a reloader on
 * `files`; every reload outcome lands in the returned queue.
 */
const serve = (pair: Pair, files: Certificates.CertificateFiles, options: { watch: boolean; signal?: boolean }) =>
  Effect.gen(function*() {
    const outcomes = yield* Queue.unbounded<CertificateReloader.ReloadOutcome>()
    const echo = (socket: Tls.TLSSocket) => {
      socket.on("data", (d: Buffer) => socket.write(d))
      socket.resume()
    }
    const reloader = CertificateReloader.layer({
      files,
      watch: options.watch,
      debounce: "50 millis",
      onReload: (outcome) => void Queue.offerUnsafe(outcomes, outcome)
    })
    const context = yield* Layer.build(
      (options.signal ? CertificateReloader.reloadOnSignal("SIGHUP") : Layer.empty).pipe(
        Layer.provideMerge(reloader),
        Layer.provideMerge(TlsListener.layer({ port: 0, host: "127.0.0.1", cert: pair.cert, key: pair.key, app: echo }))
      )
    )
    return {
      port: Context.get(context, TlsListener.TlsListener).port,
      reloader: Context.get(context, CertificateReloader.CertificateReloader),
      outcomes
    }
  })

/** The next outcome that is not "Unchanged" (a change event for a file that was not changed). */
const nextOutcome = (outcomes: Queue.Queue<CertificateReloader.ReloadOutcome>) =>
  Queue.take(outcomes).pipe(Effect.repeat({ until: (outcome) => outcome._tag !== "Unchanged" }))

/** Waits until a reload has put the certificate with `fingerprint` in use, whatever failed on the way. */
const reloadedTo = (outcomes: Queue.Queue<CertificateReloader.ReloadOutcome>, fingerprint: string) =>
  Queue.take(outcomes).pipe(
    Effect.repeat({ until: (outcome) => outcome._tag === "Reloaded" && outcome.fingerprint === fingerprint })
  )

interface Connection {
  readonly fingerprint: string
  /** Sends `text` and resolves with what the server echoes. */
  readonly echo: (text: string) => Effect.Effect<string, Error>
}

/** Opens a TLS connection (closed with the scope) and reads the server's certificate fingerprint. */
const connect = (port: number) =>
  Effect.acquireRelease(
    Effect.callback<Tls.TLSSocket, Error>((resume) => {
      const socket = Tls.connect({ host: "127.0.0.1", port, servername: "localhost", rejectUnauthorized: false })
      socket.once("secureConnect", () => resume(Effect.succeed(socket)))
      socket.once("error", (error) => resume(Effect.fail(error)))
    }),
    (socket) => Effect.sync(() => socket.destroy())
  ).pipe(
    Effect.map((socket): Connection => ({
      fingerprint: socket.getPeerCertificate().fingerprint256,
      echo: (text) =>
        Effect.callback<string, Error>((resume) => {
          let received = ""
          const onData = (d: Buffer) => {
            received += d.toString("latin1")
            if (received.length < text.length) return
            socket.off("data", onData)
            socket.off("error", onError)
            resume(Effect.succeed(received))
          }
          const onError = (error: Error) => resume(Effect.fail(error))
          socket.on("data", onData)
          socket.once("error", onError)
          socket.write(text)
        })
    }))
  )

const configured = (dir: string): Certificates.CertificateFiles =>
  Certificates.files({ certFile: join(dir, "fullchain.pem"), keyFile: join(dir, "privkey.pem"), dataDir: dir })

describe("TLS certificate reload", () => {
  it.live("uses the new certificate for new connections once its files are replaced; open connections stay", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const files = configured(dir)
      const a = yield* makePair("A")
      const b = yield* makePair("B")
      yield* install(files, a)
      const server = yield* serve(a, files, { watch: true })

      const before = yield* connect(server.port)
      expect(before.fingerprint).toBe(a.fingerprint)
      expect(yield* before.echo("hello")).toBe("hello")

      yield* install(files, b)
      yield* reloadedTo(server.outcomes, b.fingerprint)

      const after = yield* connect(server.port)
      expect(after.fingerprint).toBe(b.fingerprint)
      // The connection made before the reload is still open and still served.
      expect(yield* before.echo("still there")).toBe("still there")
    }))

  it.live("reloads the generated certificate's files on SIGHUP, through the handler it installs and removes", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      // The self-signed certificate the server makes at first start, in <dataDir>/tls.
      const generated = yield* Certificates.load({ dataDir })
      const files = Certificates.files({ dataDir })
      expect(files.cert).toBe(join(Certificates.generatedDir(dataDir), "cert.pem"))
      const b = yield* makePair("B")
      const before = process.listeners("SIGHUP")
      const handlers = yield* Effect.scoped(Effect.gen(function*() {
        // No file watching here: only the signal can reload.
        const server = yield* serve({ ...generated }, files, { watch: false, signal: true })
        const added = process.listeners("SIGHUP").filter((listener) => !before.includes(listener))
        expect(added).toHaveLength(1)
        expect((yield* connect(server.port)).fingerprint).toBe(generated.fingerprint)

        yield* install(files, b)
        // What a real SIGHUP would run, without signalling the test process.
        added[0]!("SIGHUP")
        const outcome = yield* Queue.take(server.outcomes)
        expect(outcome).toMatchObject({ _tag: "Reloaded", trigger: "SIGHUP", fingerprint: b.fingerprint })
        expect((yield* connect(server.port)).fingerprint).toBe(b.fingerprint)
        return process.listeners("SIGHUP").length
      }))
      expect(handlers).toBe(before.length + 1)
      // Removed with the server.
      expect(process.listeners("SIGHUP")).toEqual(before)
    }))

  it.live("keeps the certificate in use when the new key is invalid, and takes the next valid pair", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const files = configured(dir)
      const a = yield* makePair("A")
      const b = yield* makePair("B")
      yield* install(files, a)
      const server = yield* serve(a, files, { watch: true })

      // A half-written key file.
      yield* replace(files.key, b.key.slice(0, b.key.length / 2))
      const kept = yield* nextOutcome(server.outcomes)
      expect(kept._tag).toBe("Kept")
      expect(kept._tag === "Kept" && kept.error.message).toContain("PINLEDGER_TLS_KEY")
      expect((yield* connect(server.port)).fingerprint).toBe(a.fingerprint)

      // SIGHUP's entry point says the same and keeps A too.
      expect((yield* server.reloader.reload("SIGHUP"))._tag).toBe("Kept")
      expect((yield* connect(server.port)).fingerprint).toBe(a.fingerprint)

      // Once the files hold a whole pair again, it is used.
      yield* install(files, b)
      yield* reloadedTo(server.outcomes, b.fingerprint)
      expect((yield* connect(server.port)).fingerprint).toBe(b.fingerprint)
    }))
})
