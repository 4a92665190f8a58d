import { ByteSize, Data, Effect, Option, Schema } from "effect"
import { HttpServerResponse } from "effect/http"
import { MaxBodySize } from "effect/http/HttpIncomingMessage"
import type { HttpServerError } from "effect/http/HttpServerError"
import type { HttpServerRequest } from "effect/http/HttpServerRequest"
import { randomUUID } from "node:crypto"
import { Directory } from "../../actors/Directory.ts"
import type { Writer } from "../../actors/DeviceLog.ts"
import { Throttle } from "../../actors/Throttle.ts"
import type { UserActor, UserView } from "../../actors/UserActor.ts"
import { type Dashboard, type Device, findDashboard, findDevice, Token } from "../../domain/Account.ts"
import type { PinType } from "../../domain/Pins.ts"
import type { Metadata } from "../../eventstore/Event.ts"
import { findByToken } from "../../eventstore/projections/DeviceTokens.ts"

/**
 * The shape of the legacy HTTP API's answers (protocol.md §5): texts, status codes, content types,
 * the request-body rules, and the token look-up every device route starts with.
 */

/** `web.request.max.size`: larger request bodies answer 413. */
export const MAX_BODY_BYTES = 524_288

/** An answer decided before the handler's end (a 400 text, a 500, a 413): the handler stops there. */
export class Reply extends Data.TaggedError("Reply")<{ readonly response: HttpServerResponse.HttpServerResponse }> {}

export const ok = () => HttpServerResponse.empty({ status: 200 })

export const json = (value: unknown) => HttpServerResponse.text(JSON.stringify(value), { contentType: "application/json" })

export const text = (status: number, body: string) => HttpServerResponse.text(body, { status, contentType: "text/plain" })

/** Stops the handler with a 400 and `message` as text/plain. */
export const badRequest = (message: string) => Effect.fail(new Reply({ response: text(400, message) }))

export const serverError = (message: string) => Effect.fail(new Reply({ response: text(500, message) }))

export const INVALID_TOKEN = "Invalid token."

/** The caller's address, as the socket gives it. */
export const addressOf = (request: HttpServerRequest) => Option.getOrElse(request.remoteAddress, () => "unknown")

/**
 * Who is writing: one writer per request, so the device log appends its entries with its own
 * metadata. The session names the API (`http-…` legacy, `external-…` Blynk IoT).
 */
export const writerOf = (request: HttpServerRequest, api: "http" | "external" = "http"): Writer => ({
  session: `${api}-${randomUUID()}`,
  remote: addressOf(request)
})

export const metadataOf = (writer: Writer): Metadata => ({
  actor: "http",
  session: writer.session,
  remoteAddress: writer.remote,
  time: new Date().toISOString()
})

/** A request string as the log can hold it: no lone surrogates (PostgreSQL's JSON refuses them). */
export const wellFormed = (s: string) => s.toWellFormed()

/** Values as the pin state keeps them: a value holding NULs is several values (PostgreSQL's JSON refuses NUL). */
export const pinValues = (values: ReadonlyArray<string>): Array<string> => values.flatMap((v) => wellFormed(v).split("\0"))

/** A list that holds at least one item (e.g. `pinValues` of one value or more), typed so; an empty one is a bug. */
export const nonEmpty = <A>(values: ReadonlyArray<A>): readonly [A, ...Array<A>] => {
  if (values.length === 0) throw new Error("nonEmpty: no values")
  return values as readonly [A, ...Array<A>]
}

/** How the HTTP APIs name a pin: `V5`, `D8`, `A0` (what `parsePin` reads). */
export const pinName = (pin: { readonly pinType: PinType; readonly pin: number }) => `${pin.pinType.toUpperCase()}${pin.pin}`

/** `V5`, `v5`, `D8`, `A0`: a type letter and 0–255; undefined otherwise ("Wrong pin format."). */
export const parsePin = (text: string | undefined): { readonly pinType: PinType; readonly pin: number } | undefined => {
  const m = /^([vVdDaA])(\d{1,3})$/.exec(text ?? "")
  if (m === null) return undefined
  const pin = Number(m[2])
  return pin <= 255 ? { pinType: m[1]!.toLowerCase() as PinType, pin } : undefined
}

export const pinOrBadRequest = (text: string | undefined) => {
  const parsed = parsePin(text)
  return parsed === undefined ? badRequest("Wrong pin format.") : Effect.succeed(parsed)
}

const decode = (s: string): string => {
  try {
    return decodeURIComponent(s.replace(/\+/g, " "))
  } catch {
    return new URLSearchParams(`x=${s}`).get("x") ?? ""
  }
}

/**
 * The query string's parameters in order; a parameter without `=` has no value (the legacy
 * server tells `?label` from `?label=`).
 */
export const queryOf = (url: string): ReadonlyArray<{ readonly key: string; readonly value: string | undefined }> => {
  const start = url.indexOf("?")
  if (start < 0) return []
  const hash = url.indexOf("#", start)
  return url.slice(start + 1, hash < 0 ? undefined : hash).split("&").filter((part) => part !== "").map((part) => {
    const eq = part.indexOf("=")
    return eq < 0
      ? { key: wellFormed(decode(part)), value: undefined }
      : { key: wellFormed(decode(part.slice(0, eq))), value: wellFormed(decode(part.slice(eq + 1))) }
  })
}

const tooLarge = () => new Reply({ response: HttpServerResponse.empty({ status: 413 }) })

/** A request's body as text; larger than MAX_BODY_BYTES answers 413. */
export const readBody = (request: HttpServerRequest) =>
  Effect.gen(function*() {
    const length = Number(request.headers["content-length"] ?? "0")
    if (length > MAX_BODY_BYTES) return yield* tooLarge()
    return yield* request.text.pipe(
      Effect.provideService(MaxBodySize, ByteSize.bytes(MAX_BODY_BYTES)),
      Effect.catch((error): Effect.Effect<never, Reply | HttpServerError> =>
        error.reason._tag === "RequestParseError" && error.reason.reason === "BodyTooLarge" ? Effect.fail(tooLarge()) : Effect.fail(error)
      )
    )
  })

/** Whether the request says its body is JSON. */
export const isJsonBody = (request: HttpServerRequest) => (request.headers["content-type"] ?? "").toLowerCase().includes("application/json")

/**
 * A JSON body: larger than MAX_BODY_BYTES answers 413; a content type other than JSON, or a body
 * that does not parse, answer the legacy 500 texts.
 */
export const readJson = (request: HttpServerRequest) =>
  Effect.gen(function*() {
    // 413 before the content type, as the legacy server answers.
    const length = Number(request.headers["content-length"] ?? "0")
    if (length > MAX_BODY_BYTES) return yield* tooLarge()
    if (!isJsonBody(request)) return yield* serverError("Unexpected content type. Expecting application/json.")
    const body = yield* readBody(request)
    try {
      return JSON.parse(body) as unknown
    } catch {
      return yield* serverError(`Error parsing body param. ${body}`)
    }
  })

/**
 * Whether a path's token has a token's shape (protocol.md §4.4); one that has not is unknown
 * without a look-up (the database refuses a NUL in a parameter: a look-up would fail).
 */
export const couldBeToken: (text: string) => boolean = Schema.is(Token)

/** A request's device, found by its token, with the account's actor and what that actor holds. */
export interface TokenDevice {
  readonly accountStream: string
  readonly dashId: number
  readonly deviceId: number
  readonly actor: UserActor
}

/**
 * The device of `token` (protocol.md §5: every device route starts here). An unknown token
 * answers 400 "Invalid token." and counts towards the address's hardware throttle, as an invalid
 * hardware login does; a blocked address gets the same answer without a look-up.
 */
export const deviceOfToken = (
  request: HttpServerRequest,
  token: string,
  refuse: (message: string) => Effect.Effect<never, Reply> = badRequest
) =>
  Effect.gen(function*() {
    const throttle = yield* Throttle
    const address = addressOf(request)
    if (yield* throttle.blocked("hardware", address)) return yield* refuse(INVALID_TOKEN)
    const owner = couldBeToken(token) ? yield* findByToken(token) : Option.none()
    if (Option.isNone(owner)) {
      yield* throttle.fail("hardware", address, `token ${token.slice(0, 4)}…`, metadataOf(writerOf(request)))
      return yield* refuse(INVALID_TOKEN)
    }
    const actor = yield* (yield* Directory).actor(owner.value.accountStream)
    return { ...owner.value, actor } satisfies TokenDevice
  })

/** What the account's actor holds now, and the token's dashboard and device in it. */
export const viewOf = (device: TokenDevice, refuse: (message: string) => Effect.Effect<never, Reply> = badRequest) =>
  Effect.gen(function*() {
    const view = yield* device.actor.ref.ask<UserView, never>((reply) => ({ _tag: "Read", reply }))
    const dash: Dashboard | undefined = findDashboard(view.account, device.dashId)
    const found: Device | undefined = findDevice(dash, device.deviceId)
    // Deleted since the token was looked up.
    if (dash === undefined || found === undefined) return yield* refuse(INVALID_TOKEN)
    return { view, dash, device: found }
  })
