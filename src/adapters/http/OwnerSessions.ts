import { Clock, Context, Effect, Layer, Redacted } from "effect"
import { HttpServerRequest } from "effect/http/HttpServerRequest"
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto"
import { Directory } from "../../actors/Directory.ts"
import { Throttle } from "../../actors/Throttle.ts"
import { normalizeEmail } from "../../domain/Account.ts"
import { OwnerLoggedIn } from "../../domain/Access.ts"
import { accountStream } from "../../domain/Streams.ts"
import { readAccount } from "../accounts/AccountOps.ts"
import { checkPassword } from "../accounts/PasswordLogin.ts"
import { clientPasswordHash } from "../security/Passwords.ts"
import { addressOf } from "./LegacyHttp.ts"
import { apiActor, Authentication, Caller, callerMetadata, type CallerInfo, TooManyFailures, Unauthenticated } from "./OwnerApi.ts"

/**
 * Who may use the owner API: the account's owner, by its e-mail and password (what the app logs
 * in with). `POST /api/v1/login` opens a session, a random bearer token of which only the digest
 * is kept (in this process: a restart ends every session); HTTP Basic checks the password on
 * first use and remembers that it did, keyed by an HMAC of the credentials, for as long as the
 * account's stored password hash stays the same, so a script does not pay for scrypt (~110 ms of
 * CPU) on every request. A password change ends both.
 *
 * Throttled as app logins are (issue 4): every failed password check counts towards the address's
 * `login` throttle, and a blocked address is refused before any check, right password or not. A
 * successful check is an `OwnerLoggedIn` event in the account's `access-` stream, with the
 * address, committed before the answer.
 */

export interface OwnerSessionSettings {
  /** How long a bearer session lasts (PINLEDGER_API_SESSION_MINUTES). */
  readonly sessionMinutes: number
  /** Sessions and remembered Basic checks kept at most (each); the oldest go first. */
  readonly maxEntries?: number | undefined
}

export interface LoginInput {
  readonly email: string
  readonly password: string
  readonly appName?: string | undefined
}

export interface Opened {
  readonly token: string
  readonly expiresAt: number
  readonly caller: CallerInfo
}

export class OwnerSessions extends Context.Service<OwnerSessions, {
  /** Checks the password and opens a bearer session. */
  readonly login: (input: LoginInput, address: string) => Effect.Effect<Opened, Unauthenticated | TooManyFailures>
  /** The caller of a bearer token, while its session lasts and the password is the one it began with. */
  readonly bearer: (token: string, address: string) => Effect.Effect<CallerInfo, Unauthenticated>
  /** The caller of HTTP Basic credentials (e-mail and password, app `Blynk`). */
  readonly basic: (email: string, password: string, address: string) => Effect.Effect<CallerInfo, Unauthenticated | TooManyFailures>
  readonly logout: (token: string) => Effect.Effect<void>
}>()("pinledger/adapters/http/OwnerSessions") {}

/** Whom a session or a remembered Basic check stands for, and the password hash it was checked against. */
interface Grant {
  readonly stream: string
  readonly email: string
  readonly appName: string
  readonly session: string
  readonly passwordHash: string
}

const BLOCKED = "too many failed logins from this address: try again later"
const WRONG = "wrong e-mail, app name or password"
const ENDED = "this session is over (it expired, logged out, or the password changed since): log in again"
const NO_CREDENTIALS = "log in first: send `Authorization: Bearer <token>` (POST /api/v1/login) or HTTP Basic with the account's e-mail and password"

const digest = (token: string) => createHash("sha256").update(token, "utf8").digest("hex")

/** A Map that keeps at most `max` entries, dropping the oldest (and, first, those `stale` says are). */
const remember = <V>(map: Map<string, V>, key: string, value: V, max: number, stale: (value: V) => boolean) => {
  if (map.size >= max) for (const [k, v] of map) if (stale(v)) map.delete(k)
  for (const k of map.keys()) {
    if (map.size < max) break
    map.delete(k)
  }
  map.set(key, value)
}

export const layer = (settings: OwnerSessionSettings): Layer.Layer<OwnerSessions, never, Directory | Throttle> =>
  Layer.effect(
    OwnerSessions,
    Effect.gen(function*() {
      const context = yield* Effect.context<Directory | Throttle>()
      const directory = yield* Directory
      const throttle = yield* Throttle
      const max = settings.maxEntries ?? 10_000
      const sessionMs = settings.sessionMinutes * 60_000
      const sessions = new Map<string, Grant & { readonly expiresAt: number }>()
      const checked = new Map<string, Grant>()
      // Known to this process only: the remembered checks are worthless anywhere else.
      const hmacKey = randomBytes(32)

      // The account's actor failing is the server's fault, not the caller's: a 500.
      const account = (stream: string) => readAccount(stream).pipe(Effect.provideContext(context), Effect.orDie)

      /** The password check: a failure counts, a success is recorded in the account's access stream. */
      const check = (input: LoginInput, address: string) =>
        Effect.gen(function*() {
          const email = normalizeEmail(input.email)
          const appName = input.appName ?? "Blynk"
          const stream = accountStream(email, appName)
          const session = `api-${randomUUID()}`
          const now = yield* Clock.currentTimeMillis
          const checked = yield* checkPassword({
            stream,
            email,
            clientHash: clientPasswordHash(email, input.password),
            address,
            metadata: callerMetadata({ email, session, address }, now)
          }).pipe(Effect.provideContext(context), Effect.orDie)
          switch (checked._tag) {
            case "Blocked": return yield* new TooManyFailures({ message: BLOCKED })
            // One answer for both, so it does not tell whether the e-mail has an account.
            case "UnknownAccount":
            case "WrongPassword": return yield* new Unauthenticated({ message: WRONG })
            case "Unconfirmed":
              return yield* new Unauthenticated({ message: "the account's address is not confirmed yet: open the link mailed at registration" })
          }
          const found = checked.account
          const actor = yield* directory.actor(stream)
          yield* actor.ref.ask<void, never>((reply) => ({
            _tag: "RecordAccess",
            event: new OwnerLoggedIn({ via: "api", remote: address }),
            by: { session, remote: address },
            actor: apiActor(email),
            reply
          })).pipe(Effect.orDie)
          return { stream, email: found.email, appName: found.appName, session, passwordHash: found.passwordHash } satisfies Grant
        })

      /** Whether the grant still holds: the account's password is the one it was checked against. */
      const holds = (grant: Grant) => Effect.map(account(grant.stream), (found) => found?.passwordHash === grant.passwordHash)

      const callerOf = (grant: Grant, address: string): CallerInfo => ({
        email: grant.email,
        appName: grant.appName,
        stream: grant.stream,
        session: grant.session,
        address
      })

      const login = (input: LoginInput, address: string) =>
        Effect.gen(function*() {
          const grant = yield* check(input, address)
          const token = randomBytes(32).toString("base64url")
          const now = yield* Clock.currentTimeMillis
          const expiresAt = now + sessionMs
          remember(sessions, digest(token), { ...grant, expiresAt }, max, (s) => s.expiresAt <= now)
          return { token, expiresAt, caller: callerOf(grant, address) } satisfies Opened
        })

      const bearer = (token: string, address: string) =>
        Effect.gen(function*() {
          const key = digest(token)
          const session = sessions.get(key)
          const now = yield* Clock.currentTimeMillis
          if (session === undefined || now >= session.expiresAt || !(yield* holds(session))) {
            sessions.delete(key)
            return yield* new Unauthenticated({ message: ENDED })
          }
          return callerOf(session, address)
        })

      const basic = (email: string, password: string, address: string) =>
        Effect.gen(function*() {
          if (yield* throttle.blocked("login", address)) return yield* new TooManyFailures({ message: BLOCKED })
          const key = createHmac("sha256", hmacKey).update(`Blynk\0${normalizeEmail(email)}\0${password}`, "utf8").digest("hex")
          const known = checked.get(key)
          if (known !== undefined && (yield* holds(known))) return callerOf(known, address)
          checked.delete(key)
          const grant = yield* check({ email, password }, address)
          remember(checked, key, grant, max, () => false)
          return callerOf(grant, address)
        })

      const logout = (token: string) => Effect.sync(() => void sessions.delete(digest(token)))

      return { login, bearer, basic, logout }
    })
  )

/**
 * The `Authentication` middleware of OwnerApi.ts: a bearer token, else HTTP Basic. The schemes
 * are tried in that order and the last refusal is the answer, so the Basic handler also answers
 * for a refused bearer token and for a request without credentials.
 */
export const authenticationLayer: Layer.Layer<Authentication, never, OwnerSessions> = Layer.effect(
  Authentication,
  Effect.gen(function*() {
    const sessions = yield* OwnerSessions
    return {
      bearer: (httpEffect, { credential }) =>
        Effect.gen(function*() {
          const token = Redacted.value(credential)
          if (token === "") return yield* new Unauthenticated({ message: NO_CREDENTIALS })
          const caller = yield* sessions.bearer(token, addressOf(yield* HttpServerRequest))
          return yield* Effect.provideService(httpEffect, Caller, caller)
        }),
      basic: (httpEffect, { credential }) =>
        Effect.gen(function*() {
          const request = yield* HttpServerRequest
          const scheme = (request.headers.authorization ?? "").trim().split(/\s+/)[0]!.toLowerCase()
          if (scheme === "bearer") return yield* new Unauthenticated({ message: ENDED })
          if (scheme !== "basic") return yield* new Unauthenticated({ message: NO_CREDENTIALS })
          const caller = yield* sessions.basic(credential.username, Redacted.value(credential.password), addressOf(request))
          return yield* Effect.provideService(httpEffect, Caller, caller)
        })
    }
  })
)
