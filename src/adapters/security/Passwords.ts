import { Effect } from "effect"
import { createHash, randomBytes, scrypt, timingSafeEqual } from "node:crypto"

/**
 * What a Blynk app sends as the password (protocol.md §6.3): Base64(SHA-256(password ‖
 * SHA-256(lower-case e-mail))). The CLI computes it so that accounts it makes accept app logins.
 */
export const clientPasswordHash = (email: string, password: string): string => {
  const emailDigest = createHash("sha256").update(email.trim().toLowerCase(), "utf8").digest()
  return createHash("sha256").update(Buffer.concat([Buffer.from(password, "utf8"), emailDigest])).digest("base64")
}

// scrypt cost: N = 2^15, r = 8, p = 1, 32 MiB (about 110 ms of one core on the 2-core CI machine,
// bench/security.ts): slow for a guesser, fine for a login; the login throttle bounds what one
// address can make the server spend on it.
const N = 32768
const r = 8
const p = 1
const keyLength = 32

const derive = (secret: string, salt: Buffer, n: number, rr: number, pp: number) =>
  Effect.callback<Buffer, Error>((resume) => {
    scrypt(secret, salt, keyLength, { N: n, r: rr, p: pp, maxmem: 256 * n * rr }, (error, key) =>
      resume(error ? Effect.fail(error) : Effect.succeed(key)))
  })

/** The stored form, `scrypt$N$r$p$salt$key` (Base64): never the client's hash itself. */
export const hashPassword = (clientHash: string) =>
  Effect.gen(function*() {
    const salt = randomBytes(16)
    const key = yield* derive(clientHash, salt, N, r, p)
    return `scrypt$${N}$${r}$${p}$${salt.toString("base64")}$${key.toString("base64")}`
  }).pipe(Effect.orDie)

/**
 * Stands in for the stored hash of an account that does not exist: a random key no secret
 * derives to, at the current cost, so checking against it takes as long as a real check.
 */
const nobody = `scrypt$${N}$${r}$${p}$${randomBytes(16).toString("base64")}$${randomBytes(keyLength).toString("base64")}`

/**
 * Compares in constant time; a malformed stored hash never matches. With no stored hash (no such
 * account) it derives all the same and answers false, so that case is not told apart by time.
 */
export const verifyPassword = (clientHash: string, stored: string | undefined) =>
  Effect.gen(function*() {
    const [scheme, n, rr, pp, salt, key] = (stored ?? nobody).split("$")
    if (scheme !== "scrypt" || !n || !rr || !pp || !salt || !key) return false
    const expected = Buffer.from(key, "base64")
    const actual = yield* derive(clientHash, Buffer.from(salt, "base64"), Number(n), Number(rr), Number(pp))
    return stored !== undefined && actual.length === expected.length && timingSafeEqual(actual, expected)
  }).pipe(Effect.catch(() => Effect.succeed(false)))

/** A device, share or clone token: 24 random bytes, URL-safe Base64, 32 characters (§4.4). */
export const newToken = (): string => randomBytes(24).toString("base64url")
