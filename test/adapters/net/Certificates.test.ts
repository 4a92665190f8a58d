import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { X509Certificate } from "node:crypto"
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as Tls from "node:tls"
import * as Certificates from "../../../src/adapters/net/Certificates.ts"

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "pinledger-tls-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** Serves `cert`/`key` on a TLS port and connects with `ca` as the only trusted CA; resolves with the verification result. */
const verify = (served: { cert: string; key: string }, ca: string, connectTo: { host: string; servername?: string }) =>
  Effect.callback<{ authorized: boolean; error?: string }>((resume) => {
    const server = Tls.createServer({ cert: served.cert, key: served.key }, (socket) => socket.end())
    server.listen(0, connectTo.host, () => {
      const { port } = server.address() as AddressInfo
      const client = Tls.connect({ host: connectTo.host, port, ca, ...(connectTo.servername ? { servername: connectTo.servername } : {}) })
      const done = (result: { authorized: boolean; error?: string }) => {
        client.destroy()
        server.close(() => resume(Effect.succeed(result)))
      }
      client.once("secureConnect", () => done({ authorized: client.authorized }))
      client.once("error", (error) => done({ authorized: false, error: error.message }))
    })
  })

describe("TLS certificates", () => {
  it.live("generates a self-signed certificate that verifies as its own CA, and keeps it across starts", () =>
    Effect.gen(function*() {
      const dataDir = yield* tempDir
      const first = yield* Certificates.load({ dataDir, hostnames: ["pinledger.example", "192.0.2.7"] })
      expect(first.origin).toBe("generated")
      const certPath = join(dataDir, "tls", "cert.pem")
      expect(yield* Effect.promise(() => readFile(certPath, "utf8"))).toBe(first.cert)
      expect((yield* Effect.promise(() => stat(join(dataDir, "tls", "key.pem")))).mode & 0o777).toBe(0o600)

      const x509 = new X509Certificate(first.cert)
      expect(x509.checkHost("pinledger.example")).toBe("pinledger.example")
      expect(x509.checkIP("192.0.2.7")).toBe("192.0.2.7")
      expect(x509.checkIP("::1")).toBe("::1")

      const ca = yield* Effect.promise(() => readFile(certPath, "utf8"))
      expect(yield* verify(first, ca, { host: "127.0.0.1", servername: "localhost" })).toEqual({ authorized: true })
      // No SNI for an IP address: the client checks the IP SAN.
      expect(yield* verify(first, ca, { host: "127.0.0.1" })).toEqual({ authorized: true })
      const wrongName = yield* verify(first, ca, { host: "127.0.0.1", servername: "elsewhere.example" })
      expect(wrongName.authorized).toBe(false)
      expect(wrongName.error).toMatch(/altnames/i)

      const second = yield* Certificates.load({ dataDir, hostnames: ["pinledger.example", "192.0.2.7"] })
      expect(second.origin).toBe("reused")
      expect(second.fingerprint).toBe(first.fingerprint)
      expect(second.key).toBe(first.key)

      // A name the kept certificate does not cover makes a new one.
      const third = yield* Certificates.load({ dataDir, hostnames: ["other.example"] })
      expect(third.origin).toBe("generated")
      expect(third.fingerprint).not.toBe(first.fingerprint)
      expect(new X509Certificate(third.cert).checkHost("other.example")).toBe("other.example")
    }), 30_000)

  it.live("uses the PEM files from PINLEDGER_TLS_CERT and PINLEDGER_TLS_KEY when they are set", () =>
    Effect.gen(function*() {
      const made = yield* Certificates.load({ dataDir: yield* tempDir })
      const dir = yield* tempDir
      const certFile = join(dir, "server.crt")
      const keyFile = join(dir, "server.key")
      yield* Effect.promise(() => Promise.all([writeFile(certFile, made.cert), writeFile(keyFile, made.key)]))
      const emptyDataDir = yield* tempDir
      const loaded = yield* Certificates.load({ certFile, keyFile, dataDir: emptyDataDir })
      expect(loaded).toEqual({ cert: made.cert, key: made.key, origin: "files", fingerprint: made.fingerprint })
      // Nothing is generated when files are given.
      const generated = yield* Effect.promise(() => stat(join(emptyDataDir, "tls")).then(() => true, () => false))
      expect(generated).toBe(false)
    }), 30_000)

  it.live("fails with a typed error naming the setting for missing, bad or mismatched files", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const a = yield* Certificates.load({ dataDir: join(dir, "a") })
      const b = yield* Certificates.load({ dataDir: join(dir, "b"), hostnames: ["b.example"] })
      const write = (name: string, text: string) =>
        Effect.promise(() => writeFile(join(dir, name), text)).pipe(Effect.as(join(dir, name)))
      const certA = yield* write("a.crt", a.cert)
      const keyA = yield* write("a.key", a.key)
      const keyB = yield* write("b.key", b.key)
      const garbage = yield* write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")

      const failure = (options: Certificates.CertificateOptions) =>
        Certificates.load(options).pipe(
          Effect.exit,
          Effect.map((exit) => {
            if (Exit.isSuccess(exit)) throw new Error("expected a failure")
            const error = exit.cause.reasons.find((reason) => reason._tag === "Fail")
            if (error?._tag !== "Fail") throw new Error("expected a typed failure")
            expect(error.error).toBeInstanceOf(Certificates.CertificateError)
            return error.error.message
          })
        )

      expect(yield* failure({ dataDir: dir, certFile: join(dir, "missing.crt"), keyFile: keyA })).toMatch(/PINLEDGER_TLS_CERT.*missing\.crt/)
      expect(yield* failure({ dataDir: dir, certFile: certA, keyFile: join(dir, "missing.key") })).toMatch(/PINLEDGER_TLS_KEY/)
      expect(yield* failure({ dataDir: dir, certFile: garbage, keyFile: keyA })).toMatch(/PINLEDGER_TLS_CERT .*is not a PEM certificate/)
      expect(yield* failure({ dataDir: dir, certFile: certA, keyFile: garbage })).toMatch(/PINLEDGER_TLS_KEY .*is not a PEM private key/)
      expect(yield* failure({ dataDir: dir, certFile: certA, keyFile: keyB })).toMatch(/does not belong/)
      expect(yield* failure({ dataDir: dir, certFile: certA })).toMatch(/PINLEDGER_TLS_KEY is not/)
      expect(yield* failure({ dataDir: dir, keyFile: keyA })).toMatch(/PINLEDGER_TLS_CERT is not/)
    }), 30_000)

  it("reads PINLEDGER_TLS_HOSTNAMES as a comma-separated list", () => {
    expect(Certificates.parseHostnames(" a.example, 10.0.0.1 ,,b ")).toEqual(["a.example", "10.0.0.1", "b"])
    expect(Certificates.parseHostnames("")).toEqual([])
    expect(Certificates.namesToCover(["LOCALHOST", "x.example"])).toContain("x.example")
    expect(Certificates.namesToCover(["LOCALHOST"]).filter((n) => n === "localhost")).toHaveLength(1)
  })
})
