import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Layer, Result } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import fc from "fast-check"
import { generate } from "selfsigned"
import { mkdtemp, rm, writeFile } from "node:fs/promises"
import * as Net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"
import * as PgDatabase from "../../src/eventstore/PgDatabase.ts"
import * as PgTls from "../../src/eventstore/PgTls.ts"

const ok = (url: string) => {
  const result = PgTls.fromUrl(url)
  if (Result.isFailure(result)) throw new Error(`expected ${url} to parse: ${result.failure}`)
  return result.success
}

/** Every message in an error's cause chain, outermost first, one a line. */
const messages = (error: unknown): string => {
  const lines: Array<string> = []
  for (let e = error; typeof e === "object" && e !== null && lines.length < 10; e = (e as { cause?: unknown }).cause) {
    lines.push(String((e as { message?: unknown }).message))
  }
  return lines.join("\n")
}

describe("sslmode in DATABASE_URL: the client options", () => {
  it("turns each sslmode into the TLS options PgClient.layer gets", () => {
    const base = "postgres://pinledger:secret@db.example:5433/pinledger"
    // No sslmode: as before, nothing is passed and the client uses no TLS.
    expect(ok(base)).toEqual({ sslmode: undefined, ssl: undefined, rootCertFile: undefined })
    expect(ok(`${base}?sslmode=disable`)).toEqual({ sslmode: "disable", ssl: false, rootCertFile: undefined })
    // prefer and allow are left to the client (TLS first, plaintext if the server has none).
    expect(ok(`${base}?sslmode=prefer`)).toEqual({ sslmode: "prefer", ssl: undefined, rootCertFile: undefined })
    expect(ok(`${base}?sslmode=allow`)).toEqual({ sslmode: "allow", ssl: undefined, rootCertFile: undefined })
    // require: TLS, no certificate check; sslrootcert plays no part.
    expect(ok(`${base}?sslmode=require&sslrootcert=/etc/ca.pem`)).toEqual({ sslmode: "require", ssl: { rejectUnauthorized: false }, rootCertFile: undefined })
    const ca = ok(`${base}?sslmode=verify-ca&sslrootcert=/etc/ca.pem`)
    expect(ca).toMatchObject({ sslmode: "verify-ca", ssl: { rejectUnauthorized: true }, rootCertFile: "/etc/ca.pem" })
    // verify-ca checks the chain only: any host name passes the identity check.
    const caSsl = ca.ssl as Tls.ConnectionOptions
    expect(caSsl.checkServerIdentity?.("somewhere.else", {} as Tls.PeerCertificate)).toBeUndefined()
    const full = ok(`${base}?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem`)
    expect(full).toEqual({ sslmode: "verify-full", ssl: { rejectUnauthorized: true }, rootCertFile: "/etc/ca.pem" })
    // Node's default identity check stays in force for verify-full.
    expect((full.ssl as Tls.ConnectionOptions).checkServerIdentity).toBeUndefined()
    // libpq's sslrootcert=system: the system CAs.
    expect(ok(`${base}?sslmode=verify-full&sslrootcert=system`).rootCertFile).toBeUndefined()
    expect(ok(`${base}?sslmode=verify-full`).rootCertFile).toBeUndefined()
  })

  it("refuses an unknown sslmode or a broken URL, without repeating the URL", () => {
    const bad = PgTls.fromUrl("postgres://u:hunter2@h/db?sslmode=no-verify")
    expect(Result.isFailure(bad) && bad.failure).toMatch(/unknown sslmode "no-verify".*verify-full/)
    const broken = PgTls.fromUrl("hunter2 is not a url")
    expect(Result.isFailure(broken) && broken.failure).toMatch(/not a valid URL/)
    expect(Result.isFailure(broken) && broken.failure).not.toContain("hunter2")
  })

  it("property: TLS exactly from require on, verification exactly for verify-*, sslrootcert only there; other parameters change nothing", () => {
    const word = fc.stringMatching(/^[a-z][a-z0-9_]{0,11}$/)
    const param = fc.tuple(word.filter((w) => w !== "sslmode" && w !== "sslrootcert" && w !== "host" && w !== "port"), fc.string())
    fc.assert(fc.property(
      fc.option(fc.constantFrom(...PgTls.sslModes), { nil: undefined }),
      fc.option(fc.constantFrom("/etc/ssl/ca.pem", "ca file.pem", "system"), { nil: undefined }),
      fc.array(param, { maxLength: 4 }),
      fc.string(),
      (mode, rootCert, extra, password) => {
        const query = new URLSearchParams(extra)
        if (mode !== undefined) query.set("sslmode", mode)
        if (rootCert !== undefined) query.set("sslrootcert", rootCert)
        const url = `postgres://user:${encodeURIComponent(password)}@db.example:5432/db?${query}`
        const tls = ok(url)
        expect(tls.sslmode).toBe(mode)
        const encrypted = mode === "require" || mode === "verify-ca" || mode === "verify-full"
        const verified = mode === "verify-ca" || mode === "verify-full"
        if (mode === undefined || mode === "prefer" || mode === "allow") expect(tls.ssl).toBeUndefined()
        else if (mode === "disable") expect(tls.ssl).toBe(false)
        else expect(typeof tls.ssl).toBe("object")
        if (encrypted) expect((tls.ssl as Tls.ConnectionOptions).rejectUnauthorized).toBe(verified)
        expect(tls.rootCertFile).toBe(verified && rootCert !== undefined && rootCert !== "system" ? rootCert : undefined)
        // The root certificates are added exactly where certificates are checked.
        const withCa = PgTls.withRootCert(tls, "PEM")
        expect(typeof withCa === "object" && withCa.ca).toBe(encrypted ? "PEM" : false)
      }
    ))
  })

  it("property: any other sslmode is refused, naming it", () => {
    fc.assert(fc.property(
      fc.string({ minLength: 1 }).filter((s) => !(PgTls.sslModes as ReadonlyArray<string>).includes(s)),
      (mode) => {
        const result = PgTls.fromUrl(`postgres://u@h/db?sslmode=${encodeURIComponent(mode)}`)
        expect(Result.isFailure(result) && result.failure).toContain(`unknown sslmode "${mode}"`)
      }
    ))
  })

  it("says where the URL points without its password", () => {
    expect(PgTls.target("postgres://u:pw@db.example:6543/x")).toBe("db.example:6543")
    expect(PgTls.target("postgres://u:pw@[::1]/x")).toBe("::1:5432")
    expect(PgTls.target("postgres:///x?host=/run/postgresql")).toBe("/run/postgresql:5432")
    expect(PgTls.target("not a url")).toBe("DATABASE_URL")
  })
})

// A stand-in PostgreSQL on loopback: it answers SSLRequest with N (no TLS) or S and a TLS
// handshake with the given certificate, then answers the startup message with an error saying how
// it was reached. So the TLS side of the client is tested whatever the local PostgreSQL's ssl says.

const sslRequestCode = 80877103

const errorResponse = (text: string) => {
  const fields = Buffer.concat([Buffer.from(`SFATAL\0C28000\0M${text}\0`), Buffer.from([0])])
  const header = Buffer.alloc(5)
  header.write("E", 0, "latin1")
  header.writeInt32BE(fields.length + 4, 1)
  return Buffer.concat([header, fields])
}

/** Waits for one whole length-prefixed message (SSLRequest or startup) and hands it over. */
const onMessage = (socket: Net.Socket | Tls.TLSSocket, handle: (message: Buffer) => void) => {
  let buffered = Buffer.alloc(0)
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    if (buffered.length < 4 || buffered.length < buffered.readInt32BE(0)) return
    socket.off("data", onData)
    handle(buffered)
  }
  socket.on("data", onData)
}

const fakePostgres = (tls: { cert: string; key: string } | undefined) =>
  Effect.acquireRelease(
    Effect.callback<Net.Server>((resume) => {
      const sockets = new Set<Net.Socket>()
      const server = Net.createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => socket.destroy())
        socket.on("close", () => sockets.delete(socket))
        onMessage(socket, (first) => {
          if (first.length !== 8 || first.readInt32BE(4) !== sslRequestCode) {
            return socket.end(errorResponse("fake server: reached in plaintext"))
          }
          if (tls === undefined) {
            socket.write("N")
            return onMessage(socket, () => socket.end(errorResponse("fake server: reached in plaintext")))
          }
          socket.write("S")
          const secure = new Tls.TLSSocket(socket, { isServer: true, cert: tls.cert, key: tls.key })
          secure.on("error", () => socket.destroy())
          onMessage(secure, () => secure.end(errorResponse("fake server: reached over TLS")))
        })
      })
      ;(server as Net.Server & { sockets?: Set<Net.Socket> }).sockets = sockets
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
    }),
    (server) =>
      Effect.callback<void>((resume) => {
        for (const socket of (server as Net.Server & { sockets: Set<Net.Socket> }).sockets) socket.destroy()
        server.close(() => resume(Effect.void))
      })
  ).pipe(Effect.map((server) => (server.address() as Net.AddressInfo).port))

/** A self-signed certificate naming `names` (DNS names, or IP addresses). */
const certificateFor = (names: ReadonlyArray<string>) =>
  Effect.promise(() =>
    generate([{ name: "commonName", value: "fake postgres" }], {
      keyType: "ec",
      curve: "P-256",
      algorithm: "sha256",
      extensions: [{
        name: "subjectAltName",
        altNames: names.map((name) => (Net.isIP(name) !== 0 ? { type: 7 as const, ip: name } : { type: 2 as const, value: name }))
      }]
    })
  ).pipe(Effect.map((made) => ({ cert: made.cert, key: made.private })))

/** Connects through PgDatabase.layer with `url`; the failure's messages (its own first), or "connected". */
const attempt = (url: string) =>
  Effect.scoped(Layer.build(PgDatabase.layer({ url, maxConnections: 1 }))).pipe(
    Effect.exit,
    Effect.map((exit) => (Exit.isSuccess(exit) ? "connected" : messages(Cause.squash(exit.cause))))
  )

const tempFile = (text: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const dir = await mkdtemp(join(tmpdir(), "pinledger-pgtls-"))
      await writeFile(join(dir, "root.pem"), text)
      return dir
    }),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  ).pipe(Effect.map((dir) => join(dir, "root.pem")))

describe("sslmode in DATABASE_URL: against a stand-in server", () => {
  it.live("require: a server without TLS is a clear error; no sslmode, disable and prefer go on in plaintext", () =>
    Effect.gen(function*() {
      const port = yield* fakePostgres(undefined)
      const url = `postgres://pinledger@127.0.0.1:${port}/pinledger`
      const refused = yield* attempt(`${url}?sslmode=require`)
      expect(refused).toMatch(/^PostgreSQL at 127\.0\.0\.1:\d+ does not accept TLS \(SSL\) connections, and DATABASE_URL has sslmode=require/)
      expect(yield* attempt(`${url}?sslmode=verify-full`)).toMatch(/does not accept TLS \(SSL\)/)
      expect(yield* attempt(url)).toContain("fake server: reached in plaintext")
      expect(yield* attempt(`${url}?sslmode=disable`)).toContain("fake server: reached in plaintext")
      expect(yield* attempt(`${url}?sslmode=prefer`)).toContain("fake server: reached in plaintext")
    }))

  it.live("require takes any certificate; verify-full needs one that chains to sslrootcert (or the system CAs) and names the host", () =>
    Effect.gen(function*() {
      const pair = yield* certificateFor(["127.0.0.1"])
      const port = yield* fakePostgres(pair)
      const root = yield* tempFile(pair.cert)
      const url = `postgres://pinledger@127.0.0.1:${port}/pinledger`
      expect(yield* attempt(`${url}?sslmode=require`)).toContain("fake server: reached over TLS")
      const untrusted = yield* attempt(`${url}?sslmode=verify-full`)
      expect(untrusted).toMatch(/^the TLS \(SSL\) certificate of PostgreSQL at 127\.0\.0\.1:\d+ is not accepted \(sslmode=verify-full in DATABASE_URL, trusting the system CAs;/)
      expect(untrusted).toContain("sslrootcert=<PEM file>")
      expect(yield* attempt(`${url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(root)}`)).toContain("fake server: reached over TLS")
      expect(yield* attempt(`${url}?sslmode=verify-ca&sslrootcert=${encodeURIComponent(root)}`)).toContain("fake server: reached over TLS")
      // Without TLS nothing is checked.
      expect(yield* attempt(`${url}?sslmode=disable`)).toContain("fake server: reached in plaintext")
      const missing = yield* attempt(`${url}?sslmode=verify-full&sslrootcert=/nonexistent/root.pem`)
      expect(missing).toMatch(/^cannot read sslrootcert \/nonexistent\/root\.pem \(DATABASE_URL\)/)
    }))

  it.live("verify-ca accepts a certificate for another name; verify-full does not", () =>
    Effect.gen(function*() {
      const pair = yield* certificateFor(["db.example"])
      const port = yield* fakePostgres(pair)
      const root = yield* tempFile(pair.cert)
      const url = `postgres://pinledger@127.0.0.1:${port}/pinledger?sslrootcert=${encodeURIComponent(root)}`
      expect(yield* attempt(`${url}&sslmode=verify-ca`)).toContain("fake server: reached over TLS")
      const misnamed = yield* attempt(`${url}&sslmode=verify-full`)
      expect(misnamed).toMatch(/certificate of PostgreSQL at 127\.0\.0\.1:\d+ is not accepted .*ERR_TLS_CERT_ALTNAME_INVALID/)
      expect(misnamed).toContain("sslmode=verify-ca")
    }))
})

const databaseUrl = process.env.DATABASE_URL
if (databaseUrl) {
  const withMode = (mode: string) => {
    const url = new URL(databaseUrl)
    url.searchParams.set("sslmode", mode)
    return url.toString()
  }

  describe("sslmode in DATABASE_URL: against the local PostgreSQL (ssl = off)", () => {
    it.live("sslmode=disable connects; sslmode=require fails at once, saying the server has no TLS", () =>
      Effect.gen(function*() {
        const one = yield* Effect.gen(function*() {
          const sql = yield* SqlClient
          return yield* sql<{ one: number }>`SELECT 1 AS one`
        }).pipe(Effect.provide(PgDatabase.layer({ url: withMode("disable"), maxConnections: 1 })))
        expect(one).toEqual([{ one: 1 }])
        const ssl = yield* Effect.gen(function*() {
          const sql = yield* SqlClient
          return yield* sql<{ ssl: string }>`SHOW ssl`
        }).pipe(Effect.provide(PgDatabase.layer({ url: withMode("disable"), maxConnections: 1 })))
        // This test is about a server without TLS; one with TLS would connect with require.
        if (ssl[0]?.ssl === "off") {
          expect(yield* attempt(withMode("require"))).toMatch(/does not accept TLS \(SSL\) connections, and DATABASE_URL has sslmode=require/)
        } else {
          expect(yield* attempt(withMode("require"))).toBe("connected")
        }
      }))
  })
}
