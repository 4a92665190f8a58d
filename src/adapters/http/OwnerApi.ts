import { Context, Schema } from "effect"
import type { Metadata } from "../../eventstore/Event.ts"
import { HttpApi, HttpApiEndpoint, HttpApiGroup, HttpApiMiddleware, HttpApiSchema, HttpApiSecurity, OpenApi } from "effect/http-api"

/**
 * The owner HTTP API (issue 5 §2, §3): an account's devices, pin values, history, shares and
 * audit, for its owner, under `/api/v1`. This file only declares it (paths, payloads, answers,
 * errors, authentication) with `effect/http-api`; the OpenAPI document at
 * `GET /api/v1/openapi.json` is generated from this declaration, and OwnerRoutes.ts implements it.
 *
 * Path and query values are declared as text and read by OwnerParams.ts, so that a bad value is
 * answered with a message naming the value and what it should be; JSON bodies are Schemas.
 */

export const API_PREFIX = "/api/v1"
export const OPENAPI_PATH = `${API_PREFIX}/openapi.json` as const

// ---------------------------------------------------------------------------------------------
// Errors: a JSON body `{"_tag": …, "message": …}` with the status
// ---------------------------------------------------------------------------------------------

export class BadInput extends Schema.TaggedError<BadInput>()("BadInput", { message: Schema.String }, {
  httpApiStatus: 400,
  description: "A path value, query value or body that cannot be used; the message says which and why"
}) {}

export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", { message: Schema.String }, {
  httpApiStatus: 401,
  description: "No credentials, wrong ones, or a session that ended"
}) {}

export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", { message: Schema.String }, {
  httpApiStatus: 404,
  description: "No such dashboard, device or pin value in the caller's account"
}) {}

export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", { message: Schema.String }, {
  httpApiStatus: 413,
  description: "A request body larger than the API takes"
}) {}

export class TooManyFailures extends Schema.TaggedError<TooManyFailures>()("TooManyFailures", { message: Schema.String }, {
  httpApiStatus: 429,
  description: "The caller's address is blocked after too many failed logins (PINLEDGER_LOGIN_MAX_FAILURES)"
}) {}

// ---------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------

/** Who is calling: the account's owner, authenticated for this request. */
export interface CallerInfo {
  readonly email: string
  readonly appName: string
  /** The account's stream (`user-<digest>`). */
  readonly stream: string
  /** The session's id in the metadata of what the caller changes (`api-<uuid>`), fixed at login. */
  readonly session: string
  /** The address this request came from. */
  readonly address: string
}

export class Caller extends Context.Service<Caller, CallerInfo>()("pinledger/adapters/http/OwnerApi/Caller") {}

/** Who the owner API's changes are by, as the log's metadata names them. */
export const apiActor = (email: string) => `api:${email}`

/** The metadata of what a caller changes: `api:<email>`, the session, the request's address, the time. */
export const callerMetadata = (caller: Pick<CallerInfo, "email" | "session" | "address">, now: number): Metadata => ({
  actor: apiActor(caller.email),
  session: caller.session,
  remoteAddress: caller.address,
  time: new Date(now).toISOString()
})

/**
 * A bearer token from `POST /api/v1/login`, or HTTP Basic with the account's e-mail and password
 * (app name `Blynk`). The owner only: a share token opens nothing here.
 */
export class Authentication extends HttpApiMiddleware.Service<Authentication, { provides: Caller }>()(
  "pinledger/adapters/http/OwnerApi/Authentication",
  {
    error: [Unauthenticated, TooManyFailures],
    security: { bearer: HttpApiSecurity.bearer, basic: HttpApiSecurity.basic }
  }
) {}

/** Bad input of any endpoint (a body that does not decode, one that is too large) as a JSON error. */
export class InputErrors extends HttpApiMiddleware.Service<InputErrors>()("pinledger/adapters/http/OwnerApi/InputErrors", {
  error: [BadInput, PayloadTooLarge]
}) {}

// ---------------------------------------------------------------------------------------------
// Payloads and answers
// ---------------------------------------------------------------------------------------------

const described = <S extends Schema.Top>(schema: S, description: string) => schema.annotate({ description }) as S["Rebuild"]

const Text = (description: string) => described(Schema.String, description)
const OptionalText = (description: string) => Schema.optional(Text(description))

export const LoginRequest = Schema.Struct({
  email: Schema.String.check(Schema.isMaxLength(254)),
  password: Schema.String.check(Schema.isMaxLength(1024)),
  appName: Schema.optional(described(Schema.String.check(Schema.isMaxLength(50)), "the account's app name; `Blynk` when left out"))
})

export const LoginAnswer = Schema.Struct({
  token: Text("send it as `Authorization: Bearer <token>`"),
  expiresAt: Text("when the session ends (ISO 8601); a password change ends it sooner"),
  email: Schema.String,
  appName: Schema.String
})

export const DeviceView = Schema.Struct({
  dashId: Schema.Int,
  dashboard: Text("the dashboard's name"),
  id: Schema.Int,
  name: Schema.String,
  boardType: Schema.String,
  token: Text("the device's token: what its firmware logs in with"),
  online: described(Schema.Boolean, "at least one connection of the device is open now")
})

const PinName = Text("a pin: `V0`–`V255`, `D0`–`D255` or `A0`–`A255` (either case)")

export const PinValue = Schema.Struct({
  pin: described(Schema.String, "`V1`, `D8`, `A0`…"),
  values: described(Schema.Array(Schema.String), "the pin's values as text (several for a multi-value write)")
})

/** A value as JSON may give it; it is stored as text, as the Blynk protocol carries it. */
const Scalar = Schema.Union([Schema.String, Schema.Finite, Schema.Boolean])
const Values = described(
  Schema.Array(Scalar).check(Schema.isMinLength(1), Schema.isMaxLength(100)),
  "1 to 100 values (several make a multi-value write); numbers and booleans are stored as their text"
)

export const WritePin = Schema.Struct({ values: Values })

export const WritePins = Schema.Struct({
  writes: described(
    Schema.Array(Schema.Struct({ pin: PinName, values: Values })).check(Schema.isMinLength(1), Schema.isMaxLength(1000)),
    "1 to 1000 pin writes of the device, in order (a pin named twice ends with its last values); one commit"
  )
})

export const RawPoint = Schema.Struct({
  ts: described(Schema.Finite, "the write's time, epoch ms"),
  time: Schema.String,
  values: Schema.Array(Schema.String),
  number: described(Schema.NullOr(Schema.Finite), "the value as a number, when it is one")
})

export const PeriodPoint = Schema.Struct({
  ts: described(Schema.Finite, "the period's start, epoch ms (UTC)"),
  time: Schema.String,
  avg: Schema.Finite,
  min: Schema.Finite,
  max: Schema.Finite,
  count: described(Schema.Int, "numeric values written in the period")
})

export const HistoryAnswer = Schema.Struct({
  pin: Schema.String,
  rollup: Schema.Literals(["raw", "minute", "hour", "day"]),
  from: described(Schema.Finite, "epoch ms, inclusive"),
  to: described(Schema.Finite, "epoch ms, exclusive"),
  points: described(
    Schema.Array(Schema.Union([RawPoint, PeriodPoint])),
    "oldest first: raw samples (`rollup=raw`) or periods starting within [from, to)"
  ),
  next: described(Schema.NullOr(Schema.Finite), "when `limit` cut the answer short: the `from` of the next page")
})

export const ShareView = Schema.Struct({
  dashId: Schema.Int,
  dashboard: Schema.String,
  sharing: described(Schema.Boolean, "whether the share token opens the dashboard now (SHARING on)"),
  token: described(Schema.NullOr(Schema.String), "the dashboard's share token, null until one is made")
})

export const SetSharing = Schema.Struct({ enabled: Schema.Boolean })

export const AuditEntry = Schema.Struct({
  position: Schema.Finite,
  recordedAt: Schema.String,
  stream: Schema.String,
  version: Schema.Finite,
  type: Schema.String,
  schemaVersion: Schema.Finite,
  actor: Schema.NullOr(Schema.String),
  session: Schema.NullOr(Schema.String),
  remoteAddress: Schema.NullOr(Schema.String),
  time: Schema.NullOr(Schema.String),
  data: described(Schema.Json, "the event's data; tokens, share tokens, clone codes, hashes and secrets show as ***")
})

export const AuditPage = Schema.Struct({
  entries: Schema.Array(AuditEntry),
  next: described(Schema.NullOr(Schema.Finite), "the `after` of the next page; null at the end")
})

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

const DashParams = { dashId: Text("a dashboard id of the caller's account") }
const DeviceParams = { ...DashParams, deviceId: Text("a device id within the dashboard") }
const PinParams = { ...DeviceParams, pin: PinName }
const DEVICE = "/dashboards/:dashId/devices/:deviceId" as const

const Missing = [NotFound, BadInput] as const

export const SessionGroup = HttpApiGroup.make("session")
  .add(
    HttpApiEndpoint.post("login", "/login", { payload: LoginRequest, success: LoginAnswer, error: [Unauthenticated, TooManyFailures] })
      .annotate(OpenApi.Description, "Checks the account's e-mail and password and opens a session: its bearer token. A failure counts towards the address's login throttle; a blocked address is refused (429) before any check.")
  )
  .add(
    HttpApiEndpoint.post("logout", "/logout", { success: HttpApiSchema.NoContent })
      .annotate(OpenApi.Description, "Ends the bearer session of the request (with HTTP Basic there is none: nothing happens).")
      .middleware(Authentication)
  )

export const DevicesGroup = HttpApiGroup.make("devices")
  .add(HttpApiEndpoint.get("list", "/devices", { success: Schema.Array(DeviceView) }))
  .add(HttpApiEndpoint.get("get", DEVICE, { params: DeviceParams, success: DeviceView, error: Missing }))
  .add(
    HttpApiEndpoint.post("reprovision", `${DEVICE}/reprovision`, { params: DeviceParams, success: DeviceView, error: Missing })
      .annotate(OpenApi.Description, "A new token for the device (as the app's REFRESH_TOKEN): its connections are closed and the old token is refused from then on.")
  )
  .middleware(Authentication)

export const PinsGroup = HttpApiGroup.make("pins")
  .add(HttpApiEndpoint.get("list", `${DEVICE}/pins`, { params: DeviceParams, success: Schema.Array(PinValue), error: Missing }))
  .add(HttpApiEndpoint.get("get", `${DEVICE}/pins/:pin`, { params: PinParams, success: PinValue, error: Missing }))
  .add(
    HttpApiEndpoint.put("write", `${DEVICE}/pins/:pin`, { params: PinParams, payload: WritePin, success: PinValue, error: Missing })
      .annotate(OpenApi.Description, "Writes the pin: sent to the device's connections (message id 111) and to the apps of an active project, answered once committed.")
  )
  .add(
    HttpApiEndpoint.post("writeMany", `${DEVICE}/pins`, { params: DeviceParams, payload: WritePins, success: Schema.Array(PinValue), error: Missing })
      .annotate(OpenApi.Description, "Writes several pins of the device in one commit, all or none.")
  )
  .add(
    HttpApiEndpoint.get("history", `${DEVICE}/pins/:pin/history`, {
      params: PinParams,
      query: {
        rollup: OptionalText("`raw` (every value written, the default), `minute`, `hour` or `day` (average, min, max, count)"),
        from: OptionalText("start, inclusive: ISO 8601 (`2026-01-01`, `2026-01-01T12:00:00Z`) or epoch ms; by default one period before `to` (raw and minute: a day, hour: 30 days, day: 365 days)"),
        to: OptionalText("end, exclusive: ISO 8601 or epoch ms; now by default"),
        limit: OptionalText("at most this many points, 1 to 10000 (1000 by default)")
      },
      success: HistoryAnswer,
      error: Missing
    })
  )
  .middleware(Authentication)

export const SharesGroup = HttpApiGroup.make("shares")
  .add(HttpApiEndpoint.get("list", "/shares", { success: Schema.Array(ShareView) }))
  .add(HttpApiEndpoint.get("get", "/dashboards/:dashId/share", { params: DashParams, success: ShareView, error: Missing }))
  .add(
    HttpApiEndpoint.put("set", "/dashboards/:dashId/share", { params: DashParams, payload: SetSharing, success: ShareView, error: Missing })
      .annotate(OpenApi.Description, "Switches sharing on or off (as the app's SHARING): while off, the share token opens nothing.")
  )
  .add(
    HttpApiEndpoint.post("token", "/dashboards/:dashId/share/token", { params: DashParams, success: ShareView, error: Missing })
      .annotate(OpenApi.Description, "The dashboard's share token, made the first time (as the app's GET_SHARE_TOKEN).")
  )
  .add(
    HttpApiEndpoint.post("revoke", "/dashboards/:dashId/share/revoke", { params: DashParams, success: ShareView, error: Missing })
      .annotate(OpenApi.Description, "Revokes the share token and gives the dashboard a new one (as the app's REFRESH_SHARE_TOKEN): every shared app of the dashboard is closed.")
  )
  .middleware(Authentication)

export const AuditGroup = HttpApiGroup.make("audit")
  .add(
    HttpApiEndpoint.get("query", "/audit", {
      query: {
        type: Schema.optional(described(Schema.Array(Schema.String), "event types, repeated or comma-separated (`ShareRevoked,ShareGranted`)")),
        since: OptionalText("recorded at or after: ISO 8601 or epoch ms"),
        until: OptionalText("recorded before: ISO 8601 or epoch ms"),
        address: OptionalText("the remote address's host (`10.0.0.7` matches `10.0.0.7:53211`), or one `host:port`"),
        dash: OptionalText("with `device`: one device's events"),
        device: OptionalText("with `dash`: one device's events"),
        limit: OptionalText("page size, 1 to 1000 (50 by default)"),
        after: OptionalText("the previous page's `next`")
      },
      success: AuditPage,
      error: BadInput
    }).annotate(OpenApi.Description, "The caller's account's events, oldest first, a page at a time: its streams and the failed logins that named its e-mail. Secrets are masked.")
  )
  .middleware(Authentication)

export const OwnerApi = HttpApi.make("pinledger-owner")
  .add(SessionGroup, DevicesGroup, PinsGroup, SharesGroup, AuditGroup)
  .prefix(API_PREFIX)
  .middleware(InputErrors)
  .annotate(OpenApi.Title, "Pinledger owner API")
  .annotate(OpenApi.Version, "1")
  .annotate(
    OpenApi.Description,
    "An account's devices, pin values, history, shares and audit trail, for its owner. Every write is an event in the log with the caller's address, answered once committed."
  )
