import { ByteSize, Clock, Effect, Layer, Result, type Schema } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { HttpApiBuilder } from "effect/http-api"
import { HttpApiSchemaError } from "effect/http-api/HttpApiError"
import { MaxBodySize } from "effect/http/HttpIncomingMessage"
import { isHttpServerError } from "effect/http/HttpServerError"
import * as SchemaIssue from "effect/SchemaIssue"
import { Directory } from "../../actors/Directory.ts"
import { type HttpWriteOutcome, NOT_STORED, type PinValuesWrite } from "../../actors/HttpWrites.ts"
import type { UserView } from "../../actors/UserActor.ts"
import {
  type AccountCommand,
  AccountRejected,
  type AccountState,
  type Dashboard,
  type Device,
  findDashboard,
  findDevice,
  isShared
} from "../../domain/Account.ts"
import { parsePinKey, pinKey } from "../../domain/Pins.ts"
import { AuditQueryInvalid, queryAudit, toJson } from "../../eventstore/Audit.ts"
import type { Metadata } from "../../eventstore/Event.ts"
import * as HistoryQueries from "../../eventstore/HistoryQueries.ts"
import { executeOnAccount } from "../accounts/AccountOps.ts"
import { newToken } from "../security/Passwords.ts"
import { addressOf, MAX_BODY_BYTES, nonEmpty, pinName, pinValues } from "./LegacyHttp.ts"
import {
  API_PREFIX,
  apiActor,
  BadInput,
  callerMetadata,
  Caller,
  type CallerInfo,
  InputErrors,
  NotFound,
  OPENAPI_PATH,
  OwnerApi,
  PayloadTooLarge
} from "./OwnerApi.ts"
import { type Parsed, parseAudit, parseHistory, parseId, parsePinName, type PinRef } from "./OwnerParams.ts"
import * as OwnerSessions from "./OwnerSessions.ts"

/**
 * The owner API's handlers (OwnerApi.ts declares the routes). Reads come from the account's user
 * actor (what it holds now) and the history and audit queries; every change goes through that
 * actor, its single writer, with actor `api:<email>`, the session and the caller's address in
 * the event's metadata, and is answered once committed.
 */

const valid = <A>(parsed: Parsed<A>): Effect.Effect<A, BadInput> =>
  Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : Effect.fail(new BadInput({ message: parsed.failure }))

const metadataOf = (caller: CallerInfo): Metadata => callerMetadata(caller, Date.now())

/** What the caller's account's actor holds now. */
const viewOf = (caller: CallerInfo) =>
  Effect.gen(function*() {
    const actor = yield* (yield* Directory).actor(caller.stream)
    return yield* actor.ref.ask<UserView, never>((reply) => ({ _tag: "Read", reply })).pipe(Effect.orDie)
  })

const dashboardOf = (account: AccountState, dashText: string) =>
  Effect.gen(function*() {
    const dashId = yield* valid(parseId("dashId", dashText))
    const dash = findDashboard(account, dashId)
    if (dash === undefined) return yield* new NotFound({ message: `no dashboard ${dashId} in this account` })
    return dash
  })

const deviceOf = (account: AccountState, dashText: string, deviceText: string) =>
  Effect.gen(function*() {
    const dash = yield* dashboardOf(account, dashText)
    const deviceId = yield* valid(parseId("deviceId", deviceText))
    const device = findDevice(dash, deviceId)
    if (device === undefined) return yield* new NotFound({ message: `no device ${deviceId} in dashboard ${dash.id}` })
    return { dash, device }
  })

const deviceView = (dash: Dashboard, device: Device, online: ReadonlySet<string>) => ({
  dashId: dash.id,
  dashboard: dash.name,
  id: device.id,
  name: device.name,
  boardType: device.boardType,
  token: device.token,
  online: online.has(`${dash.id}-${device.id}`)
})

const shareView = (dash: Dashboard) => ({
  dashId: dash.id,
  dashboard: dash.name,
  sharing: isShared(dash),
  token: dash.shareToken ?? null
})

/** Commands through the account's actor, answered once committed; a refusal about ids is a 404, any other a 400. */
const execute = (caller: CallerInfo, commands: (state: AccountState) => ReadonlyArray<AccountCommand>) =>
  executeOnAccount(caller.stream, commands, metadataOf(caller)).pipe(
    Effect.catchIf(
      (e): e is AccountRejected => e instanceof AccountRejected,
      (e): Effect.Effect<never, NotFound | BadInput> =>
        e.reason === "UnknownDashboard" || e.reason === "UnknownDevice" || e.reason === "NotRegistered"
          ? Effect.fail(new NotFound({ message: e.detail }))
          : Effect.fail(new BadInput({ message: e.detail }))
    ),
    Effect.catchTag(["ActorCrashed", "ActorStopped"], Effect.die)
  )

/** The pin's values as the API shows them: a value holding NULs is several. */
const shownValues = (values: ReadonlyArray<string> | undefined) => (values ?? []).flatMap((v) => v.split("\0"))

// ---------------------------------------------------------------------------------------------
// Groups
// ---------------------------------------------------------------------------------------------

const SessionLive = HttpApiBuilder.group(OwnerApi, "session", (handlers) =>
  Effect.gen(function*() {
    const sessions = yield* OwnerSessions.OwnerSessions
    return handlers
      .handle("login", ({ payload, request }) =>
        Effect.map(sessions.login(payload, addressOf(request)), ({ token, expiresAt, caller }) => ({
          token,
          expiresAt: new Date(expiresAt).toISOString(),
          email: caller.email,
          appName: caller.appName
        })))
      .handle("logout", ({ request }) => {
        const [scheme, token] = (request.headers.authorization ?? "").trim().split(/\s+/)
        return scheme?.toLowerCase() === "bearer" && token !== undefined ? sessions.logout(token) : Effect.void
      })
  }))

const DevicesLive = HttpApiBuilder.group(OwnerApi, "devices", (handlers) =>
  handlers
    .handle("list", () =>
      Effect.gen(function*() {
        const view = yield* viewOf(yield* Caller)
        return (view.account?.dashboards ?? []).flatMap((dash) => dash.devices.map((d) => deviceView(dash, d, view.online)))
      }))
    .handle("get", ({ params }) =>
      Effect.gen(function*() {
        const view = yield* viewOf(yield* Caller)
        const { dash, device } = yield* deviceOf(view.account, params.dashId, params.deviceId)
        return deviceView(dash, device, view.online)
      }))
    .handle("reprovision", ({ params }) =>
      Effect.gen(function*() {
        const caller = yield* Caller
        const { dash, device } = yield* deviceOf((yield* viewOf(caller)).account, params.dashId, params.deviceId)
        // REFRESH_TOKEN through the decider: the actor closes the device's connections once it is committed.
        const { account } = yield* execute(caller, () => [{ _tag: "RefreshToken", dashId: dash.id, deviceId: device.id, token: newToken() }])
        const now = yield* deviceOf(account, params.dashId, params.deviceId)
        // Offline: its connections were told to close with the commit.
        return deviceView(now.dash, now.device, new Set())
      })))

/** The device's pin values as the actor holds them, `V` pins first, then by number. */
const pinsOf = (view: UserView, dashId: number, deviceId: number) => {
  const pins: Array<PinRef & { readonly values: ReadonlyArray<string> }> = []
  for (const [key, values] of view.pins) {
    const pin = parsePinKey(key)
    if (pin !== undefined && pin.dashId === dashId && pin.deviceId === deviceId) pins.push({ pinType: pin.pinType, pin: pin.pin, values })
  }
  const order = { v: 0, d: 1, a: 2 }
  return pins.sort((a, b) => order[a.pinType] - order[b.pinType] || a.pin - b.pin).map((p) => ({ pin: pinName(p), values: shownValues(p.values) }))
}

/** Writes pins of a device through its account's actor (HttpWrites.ts), in one commit; resolves once committed. */
const writePins = (caller: CallerInfo, dashId: number, deviceId: number, writes: readonly [PinValuesWrite, ...Array<PinValuesWrite>]) =>
  Effect.gen(function*() {
    const actor = yield* (yield* Directory).actor(caller.stream)
    const outcome = yield* actor.ref.ask<HttpWriteOutcome, never>((reply) => ({
      _tag: "HttpWrite",
      dashId,
      deviceId,
      writes,
      by: { session: caller.session, remote: caller.address },
      actor: apiActor(caller.email),
      reply
    })).pipe(Effect.orDie)
    // The server's fault (a 500, logged where the store refused it).
    if (outcome === "notStored") return yield* Effect.die(new Error(NOT_STORED))
    // Deleted between the look-up and the write.
    if (outcome !== "committed") return yield* new NotFound({ message: `no device ${deviceId} in dashboard ${dashId}` })
  })

/** One pin's write as the API takes it: its values as text (numbers and booleans as JSON writes them). */
const pinWrite = (pin: PinRef, values: ReadonlyArray<string | number | boolean>): PinValuesWrite =>
  ({ ...pin, values: nonEmpty(pinValues(values.map(String))) })

const PinsLive = HttpApiBuilder.group(OwnerApi, "pins", (handlers) =>
  handlers
    .handle("list", ({ params }) =>
      Effect.gen(function*() {
        const view = yield* viewOf(yield* Caller)
        const { dash, device } = yield* deviceOf(view.account, params.dashId, params.deviceId)
        return pinsOf(view, dash.id, device.id)
      }))
    .handle("get", ({ params }) =>
      Effect.gen(function*() {
        const view = yield* viewOf(yield* Caller)
        const { dash, device } = yield* deviceOf(view.account, params.dashId, params.deviceId)
        const pin = yield* valid(parsePinName(params.pin))
        const values = view.pins.get(pinKey(dash.id, device.id, pin.pinType, pin.pin))
        if (values === undefined) return yield* new NotFound({ message: `${pinName(pin)} of device ${device.id} in dashboard ${dash.id} has no value` })
        return { pin: pinName(pin), values: shownValues(values) }
      }))
    .handle("write", ({ params, payload }) =>
      Effect.gen(function*() {
        const caller = yield* Caller
        const { dash, device } = yield* deviceOf((yield* viewOf(caller)).account, params.dashId, params.deviceId)
        const pin = yield* valid(parsePinName(params.pin))
        const write = pinWrite(pin, payload.values)
        yield* writePins(caller, dash.id, device.id, [write])
        return { pin: pinName(pin), values: write.values }
      }))
    .handle("writeMany", ({ params, payload }) =>
      Effect.gen(function*() {
        const caller = yield* Caller
        const { dash, device } = yield* deviceOf((yield* viewOf(caller)).account, params.dashId, params.deviceId)
        const writes: Array<PinValuesWrite> = []
        for (const [index, item] of payload.writes.entries()) {
          const pin = parsePinName(item.pin)
          if (Result.isFailure(pin)) return yield* new BadInput({ message: `writes[${index}]: ${pin.failure}` })
          writes.push(pinWrite(pin.success, item.values))
        }
        // The schema takes 1 to 1000 writes.
        yield* writePins(caller, dash.id, device.id, nonEmpty(writes))
        return writes.map((w) => ({ pin: pinName(w), values: w.values }))
      }))
    .handle("history", ({ params, query }) =>
      Effect.gen(function*() {
        const caller = yield* Caller
        const { dash, device } = yield* deviceOf((yield* viewOf(caller)).account, params.dashId, params.deviceId)
        const pin = yield* valid(parsePinName(params.pin))
        const { rollup, from, to, limit } = yield* valid(parseHistory(query, yield* Clock.currentTimeMillis))
        const ref = { accountStream: caller.stream, dashId: dash.id, deviceId: device.id, ...pin }
        const base = { pin: pinName(pin), rollup, from, to }
        if (rollup === "raw") {
          const samples = yield* HistoryQueries.samples(ref, from, to, limit + 1).pipe(Effect.orDie)
          const { page, next } = cutRaw(samples, limit)
          return {
            ...base,
            points: page.map((s) => ({ ts: s.ts, time: new Date(s.ts).toISOString(), values: [s.value, ...s.more], number: s.num })),
            next
          }
        }
        const periods = yield* HistoryQueries.rollups(ref, rollup, from, to, limit + 1).pipe(Effect.orDie)
        return {
          ...base,
          points: periods.slice(0, limit).map((p) => ({ ts: p.ts, time: new Date(p.ts).toISOString(), avg: p.avg, min: p.min, max: p.max, count: p.count })),
          next: periods.length > limit ? periods[limit]!.ts : null
        }
      })))

/**
 * A page of raw samples (`limit + 1` read) and the `from` of the next one. Samples may share a
 * millisecond, so a page never ends inside one: the next page starts at the first it leaves out.
 * Only when one millisecond holds more than `limit` samples is the rest of it skipped.
 */
export const cutRaw = <S extends { readonly ts: number }>(samples: ReadonlyArray<S>, limit: number) => {
  if (samples.length <= limit) return { page: samples, next: null }
  const cut = samples[limit]!.ts
  const page = samples.slice(0, limit).filter((s) => s.ts < cut)
  return page.length > 0 ? { page, next: cut } : { page: samples.slice(0, limit), next: cut + 1 }
}

const SharesLive = HttpApiBuilder.group(OwnerApi, "shares", (handlers) =>
  handlers
    .handle("list", () => Effect.map(Effect.flatMap(Caller, viewOf), (view) => (view.account?.dashboards ?? []).map(shareView)))
    .handle("get", ({ params }) =>
      Effect.gen(function*() {
        return shareView(yield* dashboardOf((yield* viewOf(yield* Caller)).account, params.dashId))
      }))
    .handle("set", ({ params, payload }) => shareCommand(params.dashId, (dashId) => ({ _tag: "SetSharing", dashId, on: payload.enabled })))
    .handle("token", ({ params }) => shareCommand(params.dashId, (dashId) => ({ _tag: "GetShareToken", dashId, token: newToken() })))
    // REFRESH_SHARE_TOKEN's own path: once committed, the actor closes every shared app of the dashboard.
    .handle("revoke", ({ params }) => shareCommand(params.dashId, (dashId) => ({ _tag: "RefreshShareToken", dashId, token: newToken() }))))

/** A sharing command on one dashboard of the caller's; answers the dashboard's sharing after it. */
const shareCommand = (dashText: string, command: (dashId: number) => AccountCommand) =>
  Effect.gen(function*() {
    const caller = yield* Caller
    const dash = yield* dashboardOf((yield* viewOf(caller)).account, dashText)
    const { account } = yield* execute(caller, () => [command(dash.id)])
    return shareView(yield* dashboardOf(account, dashText))
  })

const AuditLive = HttpApiBuilder.group(OwnerApi, "audit", (handlers) =>
  handlers.handle("query", ({ query }) =>
    Effect.gen(function*() {
      const caller = yield* Caller
      const parsed = yield* valid(parseAudit(query))
      const page = yield* queryAudit({ ...parsed, email: caller.email, appName: caller.appName }).pipe(
        Effect.catchIf((e): e is AuditQueryInvalid => e instanceof AuditQueryInvalid, (e) => Effect.fail(new BadInput({ message: e.reason }))),
        Effect.catchTag("SqlError", Effect.die)
      )
      // The data is JSON as the log holds it (masked).
      return { entries: page.entries.map((e) => ({ ...toJson(e), data: e.data as Schema.Json })), next: page.next ?? null }
    })))

// ---------------------------------------------------------------------------------------------
// Middleware and the layer
// ---------------------------------------------------------------------------------------------

const formatIssue = SchemaIssue.makeFormatterDefault()

/** The body is larger than MAX_BODY_BYTES (the read fails as a defect inside the API's body decoding). */
const isBodyTooLarge = (defect: unknown) =>
  isHttpServerError(defect) && defect.reason._tag === "RequestParseError" && defect.reason.reason === "BodyTooLarge"

/**
 * A body that does not decode is a 400 with the schema's account of what is wrong (not the empty
 * 400 of HttpApi); one over MAX_BODY_BYTES a 413.
 */
const InputErrorsLive = Layer.succeed(InputErrors, (httpEffect) =>
  httpEffect.pipe(
    Effect.provideService(MaxBodySize, ByteSize.bytes(MAX_BODY_BYTES)),
    Effect.mapError((e) => {
      const error: unknown = e
      return HttpApiSchemaError.is(error) && error.kind !== "Body" && error.kind !== "ResponseHeaders"
        ? new BadInput({ message: `${error.kind.toLowerCase()}: ${formatIssue(error.cause.issue).replace(/\s*\n\s*/g, " ")}` })
        : e
    }),
    Effect.catchDefect((defect) =>
      isBodyTooLarge(defect) ? Effect.fail(new PayloadTooLarge({ message: `the body may have at most ${MAX_BODY_BYTES} bytes` })) : Effect.die(defect)
    )
  ))

export interface OwnerApiSettings extends OwnerSessions.OwnerSessionSettings {}

/** Any other path under /api/v1, or another method: a 404 in the API's JSON form rather than an empty one. */
const NoSuchRoute = HttpRouter.add("*", `${API_PREFIX}/*`, (request) =>
  Effect.succeed(HttpServerResponse.jsonUnsafe(
    new NotFound({ message: `no route ${request.method} ${request.url.split("?")[0]} (see ${OPENAPI_PATH})` }),
    { status: 404 }
  )))

/** The owner API's routes and `GET /api/v1/openapi.json`, for the HTTP app's router. */
export const layer = (settings: OwnerApiSettings) =>
  Layer.merge(
    HttpApiBuilder.layer(OwnerApi, { openapiPath: OPENAPI_PATH }).pipe(
      Layer.provide(Layer.mergeAll(SessionLive, DevicesLive, PinsLive, SharesLive, AuditLive)),
      Layer.provide(Layer.merge(OwnerSessions.authenticationLayer, InputErrorsLive)),
      Layer.provide(OwnerSessions.layer(settings))
    ),
    NoSuchRoute
  )
