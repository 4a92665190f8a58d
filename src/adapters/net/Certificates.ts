import { Effect, Schema } from "effect"
import { generate } from "selfsigned"
import { X509Certificate, createPrivateKey } from "node:crypto"
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises"
import { isIP } from "node:net"
import { hostname } from "node:os"
import { join } from "node:path"

/** The TLS port's certificate could not be read, checked or made. The message names the setting. */
export class CertificateError extends Schema.TaggedError<CertificateError>()("CertificateError", {
  reason: Schema.String
}) {
  override get message() {
    return `TLS certificate: ${this.reason}`
  }
}

/** A certificate chain and its private key, both PEM. */
export interface Certificate {
  readonly cert: string
  readonly key: string
  /** Where it came from, for the start-up log. */
  readonly origin: "files" | "generated" | "reused"
  /** SHA-256 fingerprint of the (first) certificate, `AA:BB:…`. */
  readonly fingerprint: string
}

export interface CertificateOptions {
  /** PINLEDGER_TLS_CERT: PEM certificate (chain) file. */
  readonly certFile?: string | undefined
  /** PINLEDGER_TLS_KEY: PEM private key file. */
  readonly keyFile?: string | undefined
  /** The data directory; a generated certificate lives in `<dataDir>/tls`. */
  readonly dataDir: string
  /** PINLEDGER_TLS_HOSTNAMES: extra names (host names or IP addresses) the generated certificate covers. */
  readonly hostnames?: ReadonlyArray<string> | undefined
}

/** The directory a generated certificate is kept in. */
export const generatedDir = (dataDir: string) => join(dataDir, "tls")

/** Splits PINLEDGER_TLS_HOSTNAMES: comma-separated, blanks ignored. */
export const parseHostnames = (value: string): ReadonlyArray<string> =>
  value.split(",").map((name) => name.trim()).filter((name) => name !== "")

/** The names a generated certificate covers: the loopback names, this machine's name and the configured ones. */
export const namesToCover = (extra: ReadonlyArray<string>): ReadonlyArray<string> => {
  const names = ["localhost", "127.0.0.1", "::1", hostname(), ...extra]
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "")
  return [...new Set(names)]
}

const validityDays = 825
/** A kept certificate that expires sooner than this is made again. */
const renewBeforeMs = 30 * 24 * 60 * 60 * 1000

const errorText = (cause: unknown) => (cause instanceof Error ? cause.message : String(cause))

/** Checks that `cert` and `key` are PEM and belong together; `setting` says which variables to blame. */
const check = (cert: string, key: string, settings: { cert: string; key: string }) =>
  Effect.try({
    try: () => new X509Certificate(cert),
    catch: (cause) => new CertificateError({ reason: `${settings.cert} is not a PEM certificate (${errorText(cause)})` })
  }).pipe(
    Effect.flatMap((x509) =>
      Effect.try({
        try: () => createPrivateKey(key),
        catch: (cause) => new CertificateError({ reason: `${settings.key} is not a PEM private key (${errorText(cause)})` })
      }).pipe(
        Effect.filterOrFail(
          (privateKey) => x509.checkPrivateKey(privateKey),
          () => new CertificateError({ reason: `the key in ${settings.key} does not belong to the certificate in ${settings.cert}` })
        ),
        Effect.as(x509)
      )
    )
  )

const read = (path: string, setting: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) => new CertificateError({ reason: `cannot read ${setting} (${path}): ${errorText(cause)}` })
  })

/** Reads an existing file, or nothing if there is none. */
const readIfPresent = (path: string) =>
  Effect.tryPromise({
    try: () => readFile(path, "utf8").then((text): string | undefined => text, (cause: NodeJS.ErrnoException) => {
      if (cause.code === "ENOENT") return undefined
      throw cause
    }),
    catch: (cause) => new CertificateError({ reason: `cannot read ${path} (PINLEDGER_DATA_DIR): ${errorText(cause)}` })
  })

const covers = (x509: X509Certificate, names: ReadonlyArray<string>) =>
  names.every((name) => (isIP(name) !== 0 ? x509.checkIP(name) !== undefined : x509.checkHost(name) !== undefined))

const generateFor = (names: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: () => {
      const now = new Date()
      return generate([{ name: "commonName", value: `Pinledger ${hostname()}` }], {
        keyType: "rsa",
        keySize: 2048,
        algorithm: "sha256",
        notBeforeDate: new Date(now.getTime() - 60_000),
        notAfterDate: new Date(now.getTime() + validityDays * 24 * 60 * 60 * 1000),
        extensions: [
          { name: "basicConstraints", cA: false, critical: true },
          { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
          { name: "extKeyUsage", serverAuth: true },
          {
            name: "subjectAltName",
            altNames: names.map((name) => (isIP(name) !== 0 ? { type: 7 as const, ip: name } : { type: 2 as const, value: name }))
          }
        ]
      })
    },
    catch: (cause) => new CertificateError({ reason: `cannot generate a self-signed certificate: ${errorText(cause)}` })
  })

/** Writes via a temporary file and a rename, so a crash never leaves half a file. */
const writeAtomically = (path: string, text: string, mode: number) =>
  Effect.tryPromise({
    try: async () => {
      const temporary = `${path}.${process.pid}.tmp`
      await writeFile(temporary, text, { mode })
      await chmod(temporary, mode)
      await rename(temporary, path)
    },
    catch: (cause) => new CertificateError({ reason: `cannot write ${path} (PINLEDGER_DATA_DIR): ${errorText(cause)}` })
  })

const selfSigned = (dataDir: string, extra: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const dir = generatedDir(dataDir)
    const certPath = join(dir, "cert.pem")
    const keyPath = join(dir, "key.pem")
    const names = namesToCover(extra)
    const keptCert = yield* readIfPresent(certPath)
    const keptKey = yield* readIfPresent(keyPath)
    if (keptCert !== undefined && keptKey !== undefined) {
      const kept = yield* check(keptCert, keptKey, { cert: certPath, key: keyPath }).pipe(Effect.option)
      if (
        kept._tag === "Some" && covers(kept.value, names) &&
        new Date(kept.value.validTo).getTime() - Date.now() > renewBeforeMs
      ) {
        return { cert: keptCert, key: keptKey, origin: "reused", fingerprint: kept.value.fingerprint256 } satisfies Certificate
      }
    }
    const made = yield* generateFor(names)
    yield* Effect.tryPromise({
      try: () => mkdir(dir, { recursive: true, mode: 0o700 }),
      catch: (cause) => new CertificateError({ reason: `cannot create ${dir} (PINLEDGER_DATA_DIR): ${errorText(cause)}` })
    })
    yield* writeAtomically(keyPath, made.private, 0o600)
    yield* writeAtomically(certPath, made.cert, 0o644)
    const x509 = yield* check(made.cert, made.private, { cert: certPath, key: keyPath })
    return { cert: made.cert, key: made.private, origin: "generated", fingerprint: x509.fingerprint256 } satisfies Certificate
  })

/** The files the TLS port's certificate and key are read from, with how to name them in messages. */
export interface CertificateFiles {
  readonly cert: string
  readonly key: string
  readonly certLabel: string
  readonly keyLabel: string
}

/** Where `load` takes the certificate from: the configured files, or the generated ones in `<dataDir>/tls`. */
export const files = (options: CertificateOptions): CertificateFiles => {
  const certFile = options.certFile?.trim() ? options.certFile : undefined
  const keyFile = options.keyFile?.trim() ? options.keyFile : undefined
  if (certFile !== undefined && keyFile !== undefined) {
    return { cert: certFile, key: keyFile, certLabel: `PINLEDGER_TLS_CERT (${certFile})`, keyLabel: `PINLEDGER_TLS_KEY (${keyFile})` }
  }
  const dir = generatedDir(options.dataDir)
  return { cert: join(dir, "cert.pem"), key: join(dir, "key.pem"), certLabel: join(dir, "cert.pem"), keyLabel: join(dir, "key.pem") }
}

/**
 * Reads and checks the pair in `files` again, as a reload does: nothing is generated, and a
 * missing, unreadable, invalid or mismatched pair is an error (the caller keeps what it has).
 */
export const reread = (files: CertificateFiles): Effect.Effect<Omit<Certificate, "origin">, CertificateError> =>
  Effect.gen(function*() {
    const readLabelled = (path: string, label: string) =>
      Effect.tryPromise({
        try: () => readFile(path, "utf8"),
        catch: (cause) => new CertificateError({ reason: `cannot read ${label}: ${errorText(cause)}` })
      })
    const cert = yield* readLabelled(files.cert, files.certLabel)
    const key = yield* readLabelled(files.key, files.keyLabel)
    const x509 = yield* check(cert, key, { cert: files.certLabel, key: files.keyLabel })
    return { cert, key, fingerprint: x509.fingerprint256 }
  })

/**
 * The TLS port's certificate: the PEM files named by PINLEDGER_TLS_CERT and PINLEDGER_TLS_KEY if
 * they are set, else a self-signed one kept in `<dataDir>/tls` (made at first start, and again
 * when it no longer covers the configured names or is about to expire).
 */
export const load = (options: CertificateOptions): Effect.Effect<Certificate, CertificateError> =>
  Effect.gen(function*() {
    const certFile = options.certFile?.trim() ? options.certFile : undefined
    const keyFile = options.keyFile?.trim() ? options.keyFile : undefined
    if (certFile === undefined && keyFile === undefined) return yield* selfSigned(options.dataDir, options.hostnames ?? [])
    if (certFile === undefined) return yield* new CertificateError({ reason: "PINLEDGER_TLS_KEY is set but PINLEDGER_TLS_CERT is not: set both or neither" })
    if (keyFile === undefined) return yield* new CertificateError({ reason: "PINLEDGER_TLS_CERT is set but PINLEDGER_TLS_KEY is not: set both or neither" })
    const cert = yield* read(certFile, "PINLEDGER_TLS_CERT")
    const key = yield* read(keyFile, "PINLEDGER_TLS_KEY")
    const x509 = yield* check(cert, key, { cert: `PINLEDGER_TLS_CERT (${certFile})`, key: `PINLEDGER_TLS_KEY (${keyFile})` })
    return { cert, key, origin: "files", fingerprint: x509.fingerprint256 } satisfies Certificate
  })
