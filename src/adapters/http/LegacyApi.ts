import { Cause, Clock, Deferred, Effect, Layer, Option } from "effect"
import { HttpEffect, HttpRouter, HttpServerResponse } from "effect/http"
import type { HttpServerRequest } from "effect/http/HttpServerRequest"
import * as QRCode from "qrcode"
import type { Writer } from "../../actors/DeviceLog.ts"
import { type HttpWriteOutcome, NOT_STORED, type PinValuesWrite } from "../../actors/HttpWrites.ts"
import type { DevicePeer, Status } from "../../actors/Peer.ts"
import { AccountRejected } from "../../domain/Account.ts"
import { hasPushToken, type NotificationKind, widgetOf } from "../../domain/Notifications.ts"
import { pinKey, type PinType } from "../../domain/Pins.ts"
import { boundTo, isJsonObject, type Widget, widgetPins, widgetType } from "../../domain/Widgets.ts"
import { findClone } from "../../eventstore/projections/Permissions.ts"
import { executeOnAccount } from "../accounts/AccountOps.ts"
import { dashJson } from "../blynk/ProfileJson.ts"
import { wallClockSeconds, widgetProperties } from "../blynk/HardwareSession.ts"
import { newToken } from "../security/Passwords.ts"
import { ExportFiles } from "./CsvExports.ts"
import { csvFileName, pinCsv } from "./PinCsv.ts"
import {
  badRequest,
  couldBeToken,
  deviceOfToken,
  INVALID_TOKEN,
  json,
  metadataOf,
  nonEmpty,
  ok,
  pinOrBadRequest,
  pinValues,
  queryOf,
  readJson,
  Reply,
  serverError,
  text,
  type TokenDevice,
  viewOf,
  wellFormed,
  writerOf
} from "./LegacyHttp.ts"

/**
 * The legacy HTTP API (protocol.md §5) on both ports: a device's token opens its pins, its
 * project, notifications and a clone QR. Writes go through the account's user actor, as a
 * device's own do, and are answered 200 only after their event is committed, with actor `http`
 * and the caller's address in its metadata.
 */
export interface LegacyApiSettings {
  /** Where apps reach the server (PINLEDGER_PUBLIC_URL): the QR's `server` and `port`. */
  readonly publicUrl: string
}

type Params = Readonly<Record<string, string | undefined>>

/** One write's values, and its own time when the caller gave one (`extra/pin`). */
interface TimedValues {
  readonly values: readonly [string, ...Array<string>]
  readonly timestamp?: number
}

/** Runs a handler with its path parameters; an early `Reply` is the answer, anything unexpected a 500. */
const handler = <E, R>(
  name: string,
  run: (request: HttpServerRequest, params: Params) => Effect.Effect<HttpServerResponse.HttpServerResponse, E | Reply, R>
) =>
(request: HttpServerRequest) =>
  Effect.flatMap(HttpRouter.params, (params) => run(request, params)).pipe(
    Effect.catchCause((cause) => {
      const reply = Cause.findErrorOption(cause)
      if (Option.isSome(reply) && reply.value instanceof Reply) return Effect.succeed(reply.value.response)
      if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
      return Effect.as(Effect.logWarning(`HTTP ${name} failed`, cause), text(500, "Server error."))
    })
  )

const tokenOf = (params: Params) => params["token"] ?? ""

/** The writes through the account's actor (one append); resolves once committed. */
export const writePins = (device: TokenDevice, writer: Writer, writes: readonly [PinValuesWrite, ...Array<PinValuesWrite>]) =>
  device.actor.ref.ask<HttpWriteOutcome, never>((reply) => ({
    _tag: "HttpWrite",
    dashId: device.dashId,
    deviceId: device.deviceId,
    writes,
    by: writer,
    reply
  }))

/** One pin's write (its current value last); 400 `Invalid token.` if the device is gone meanwhile. */
const write = (device: TokenDevice, request: HttpServerRequest, pin: { pinType: PinType; pin: number }, writes: readonly [TimedValues, ...Array<TimedValues>]) =>
  Effect.gen(function*() {
    const outcome = yield* writePins(device, writerOf(request), nonEmpty(writes.map((w): PinValuesWrite => ({ ...pin, ...w }))))
    if (outcome === "noDevice") return yield* badRequest(INVALID_TOKEN)
    if (outcome === "notStored") return yield* serverError(NOT_STORED)
    return ok()
  })

/** `["v1", 2, true]` as the legacy server read a `String[]` body: scalars as text; anything else does not parse. */
const stringArray = (body: unknown): Array<string> | undefined => {
  if (!Array.isArray(body)) return undefined
  const values: Array<string> = []
  for (const item of body) {
    if (typeof item === "string" || typeof item === "number" || typeof item === "boolean") values.push(String(item))
    else return undefined
  }
  return values
}

const parseFailure = (body: unknown) => serverError(`Error parsing body param. ${JSON.stringify(body)}`)

/** PUT `/{token}/update/{pin}` and `/{token}/pin/{pin}`: a JSON array of values, one write. */
const putValues = handler("PUT update", (request, params) =>
  Effect.gen(function*() {
    const body = yield* readJson(request)
    const values = stringArray(body)
    if (values === undefined) return yield* parseFailure(body)
    const device = yield* deviceOfToken(request, tokenOf(params))
    if (values.length === 0) return yield* badRequest("No pin for update provided.")
    const pin = yield* pinOrBadRequest(params["pin"])
    const [first, ...rest] = pinValues(values)
    return yield* write(device, request, pin, [{ values: [first!, ...rest] }])
  }))

/** PUT `/{token}/extra/pin/{pin}`: `[{"timestamp": ms, "value": "v"}, …]`, each recorded with its time; the first becomes current. */
const putTimed = handler("PUT extra/pin", (request, params) =>
  Effect.gen(function*() {
    const body = yield* readJson(request)
    if (!Array.isArray(body)) return yield* parseFailure(body)
    const items: Array<TimedValues> = []
    for (const item of body) {
      const value = isJsonObject(item) ? item["value"] : undefined
      const timestamp = isJsonObject(item) ? item["timestamp"] : undefined
      if (
        (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") ||
        typeof timestamp !== "number" || !Number.isSafeInteger(timestamp)
      ) {
        return yield* parseFailure(body)
      }
      const [first, ...rest] = pinValues([String(value)])
      items.push({ values: [first!, ...rest], timestamp })
    }
    const device = yield* deviceOfToken(request, tokenOf(params))
    const [current, ...older] = items
    if (current === undefined) return yield* badRequest("No pin for update provided.")
    const pin = yield* pinOrBadRequest(params["pin"])
    // The first is the current value: it goes last, so that it is the pin's last write in the log.
    return yield* write(device, request, pin, nonEmpty([...older, current]))
  }))

/** GET `/{token}/update/{pin}?value=…` (a write) or `?{property}=…` (a widget property). */
const getUpdate = handler("GET update", (request, params) =>
  Effect.gen(function*() {
    const device = yield* deviceOfToken(request, tokenOf(params))
    const query = queryOf(request.url)
    const values = query.filter((p) => p.key === "value").map((p) => p.value ?? "")
    if (values.length > 0) {
      const pin = yield* pinOrBadRequest(params["pin"])
      const [first, ...rest] = pinValues(values)
      return yield* write(device, request, pin, [{ values: [first!, ...rest] }])
    }
    const property = query.find((p) => widgetProperties.has(p.key))
    if (property === undefined) return yield* badRequest("Wrong request format.")
    if (property.value === undefined) return yield* badRequest("No properties for update provided.")
    const pin = yield* pinOrBadRequest(params["pin"])
    const outcome = yield* device.actor.ref.ask<HttpWriteOutcome, never>((reply) => ({
      _tag: "HttpProperty",
      dashId: device.dashId,
      deviceId: device.deviceId,
      ...pin,
      properties: [{ property: property.key, values: nonEmpty(pinValues([property.value!])) }],
      needsWidget: true,
      by: writerOf(request),
      reply
    }))
    switch (outcome) {
      case "committed":
        return ok()
      case "noDevice":
        return yield* badRequest(INVALID_TOKEN)
      case "notActive":
        return yield* badRequest("Project is not active.")
      case "noWidget":
        return yield* badRequest("No widget for SetWidgetProperty command.")
      case "badValue":
        return yield* badRequest("Error setting widget property.")
      case "notStored":
        return yield* serverError(NOT_STORED)
    }
  }))

/** GET `/{token}/get/{pin}`: the pin's values as a JSON array of strings. */
const getPin = handler("GET get", (request, params) =>
  Effect.gen(function*() {
    const device = yield* deviceOfToken(request, tokenOf(params))
    const { pinType, pin } = yield* pinOrBadRequest(params["pin"])
    const { view, dash } = yield* viewOf(device)
    const values = view.pins.get(pinKey(device.dashId, device.deviceId, pinType, pin))
    const widget = dash.widgets.some((w) => boundTo(w, device.deviceId, pinType, pin))
    if (values === undefined && !widget) return yield* badRequest("Requested pin doesn't exist in the app.")
    return json((values ?? []).flatMap((v) => v.split("\0")))
  }))

const isHardwareConnected = handler("GET isHardwareConnected", (request, params) =>
  Effect.gen(function*() {
    const device = yield* deviceOfToken(request, tokenOf(params))
    const { view } = yield* viewOf(device)
    return json(view.online.has(`${device.dashId}-${device.deviceId}`))
  }))

const isAppConnected = handler("GET isAppConnected", (request, params) =>
  Effect.gen(function*() {
    const device = yield* deviceOfToken(request, tokenOf(params))
    const { view, dash } = yield* viewOf(device)
    return json(dash.isActive && view.apps > 0)
  }))

/** GET `/{token}/project`: the dashboard as a shared app sees it (no tokens, no share token, no push tokens). */
const project = handler("GET project", (request, params) =>
  Effect.gen(function*() {
    const device = yield* deviceOfToken(request, tokenOf(params))
    const { view, dash } = yield* viewOf(device)
    return json(dashJson(dash, { pins: view.pins, online: view.online }, { restricted: true }))
  }))

/** GET `/{token}/rtc`: `[epochSeconds]` of the RTC widget's time zone. */
const rtc = handler("GET rtc", (request, params) =>
  Effect.gen(function*() {
    const device = yield* deviceOfToken(request, tokenOf(params))
    const { dash } = yield* viewOf(device)
    const widget = widgetOf(dash, "RTC")
    if (widget === undefined) return yield* badRequest("Requested rtc not exists in app.")
    const tz = widget["tzName"]
    return json([wallClockSeconds(yield* Clock.currentTimeMillis, typeof tz === "string" ? tz : undefined)])
  }))

/** `server` and `port` of the QR link: the public URL's host, and its port (443 when it names none). */
export const cloneLink = (publicUrl: string, code: string) => {
  const url = new URL(publicUrl)
  const port = url.port !== "" ? url.port : url.protocol === "http:" ? "80" : "443"
  return `blynk://token/clone/${code}?server=${url.hostname}&port=${port}`
}

/** GET `/{token}/qr`: a new clone code of the token's dashboard (through the decider, as GET_CLONE_CODE), as a PNG QR code. */
const qr = (settings: LegacyApiSettings) =>
  handler("GET qr", (request, params) =>
    Effect.gen(function*() {
      const device = yield* deviceOfToken(request, tokenOf(params))
      const code = newToken()
      yield* executeOnAccount(
        device.accountStream,
        () => [{ _tag: "IssueCloneCode", dashId: device.dashId, code }],
        metadataOf(writerOf(request))
      ).pipe(Effect.catchIf((e): e is AccountRejected => e instanceof AccountRejected, () => badRequest(INVALID_TOKEN)))
      const png = yield* Effect.promise(() => QRCode.toBuffer(cloneLink(settings.publicUrl, code), { type: "png" }))
      return HttpServerResponse.uint8Array(png, { contentType: "image/png" })
    }))

/** GET `/{cloneCode}/clone`: the layout a clone code keeps. */
const clone = handler("GET clone", (_request, params) =>
  Effect.gen(function*() {
    const code = tokenOf(params)
    const layout = couldBeToken(code) ? yield* findClone(code) : Option.none()
    if (Option.isNone(layout)) return yield* serverError("Requested QR not found.")
    return json(layout.value)
  }))

/**
 * A notification through the account's actor, decided as a device's own request is; resolves
 * with the refusal's status, or once the request is in the log.
 */
const notify = (device: TokenDevice, request: HttpServerRequest, kind: NotificationKind, body: string) =>
  Effect.flatMap(Deferred.make<Status | "committed" | "dropped">(), (outcome) => {
    const writer = writerOf(request)
    const peer: DevicePeer = {
      dashId: device.dashId,
      deviceId: device.deviceId,
      remote: writer.remote,
      session: writer.session,
      // An accepted request is answered "ok" before its append: the answer waits for `committed`.
      send: (notice) => {
        if (notice._tag === "Status" && notice.status !== "ok") Deferred.doneUnsafe(outcome, Effect.succeed(notice.status))
      }
    }
    return device.actor.ref.tell({
      _tag: "DeviceNotify",
      peer,
      id: 0,
      kind,
      body,
      refused: () => {},
      actor: "http",
      committed: (done) => Deferred.doneUnsafe(outcome, Effect.succeed(done ? "committed" : "dropped"))
    }).pipe(Effect.flatMap((accepted) => accepted ? Deferred.await(outcome) : Effect.succeed("serverError" as const)))
  })

/** POST `/{token}/notify` `{"body": "…"}`: a push notification. */
const postNotify = handler("POST notify", (request, params) =>
  Effect.gen(function*() {
    const body = yield* readJson(request)
    const device = yield* deviceOfToken(request, tokenOf(params))
    const message = isJsonObject(body) && typeof body["body"] === "string" ? wellFormed(body["body"]) : ""
    if (message.length === 0 || message.length > 255) return yield* badRequest("Body is empty or larger than 255 chars.")
    const { dash } = yield* viewOf(device)
    if (!dash.isActive) return yield* badRequest("Project is not active.")
    const widget = widgetOf(dash, "NOTIFICATION")
    if (widget === undefined) return yield* badRequest("No notification widget.")
    if (!hasPushToken(widget)) return yield* badRequest("Notification widget not initialized.")
    const outcome = yield* notify(device, request, "push", message)
    switch (outcome) {
      case "committed":
        return ok()
      case "notificationInvalidBody":
        return yield* badRequest("Body is empty or larger than 255 chars.")
      case "noActiveDashboard":
        return yield* badRequest("Project is not active.")
      case "notificationNotAuthorized":
        return yield* badRequest("Notification widget not initialized.")
      default:
        return text(500, "Server error.")
    }
  }))

const field = (body: unknown, key: string) => {
  const value = isJsonObject(body) ? body[key] : undefined
  return typeof value === "string" ? wellFormed(value).replaceAll("\0", " ") : undefined
}

const WRONG_EMAIL = "Email body is wrong. Missing or empty fields 'to', 'subj'."

/** POST `/{token}/email` `{"to", "subj", "title"}` (`title` is the text): a mail, sent by the outbox sender. */
const postEmail = handler("POST email", (request, params) =>
  Effect.gen(function*() {
    const body = yield* readJson(request)
    const device = yield* deviceOfToken(request, tokenOf(params))
    const { dash } = yield* viewOf(device)
    if (!dash.isActive) return yield* badRequest("Project is not active.")
    if (widgetOf(dash, "EMAIL") === undefined) return yield* badRequest("No email widget.")
    const to = field(body, "to")
    const subject = field(body, "subj")
    if (to === undefined || to === "" || subject === undefined || subject === "") return yield* badRequest(WRONG_EMAIL)
    const outcome = yield* notify(device, request, "email", [to, subject, field(body, "title") ?? ""].join("\0"))
    switch (outcome) {
      case "committed":
        return ok()
      case "notAllowed":
        return yield* badRequest("No email widget.")
      case "illegalCommand":
        return yield* badRequest(WRONG_EMAIL)
      case "quotaLimit":
        return yield* badRequest("E-mail limit for today reached.")
      default:
        return text(500, "Server error.")
    }
  }))

/**
 * A name as one path segment: escaped where it must be, and no more, so the `@` of the e-mail in
 * an export's name stays as the legacy server wrote it (RFC 3986 pchar: sub-delims, `:` and `@`
 * are allowed as they are).
 */
const pathSegment = (name: string) =>
  encodeURIComponent(name).replace(/%(24|26|2B|2C|3B|3D|3A|40)/g, (escaped) => decodeURIComponent(escaped))

/**
 * GET `/{token}/data/{pin}`: the pin's minute history as gzip CSV (protocol.md §7.4), by a 301 to
 * `/<email>_<dashId>_<deviceId>_<t><pin>_<ms>.csv.gz`, which `GET /{file}` then serves.
 */
const data = handler("GET data", (request, params) =>
  Effect.gen(function*() {
    const device = yield* deviceOfToken(request, tokenOf(params))
    const { pinType, pin } = yield* pinOrBadRequest(params["pin"])
    const { view } = yield* viewOf(device)
    const ref = { accountStream: device.accountStream, dashId: device.dashId, deviceId: device.deviceId, pinType, pin }
    const csv = yield* pinCsv(ref).pipe(
      Effect.catchCause((cause): Effect.Effect<never, Reply> =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.interrupt
          : Effect.andThen(Effect.logWarning("HTTP GET data failed", cause), badRequest("Error getting pin data."))
      )
    )
    if (csv === undefined) return yield* badRequest("No data.")
    const now = yield* Clock.currentTimeMillis
    const name = csvFileName(view.account?.email ?? "", ref, now)
    const exports = yield* ExportFiles
    exports.put(name, csv, now)
    return HttpServerResponse.empty({ status: 301, headers: { location: `/${pathSegment(name)}` } })
  }))

/** GET `/{file}`: an export `data` redirected to, or a Blynk IoT `data/get` link; any other name is 404, as an unmatched path. */
const exportFile = handler("GET export", (_request, params) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const file = (yield* ExportFiles).file(params["file"] ?? "", now)
    return file === undefined
      ? HttpServerResponse.empty({ status: 404 })
      : HttpServerResponse.uint8Array(file.bytes, { contentType: file.contentType })
  }))

/** Every response, 404s included, may be read by any web page (protocol.md §5). */
const AllowAnyOrigin = HttpRouter.middleware(
  (httpEffect) =>
    Effect.andThen(
      HttpEffect.appendPreResponseHandler((_request, response) =>
        Effect.succeed(HttpServerResponse.setHeader(response, "access-control-allow-origin", "*"))
      ),
      httpEffect
    ),
  { global: true }
)

/** The routes, and the header on every answer of the HTTP app; exports are kept in `ExportFiles`. */
export const layer = (settings: LegacyApiSettings) => {
  return Layer.mergeAll(
    AllowAnyOrigin,
    HttpRouter.add("GET", "/:token/get/:pin", getPin),
    HttpRouter.add("GET", "/:token/update/:pin", getUpdate),
    HttpRouter.add("PUT", "/:token/update/:pin", putValues),
    HttpRouter.add("PUT", "/:token/pin/:pin", putValues),
    HttpRouter.add("PUT", "/:token/extra/pin/:pin", putTimed),
    HttpRouter.add("GET", "/:token/isHardwareConnected", isHardwareConnected),
    HttpRouter.add("GET", "/:token/isAppConnected", isAppConnected),
    HttpRouter.add("GET", "/:token/project", project),
    HttpRouter.add("GET", "/:token/rtc", rtc),
    HttpRouter.add("GET", "/:token/qr", qr(settings)),
    HttpRouter.add("GET", "/:token/clone", clone),
    HttpRouter.add("POST", "/:token/notify", postNotify),
    HttpRouter.add("POST", "/:token/email", postEmail),
    HttpRouter.add("GET", "/:token/data/:pin", data),
    HttpRouter.add("GET", "/:file", exportFile)
  )
}
