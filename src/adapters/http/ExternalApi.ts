import { Cause, Clock, Effect, Layer, Option, Result } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import type { HttpServerRequest } from "effect/http/HttpServerRequest"
import { randomBytes } from "node:crypto"
import type { SqlClient } from "effect/sql/SqlClient"
import type { Directory } from "../../actors/Directory.ts"
import { type HttpEventOutcome, type HttpWriteOutcome, NOT_STORED } from "../../actors/HttpWrites.ts"
import type { Throttle } from "../../actors/Throttle.ts"
import type { EventLimits } from "../../domain/LoggedEvents.ts"
import { MAX_DESCRIPTION } from "../../domain/LoggedEvents.ts"
import { parsePinKey, pinKey } from "../../domain/Pins.ts"
import { ExportFiles } from "./CsvExports.ts"
import { exportRows, exportZip, fileStamp, tableJson, csvOf } from "./ExternalHistory.ts"
import {
  type BatchLimits,
  comparePins,
  endpointOf,
  jsonValue,
  type Parsed,
  parseBatchBody,
  parseExport,
  parseGet,
  parseLogEvent,
  parseOnePin,
  parseProperty,
  parseUpdate,
  type PinName,
  pinKeyName,
  type Query,
  tokenOf,
  WRONG_PIN
} from "./ExternalParams.ts"
import { writePins } from "./LegacyApi.ts"
import { deviceOfToken, INVALID_TOKEN, isJsonBody, nonEmpty, queryOf, readBody, Reply, type TokenDevice, viewOf, writerOf } from "./LegacyHttp.ts"

/**
 * The Blynk IoT device HTTP API (blynk2-device-api.md §2) on both ports: `/external/api/get`,
 * `getAll`, `update`, `batch/update` (GET, and POST with timestamps), `update/property`,
 * `logEvent`, `data/get` and `isHardwareConnected`, so that scripts written for Blynk IoT work
 * against Pinledger. The token comes only from the `token` query parameter; paths may differ in
 * case and end with a slash. Errors are `{"error":{"message":…}}` (400 unless the spec says
 * otherwise), bare scalars text/plain. Writes go through the account's user actor as the legacy
 * API's do, with actor `http`, session `external-…` and the caller's address, answered once committed.
 */
export interface ExternalApiSettings {
  /** Where users reach the server (PINLEDGER_PUBLIC_URL): the start of `data/get`'s links. */
  readonly publicUrl: string
  /** The POST `batch/update`'s limits. */
  readonly batch: BatchLimits
  /** The `logEvent` limits (the same the user actors apply), for the 429 texts. */
  readonly events: EventLimits
  /** Most rows one `data/get` export holds. */
  readonly exportMaxRows: number
}

const errorResponse = (status: number, message: string) =>
  HttpServerResponse.text(JSON.stringify({ error: { message } }), { status, contentType: "application/json" })

/** Stops the handler with `{"error":{"message":…}}` (400 unless told). */
const refuse = (message: string, status = 400) => Effect.fail(new Reply({ response: errorResponse(status, message) }))

const orRefuse = <A>(parsed: Parsed<A>): Effect.Effect<A, Reply> =>
  Result.isSuccess(parsed) ? Effect.succeed(parsed.success) : refuse(parsed.failure.message, parsed.failure.status)

const bare = (value: string) => HttpServerResponse.text(value, { contentType: "text/plain" })
const json = (value: unknown) => HttpServerResponse.text(JSON.stringify(value), { contentType: "application/json" })
const ok = () => HttpServerResponse.empty({ status: 200 })
/** What the batch endpoints answer (spec §2.2 #8, #9): `OK`, where the others answer an empty body. */
const okText = () => bare("OK")

/** The device of the `token` parameter: `No token provided.`, or `Invalid token.` (counted towards the address's hardware throttle). */
const deviceOf = (request: HttpServerRequest, query: Query) => {
  const token = tokenOf(query)
  return token === undefined ? refuse("No token provided.") : deviceOfToken(request, token, refuse)
}

const writeOutcome = (outcome: HttpWriteOutcome, answer = ok) => {
  switch (outcome) {
    case "committed":
      return Effect.succeed(answer())
    case "noDevice":
      return refuse(INVALID_TOKEN)
    case "badValue":
      return refuse("Value doesn't match the Datastream data type")
    case "notActive":
    case "noWidget":
      return refuse(WRONG_PIN)
    case "notStored":
      return refuse(NOT_STORED, 500)
  }
}

/** What the handlers use: the token look-up and its throttle, the actors, the database, the export cache. */
type Services = Throttle | Directory | SqlClient | ExportFiles

type Handler = (request: HttpServerRequest, query: Query) => Effect.Effect<HttpServerResponse.HttpServerResponse, unknown, Services>

/** `get`: one pin's value bare (several values a JSON array), several pins a JSON object keyed by lower-case pin. */
const get: Handler = (request, query) =>
  Effect.gen(function*() {
    const device = yield* deviceOf(request, query)
    const pins = yield* orRefuse(parseGet(query))
    const { view, dash } = yield* viewOf(device, refuse)
    const found: Array<[PinName, ReadonlyArray<string>]> = []
    for (const pin of pins) {
      const values = view.pins.get(pinKey(device.dashId, device.deviceId, pin.pinType, pin.pin))
      // Pinledger has no datastreams: a pin exists once it has a value.
      if (values === undefined || values.length === 0) return yield* refuse(`Requested dataStream doesn't exist in the product ${dash.name}`)
      found.push([pin, values])
    }
    if (found.length === 1) {
      const values = found[0]![1]
      return values.length === 1 ? bare(values[0]!) : json(jsonValue(values))
    }
    return json(Object.fromEntries(found.map(([pin, values]) => [pinKeyName(pin), jsonValue(values)])))
  })

/** `getAll`: every pin of the device that has a value, analog, digital, then virtual. */
const getAll: Handler = (request, query) =>
  Effect.gen(function*() {
    const device = yield* deviceOf(request, query)
    const { view } = yield* viewOf(device, refuse)
    const prefix = `${device.dashId}-${device.deviceId}-`
    const pins: Array<[PinName, ReadonlyArray<string>]> = []
    for (const [key, values] of view.pins) {
      const pin = key.startsWith(prefix) ? parsePinKey(key) : undefined
      if (pin !== undefined && values.length > 0) pins.push([pin, values])
    }
    pins.sort(([a], [b]) => comparePins(a, b))
    return json(Object.fromEntries(pins.map(([pin, values]) => [pinKeyName(pin), jsonValue(values)])))
  })

/** `update` (empty body) and the GET `batch/update` (`OK`): every pin named, one append (so one shared time), answered once committed. */
const update = (answer: () => HttpServerResponse.HttpServerResponse): Handler => (request, query) =>
  Effect.gen(function*() {
    const device = yield* deviceOf(request, query)
    const writes = yield* orRefuse(parseUpdate(query))
    return yield* writeOutcome(yield* writePins(device, writerOf(request, "external"), writes), answer)
  })

/** The POST `batch/update`: `[[tsMs, value], …]` for one pin, each point recorded with its time; the latest becomes the pin's value. */
const batchPost = (settings: ExternalApiSettings): Handler => (request, query) =>
  Effect.gen(function*() {
    const device = yield* deviceOf(request, query)
    const pin = yield* orRefuse(parseOnePin(query))
    if (pin === undefined) return yield* refuse(WRONG_PIN)
    if (!isJsonBody(request)) return yield* refuse("Unknown content type.")
    const text = yield* readBody(request)
    let body: unknown
    try {
      body = JSON.parse(text)
    } catch {
      body = undefined
    }
    const points = yield* orRefuse(parseBatchBody(body, settings.batch, yield* Clock.currentTimeMillis))
    const writes = nonEmpty(points.map((p) => ({ ...pin, values: p.values, timestamp: p.ts })))
    return yield* writeOutcome(yield* writePins(device, writerOf(request, "external"), writes), okText)
  })

/** `update/property`: the pin's properties, through the actor (PropertySet), to the apps as SET_WIDGET_PROPERTY id 111. */
const property: Handler = (request, query) =>
  Effect.gen(function*() {
    const device = yield* deviceOf(request, query)
    const { pin, properties } = yield* orRefuse(parseProperty(query))
    const outcome = yield* device.actor.ref.ask<HttpWriteOutcome, never>((reply) => ({
      _tag: "HttpProperty",
      dashId: device.dashId,
      deviceId: device.deviceId,
      pinType: "v",
      pin,
      properties,
      needsWidget: false,
      by: writerOf(request, "external"),
      reply
    }))
    return yield* writeOutcome(outcome)
  })

/** `logEvent`: an `EventLogged` in the device's stream, within the limits (429 beyond them), answered once committed. */
const logEvent = (settings: ExternalApiSettings): Handler => (request, query) =>
  Effect.gen(function*() {
    const device = yield* deviceOf(request, query)
    const { code, description } = yield* orRefuse(parseLogEvent(query))
    const outcome = yield* device.actor.ref.ask<HttpEventOutcome, never>((reply) => ({
      _tag: "HttpLogEvent",
      dashId: device.dashId,
      deviceId: device.deviceId,
      code,
      description,
      by: writerOf(request, "external"),
      reply
    }))
    switch (outcome) {
      case "committed":
        return ok()
      case "noDevice":
        return yield* refuse(INVALID_TOKEN)
      case "NoCode":
        return yield* refuse("Event code is not provided.")
      case "DescriptionTooLong":
        return yield* refuse(`Description is too long: at most ${MAX_DESCRIPTION} characters.`)
      case "TooSoon":
        return yield* refuse(`Too many events with this code: at most one per ${settings.events.codeIntervalMs} ms.`, 429)
      case "DayLimit":
        return yield* refuse(`Event limit reached: at most ${settings.events.perDay} events per device per day.`, 429)
      case "notStored":
        return yield* refuse(NOT_STORED, 500)
    }
  })

/** A number no one can guess, for the export's name: the link is the only key to the file. */
const exportNumber = () => BigInt(`0x${randomBytes(8).toString("hex")}`).toString()

/** `data/get`: the history as a table (`output=JSON`) or as a ZIP'd CSV served from the export cache (`{"link": …}`). */
const dataGet = (settings: ExternalApiSettings): Handler => (request, query) =>
  Effect.gen(function*() {
    const device = yield* deviceOf(request, query)
    const parsed = yield* orRefuse(parseExport(query))
    const now = yield* Clock.currentTimeMillis
    const { rows, truncated } = yield* exportRows(device, parsed, now, settings.exportMaxRows)
    if (rows.length === 0) return yield* refuse("No data", 500)
    if (parsed.output === "JSON") return json(tableJson(rows, parsed, truncated))
    const name = `device_data_${exportNumber()}_${fileStamp(now)}`
    const exports = yield* ExportFiles
    exports.put(`${name}.zip`, exportZip(name, csvOf(rows, parsed), now), now, "application/zip")
    return json({ link: `${settings.publicUrl}/${name}.zip` })
  })

/** `isHardwareConnected`: bare `true` or `false`. */
const isHardwareConnected: Handler = (request, query) =>
  Effect.gen(function*() {
    const device: TokenDevice = yield* deviceOf(request, query)
    const { view } = yield* viewOf(device, refuse)
    return bare(String(view.online.has(`${device.dashId}-${device.deviceId}`)))
  })

/**
 * Runs a handler; an early `Reply` is the answer, anything unexpected a 500 (logged without the
 * request's URL: its query holds the token).
 */
const run = (name: string, handler: Handler, request: HttpServerRequest) =>
  Effect.suspend(() => handler(request, queryOf(request.url))).pipe(
    Effect.catchCause((cause) => {
      const reply = Cause.findErrorOption(cause)
      if (Option.isSome(reply) && reply.value instanceof Reply) return Effect.succeed(reply.value.response)
      if (Cause.hasInterruptsOnly(cause)) return Effect.failCause(cause)
      return Effect.as(Effect.logWarning(`HTTP external/api/${name} failed`, cause), errorResponse(500, "Server error."))
    })
  )

/** The routes and their layer; `GET /{file}` (LegacyApi) serves the export links. */
export const layer = (settings: ExternalApiSettings) => {
  const routes: Readonly<Record<string, Partial<Record<string, Handler>>>> = {
    "get": { GET: get },
    "getall": { GET: getAll },
    "update": { GET: update(ok) },
    "batch/update": { GET: update(okText), POST: batchPost(settings) },
    "update/property": { GET: property },
    "logevent": { GET: logEvent(settings) },
    "data/get": { GET: dataGet(settings) },
    "ishardwareconnected": { GET: isHardwareConnected }
  }
  const dispatch = (request: HttpServerRequest) =>
    Effect.flatMap(HttpRouter.params, (params) => {
      const name = endpointOf(params["*"] ?? "")
      const handler = routes[name]?.[request.method]
      return handler === undefined ? Effect.succeed(HttpServerResponse.empty({ status: 404 })) : run(name, handler, request)
    })
  return Layer.mergeAll(
    HttpRouter.add("GET", "/external/api/*", dispatch),
    HttpRouter.add("POST", "/external/api/*", dispatch)
  )
}
