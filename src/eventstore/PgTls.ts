import { Result } from "effect"
import type { ConnectionOptions } from "node:tls"

/** libpq's `sslmode` values. */
export const sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const
export type SslMode = typeof sslModes[number]

/** How a PostgreSQL URL asks for TLS, as options for `PgClient.layer`. */
export interface PgTls {
  /** The URL's `sslmode`, if it has one. */
  readonly sslmode: SslMode | undefined
  /**
   * `PgClient.layer`'s `ssl`. `undefined` leaves TLS to @effect/sql-pg's own reading of the URL:
   * no TLS without `sslmode`; with `prefer` or `allow`, TLS when the server offers it (verified
   * against the system CAs) and plaintext when it does not.
   */
  readonly ssl: false | ConnectionOptions | undefined
  /**
   * `sslrootcert`: a PEM file whose certificates are trusted instead of the system CAs. Only
   * `verify-ca` and `verify-full` use it; its contents go into `ssl.ca`.
   */
  readonly rootCertFile: string | undefined
}

const isSslMode = (value: string): value is SslMode => (sslModes as ReadonlyArray<string>).includes(value)

/**
 * Reads `sslmode` and `sslrootcert` from a PostgreSQL URL (libpq's meaning, except that `prefer`
 * and `allow` are left to the client):
 * - none: no TLS, as before `sslmode` was read;
 * - `disable`: no TLS;
 * - `allow`, `prefer`: @effect/sql-pg's behaviour (TLS first, verified against the system CAs;
 *   plaintext if the server has no TLS);
 * - `require`: TLS without certificate checks; a server without TLS is an error;
 * - `verify-ca`: TLS, the certificate must chain to `sslrootcert` (else the system CAs);
 * - `verify-full`: as `verify-ca`, and the certificate must name the host connected to.
 * `sslrootcert=system` means the system CAs, as in libpq. Fails with a message (that never
 * repeats the URL, which may hold a password) on a URL that cannot be parsed or an unknown `sslmode`.
 */
export const fromUrl = (url: string): Result.Result<PgTls, string> => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return Result.fail("DATABASE_URL is not a valid URL (postgres://user:password@host:port/database?sslmode=…)")
  }
  const mode = parsed.searchParams.get("sslmode")
  const rootCert = parsed.searchParams.get("sslrootcert")
  const rootCertFile = rootCert === null || rootCert === "" || rootCert === "system" ? undefined : rootCert
  if (mode === null) return Result.succeed({ sslmode: undefined, ssl: undefined, rootCertFile: undefined })
  if (!isSslMode(mode)) {
    return Result.fail(`unknown sslmode "${mode}" in DATABASE_URL: use ${sslModes.join(", ")}`)
  }
  switch (mode) {
    case "disable":
      return Result.succeed({ sslmode: mode, ssl: false, rootCertFile: undefined })
    case "allow":
    case "prefer":
      return Result.succeed({ sslmode: mode, ssl: undefined, rootCertFile: undefined })
    case "require":
      return Result.succeed({ sslmode: mode, ssl: { rejectUnauthorized: false }, rootCertFile: undefined })
    case "verify-ca":
      // The chain is checked; the name in the certificate is not.
      return Result.succeed({ sslmode: mode, ssl: { rejectUnauthorized: true, checkServerIdentity: () => undefined }, rootCertFile })
    case "verify-full":
      return Result.succeed({ sslmode: mode, ssl: { rejectUnauthorized: true }, rootCertFile })
  }
}

/** `tls.ssl` with the root certificates read from `rootCertFile` (PEM text) trusted instead of the system CAs. */
export const withRootCert = (tls: PgTls, pem: string | undefined): PgTls["ssl"] =>
  pem === undefined || typeof tls.ssl !== "object" ? tls.ssl : { ...tls.ssl, ca: pem }

/** Where a PostgreSQL URL points, `host:port`, for messages (never the whole URL: it may hold a password). */
export const target = (url: string): string => {
  try {
    const parsed = new URL(url)
    const host = parsed.searchParams.get("host") ?? (parsed.hostname.replace(/^\[(.*)\]$/, "$1") || "localhost")
    return `${host}:${parsed.searchParams.get("port") ?? (parsed.port || "5432")}`
  } catch {
    return "DATABASE_URL"
  }
}

/** The errors a failure was caused by, outermost first. */
const causes = (error: unknown): ReadonlyArray<{ readonly code?: unknown; readonly message?: unknown }> => {
  const chain: Array<{ readonly code?: unknown; readonly message?: unknown }> = []
  for (let current = error; typeof current === "object" && current !== null && chain.length < 10; current = (current as { cause?: unknown }).cause) {
    chain.push(current)
  }
  return chain
}

const certificateCode = /^(ERR_TLS_CERT_ALTNAME_INVALID|CERT_\w+|UNABLE_TO_\w+|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|HOSTNAME_MISMATCH)$/

/**
 * A message for a failed connection whose cause is TLS (the server has none, its certificate is
 * not accepted, the handshake failed), saying what to change; `undefined` when TLS is not the cause.
 */
export const explainTlsFailure = (error: unknown, tls: PgTls, where: string): string | undefined => {
  const chain = causes(error)
  const mode = tls.sslmode === undefined ? "no sslmode" : `sslmode=${tls.sslmode}`
  if (chain.some((e) => typeof e.message === "string" && /server (refused|does not support) TLS/i.test(e.message))) {
    return `PostgreSQL at ${where} does not accept TLS (SSL) connections, and DATABASE_URL has ${mode}: ` +
      "turn ssl on in the server, or use sslmode=disable (or prefer) in DATABASE_URL"
  }
  const tlsError = chain.find((e) => typeof e.code === "string" && (certificateCode.test(e.code) || /^ERR_(SSL|TLS)_/.test(e.code)))
  if (tlsError === undefined) return undefined
  const detail = `${String(tlsError.code)}: ${String(tlsError.message)}`
  if (!certificateCode.test(String(tlsError.code))) {
    return `the TLS (SSL) handshake with PostgreSQL at ${where} failed (${mode} in DATABASE_URL): ${detail}`
  }
  const trust = tls.rootCertFile === undefined ? "the system CAs" : `sslrootcert (${tls.rootCertFile})`
  const advice = tlsError.code === "ERR_TLS_CERT_ALTNAME_INVALID"
    ? `the certificate does not name ${where.replace(/:\d+$/, "")}: connect by a name it has, or use sslmode=verify-ca to check only the CA`
    : "give the CA that signed it with sslrootcert=<PEM file>, or use sslmode=require to skip the check"
  return `the TLS (SSL) certificate of PostgreSQL at ${where} is not accepted (${mode} in DATABASE_URL, trusting ${trust}; ${detail}): ${advice}`
}
