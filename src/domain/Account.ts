import { Schema } from "effect"
import { chartStreams } from "./Graphs.ts"
import { PinTypeSchema } from "./Pins.ts"
import { type JsonObject, type Widget, widgetId, widgetType } from "./Widgets.ts"

/**
 * The account and its configuration: the `user-<id>` stream (DESIGN.md). Registration,
 * dashboards (their settings and widgets kept as the app's JSON), devices with their tokens,
 * tags and activation. Pure: hashes, tokens and times are computed outside and come in the
 * commands.
 */

export const Email = Schema.String.check(
  Schema.isMaxLength(254),
  Schema.isPattern(/^[^\s@\u0000]+@[^\s@\u0000]+$/)
)
export const AppName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,50}$/))
export const DashId = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2_147_483_647 }))
export const DeviceId = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 99_999 }))
export const TagId = Schema.Int.check(Schema.isBetween({ minimum: 100_000, maximum: 199_999 }))
/** 24 random bytes, URL-safe Base64 (protocol.md §4.4); older 32-hex tokens match too. */
export const Token = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{32}$/))
/** A salted slow hash of the client's password hash, in the form the adapter writes. */
export const PasswordHash = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(512))
/** The SHA-256 (hex) of a token mailed to the account's address: the log never holds the token itself. */
export const TokenDigest = Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/))
/** A time in epoch milliseconds. */
const Millis = Schema.Int
const Name = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(50))
const Json = Schema.Record(Schema.String, Schema.Json)

export class AccountRegistered extends Schema.TaggedClass<AccountRegistered>()("AccountRegistered", {
  email: Email,
  appName: AppName,
  passwordHash: PasswordHash
}) {}
export class DashboardCreated extends Schema.TaggedClass<DashboardCreated>()("DashboardCreated", {
  dashId: DashId,
  name: Name,
  /** The dashboard's JSON without id, devices, widgets, tags and activation. */
  settings: Schema.optional(Json),
  widgets: Schema.optional(Schema.Array(Json))
}) {}
export class DashboardUpdated extends Schema.TaggedClass<DashboardUpdated>()("DashboardUpdated", {
  dashId: DashId,
  name: Name,
  settings: Json,
  widgets: Schema.Array(Json)
}) {}
export class ProjectSettingsUpdated extends Schema.TaggedClass<ProjectSettingsUpdated>()("ProjectSettingsUpdated", {
  dashId: DashId,
  name: Name,
  settings: Json
}) {}
export class DashboardDeleted extends Schema.TaggedClass<DashboardDeleted>()("DashboardDeleted", { dashId: DashId }) {}
export class DashboardActivated extends Schema.TaggedClass<DashboardActivated>()("DashboardActivated", { dashId: DashId }) {}
export class DashboardDeactivated extends Schema.TaggedClass<DashboardDeactivated>()("DashboardDeactivated", {
  dashId: DashId
}) {}
export class DeviceCreated extends Schema.TaggedClass<DeviceCreated>()("DeviceCreated", {
  dashId: DashId,
  deviceId: DeviceId,
  name: Name,
  boardType: Name,
  token: Token,
  /** What else the app sent (vendor, connectionType, iconName...), kept for its JSON view. */
  extra: Schema.optional(Json)
}) {}
export class DeviceUpdated extends Schema.TaggedClass<DeviceUpdated>()("DeviceUpdated", {
  dashId: DashId,
  deviceId: DeviceId,
  name: Name,
  boardType: Name,
  extra: Json
}) {}
/** The device got a new token; the old one is refused from this event on. */
export class DeviceTokenRefreshed extends Schema.TaggedClass<DeviceTokenRefreshed>()("DeviceTokenRefreshed", {
  dashId: DashId,
  deviceId: DeviceId,
  token: Token
}) {}
export class DeviceDeleted extends Schema.TaggedClass<DeviceDeleted>()("DeviceDeleted", {
  dashId: DashId,
  deviceId: DeviceId
}) {}
export class WidgetCreated extends Schema.TaggedClass<WidgetCreated>()("WidgetCreated", { dashId: DashId, widget: Json }) {}
export class WidgetUpdated extends Schema.TaggedClass<WidgetUpdated>()("WidgetUpdated", { dashId: DashId, widget: Json }) {}
export class WidgetDeleted extends Schema.TaggedClass<WidgetDeleted>()("WidgetDeleted", {
  dashId: DashId,
  widgetId: Schema.Number
}) {}
/** A Device Selector widget now points at another device (the app's `vu`). */
export class DeviceSelected extends Schema.TaggedClass<DeviceSelected>()("DeviceSelected", {
  dashId: DashId,
  widgetId: Schema.Number,
  deviceId: DeviceId
}) {}
export class TagSaved extends Schema.TaggedClass<TagSaved>()("TagSaved", {
  dashId: DashId,
  tagId: TagId,
  name: Schema.String,
  deviceIds: Schema.Array(DeviceId)
}) {}
export class TagDeleted extends Schema.TaggedClass<TagDeleted>()("TagDeleted", { dashId: DashId, tagId: TagId }) {}
/** The dashboard got a share token (protocol.md §4.2): whoever holds it may control the dashboard while sharing is on. */
export class ShareGranted extends Schema.TaggedClass<ShareGranted>()("ShareGranted", { dashId: DashId, token: Token }) {}
/** The dashboard's share token is void from this event on; its shared sessions are closed. */
export class ShareRevoked extends Schema.TaggedClass<ShareRevoked>()("ShareRevoked", { dashId: DashId }) {}
/** SHARING on/off: the token stays, but with sharing off it opens nothing. */
export class SharingSwitched extends Schema.TaggedClass<SharingSwitched>()("SharingSwitched", {
  dashId: DashId,
  on: Schema.Boolean
}) {}
/** A clone code for the dashboard's layout as it was then (no values, tokens or share token). */
export class CloneCodeIssued extends Schema.TaggedClass<CloneCodeIssued>()("CloneCodeIssued", {
  dashId: DashId,
  code: Token,
  layout: Json
}) {}
/** DELETE_ENHANCED_GRAPH_DATA: the history of these pins (`[deviceId, pinType, pin]`, a chart's data streams) is gone. */
export class GraphDataDeleted extends Schema.TaggedClass<GraphDataDeleted>()("GraphDataDeleted", {
  dashId: DashId,
  widgetId: Schema.Number,
  pins: Schema.Array(Schema.Tuple([DeviceId, PinTypeSchema, Schema.Int]))
}) {}

/** A password reset was asked for (RESET_PASSWORD `start`); it voids the token of any earlier one. */
export class PasswordResetRequested extends Schema.TaggedClass<PasswordResetRequested>()("PasswordResetRequested", {
  tokenDigest: TokenDigest,
  expiresAt: Millis
}) {}
/** A new password (RESET_PASSWORD `reset`); the reset token is used up. */
export class PasswordChanged extends Schema.TaggedClass<PasswordChanged>()("PasswordChanged", {
  passwordHash: PasswordHash
}) {}
/** The account must confirm its address (PINLEDGER_REGISTRATION=verify) before it may log in. */
export class EmailVerificationRequested extends Schema.TaggedClass<EmailVerificationRequested>()("EmailVerificationRequested", {
  tokenDigest: TokenDigest,
  expiresAt: Millis
}) {}
/** The address is confirmed: the account may log in. */
export class EmailVerified extends Schema.TaggedClass<EmailVerified>()("EmailVerified", {}) {}

export const AccountEvent = Schema.Union([
  AccountRegistered,
  DashboardCreated,
  DashboardUpdated,
  ProjectSettingsUpdated,
  DashboardDeleted,
  DashboardActivated,
  DashboardDeactivated,
  DeviceCreated,
  DeviceUpdated,
  DeviceTokenRefreshed,
  DeviceDeleted,
  WidgetCreated,
  WidgetUpdated,
  WidgetDeleted,
  TagSaved,
  TagDeleted,
  DeviceSelected,
  ShareGranted,
  ShareRevoked,
  SharingSwitched,
  CloneCodeIssued,
  PasswordResetRequested,
  PasswordChanged,
  EmailVerificationRequested,
  EmailVerified,
  GraphDataDeleted
])
export type AccountEvent = typeof AccountEvent.Type

export interface Device {
  readonly id: number
  readonly name: string
  readonly boardType: string
  readonly token: string
  readonly extra: JsonObject
}
export interface Tag {
  readonly id: number
  readonly name: string
  readonly deviceIds: ReadonlyArray<number>
}
export interface Dashboard {
  readonly id: number
  readonly name: string
  readonly settings: JsonObject
  readonly widgets: ReadonlyArray<Widget>
  readonly devices: ReadonlyArray<Device>
  readonly tags: ReadonlyArray<Tag>
  readonly isActive: boolean
  /** The current share token, if one was ever issued and not deleted with the dashboard. */
  readonly shareToken?: string | undefined
}
/** A token mailed to the account, known by its digest, good until `expiresAt` (epoch ms). */
export interface PendingToken {
  readonly tokenDigest: string
  readonly expiresAt: number
}
export interface Account {
  readonly email: string
  readonly appName: string
  readonly passwordHash: string
  readonly dashboards: ReadonlyArray<Dashboard>
  /** The password reset asked for last and not yet used. */
  readonly passwordReset?: PendingToken | undefined
  /** Present while the address waits for confirmation; absent means confirmed (the CLI's, the first, the older accounts). */
  readonly emailVerification?: PendingToken | undefined
}
/** `undefined` until the account is registered. */
export type AccountState = Account | undefined

export interface NewDevice {
  readonly deviceId: number
  readonly name: string
  readonly boardType: string
  readonly token: string
  readonly extra?: JsonObject
}

export type AccountCommand =
  | {
    readonly _tag: "Register"
    readonly email: string
    readonly appName: string
    readonly passwordHash: string
    /** The confirmation link's token, when the address must be confirmed before the first login. */
    readonly verification?: PendingToken
  }
  | {
    readonly _tag: "CreateDashboard"
    readonly dashId: number
    readonly name: string
    readonly settings?: JsonObject
    readonly widgets?: ReadonlyArray<Widget>
    readonly devices?: ReadonlyArray<NewDevice>
  }
  | {
    readonly _tag: "UpdateDashboard"
    readonly dashId: number
    readonly name: string
    readonly settings: JsonObject
    readonly widgets: ReadonlyArray<Widget>
  }
  | { readonly _tag: "UpdateProjectSettings"; readonly dashId: number; readonly name: string; readonly settings: JsonObject }
  | { readonly _tag: "DeleteDashboard"; readonly dashId: number }
  | { readonly _tag: "Activate"; readonly dashId: number }
  /** No dashId: every active dashboard. */
  | { readonly _tag: "Deactivate"; readonly dashId?: number }
  | ({ readonly _tag: "CreateDevice"; readonly dashId: number } & NewDevice)
  | {
    readonly _tag: "UpdateDevice"
    readonly dashId: number
    readonly deviceId: number
    readonly name: string
    readonly boardType: string
    readonly extra: JsonObject
  }
  | { readonly _tag: "DeleteDevice"; readonly dashId: number; readonly deviceId: number }
  | { readonly _tag: "RefreshToken"; readonly dashId: number; readonly deviceId: number; readonly token: string }
  | { readonly _tag: "CreateWidget"; readonly dashId: number; readonly widget: Widget }
  | { readonly _tag: "UpdateWidget"; readonly dashId: number; readonly widget: Widget }
  | { readonly _tag: "DeleteWidget"; readonly dashId: number; readonly widgetId: number }
  | { readonly _tag: "CreateTag"; readonly dashId: number; readonly tag: Tag }
  | { readonly _tag: "UpdateTag"; readonly dashId: number; readonly tag: Tag }
  | { readonly _tag: "DeleteTag"; readonly dashId: number; readonly tagId: number }
  | { readonly _tag: "SelectDevice"; readonly dashId: number; readonly widgetId: number; readonly deviceId: number }
  /** The dashboard's share token; `token` is used only when it has none yet. */
  | { readonly _tag: "GetShareToken"; readonly dashId: number; readonly token: string }
  /** A new share token; the old one is revoked. */
  | { readonly _tag: "RefreshShareToken"; readonly dashId: number; readonly token: string }
  | { readonly _tag: "SetSharing"; readonly dashId: number; readonly on: boolean }
  | { readonly _tag: "IssueCloneCode"; readonly dashId: number; readonly code: string }
  /** The history of a Superchart's data streams (one stream with `streamIndex`), `targetId` as in the request. */
  | { readonly _tag: "DeleteGraphData"; readonly dashId: number; readonly widgetId: number; readonly targetId?: number; readonly streamIndex?: number }
  /** A new reset token (its digest); an older one is void from then on. */
  | { readonly _tag: "RequestPasswordReset"; readonly tokenDigest: string; readonly expiresAt: number }
  /** Decides nothing: refused unless the token is the current, unexpired, unused one. */
  | { readonly _tag: "CheckPasswordReset"; readonly tokenDigest: string; readonly now: number }
  | { readonly _tag: "ResetPassword"; readonly tokenDigest: string; readonly now: number; readonly passwordHash: string }
  /** A fresh confirmation link for an address whose link expired unused. */
  | { readonly _tag: "RenewEmailVerification"; readonly tokenDigest: string; readonly expiresAt: number; readonly now: number }
  | { readonly _tag: "VerifyEmail"; readonly tokenDigest: string; readonly now: number }

/** Why a command was refused; the adapter maps the reason to the Blynk status the command uses. */
export class AccountRejected extends Schema.TaggedError<AccountRejected>()("AccountRejected", {
  reason: Schema.Literals([
    "AlreadyRegistered",
    "NotRegistered",
    "DuplicateId",
    "UnknownDashboard",
    "UnknownDevice",
    "UnknownWidget",
    "UnknownTag",
    "InvalidInput",
    "NotAllowed",
    /** More dashboards than `Limits.maxDashboards` (the adapter answers QUOTA_LIMIT). */
    "TooManyDashboards",
    /** More devices in a dashboard than `Limits.maxDevicesPerDashboard` (NOT_ALLOWED). */
    "TooManyDevices"
  ]),
  detail: Schema.String
}) {
  override get message() {
    return `${this.reason}: ${this.detail}`
  }
}

const reject = (reason: AccountRejected["reason"], detail: string) => new AccountRejected({ reason, detail })

const valid = <S extends Schema.Top>(schema: S, value: unknown) => Schema.is(schema)(value)

/** Lower-cases the address part that identifies an account, as the reference server does. */
export const normalizeEmail = (email: string) => email.trim().toLowerCase()

/** Whether `tokenDigest` is the pending token's and it has not expired at `now`. */
export const tokenValid = (pending: PendingToken | undefined, tokenDigest: string, now: number): boolean =>
  pending !== undefined && pending.tokenDigest === tokenDigest && now < pending.expiresAt

const validPending = (p: PendingToken) => valid(TokenDigest, p.tokenDigest) && valid(Millis, p.expiresAt)

/** Whether the account may log in as far as its address goes. */
export const isConfirmed = (account: Account): boolean => account.emailVerification === undefined

export const findDashboard = (state: AccountState, dashId: number) => state?.dashboards.find((d) => d.id === dashId)
export const findDevice = (dash: Dashboard | undefined, deviceId: number) => dash?.devices.find((d) => d.id === deviceId)

const validDevice = (d: NewDevice) =>
  valid(DeviceId, d.deviceId) && valid(Name, d.name) && valid(Name, d.boardType) && valid(Token, d.token)

const validWidget = (w: Widget) => Number.isSafeInteger(widgetId(w)) && widgetType(w) !== undefined

type Decided = ReadonlyArray<AccountEvent> | AccountRejected

const withDashboard = (state: AccountState, dashId: number, f: (account: Account, dash: Dashboard) => Decided): Decided => {
  if (state === undefined) return reject("NotRegistered", "no such account")
  const dash = findDashboard(state, dashId)
  return dash === undefined ? reject("UnknownDashboard", `no dashboard ${dashId}`) : f(state, dash)
}

const allTokens = (state: Account) => new Set(state.dashboards.flatMap((d) => d.devices.map((v) => v.token)))

/** Whether a dashboard is shared (its `isShared` setting, as the app and SHARING set it). */
export const isShared = (dash: Dashboard) => dash.settings["isShared"] === true

/**
 * A dashboard's layout for a clone (protocol.md §4.3): name, settings, widgets without values,
 * devices without tokens or status, tags; never shared.
 */
export const cloneLayout = (dash: Dashboard): JsonObject => ({
  ...dash.settings,
  isShared: false,
  name: dash.name,
  widgets: dash.widgets.map(({ value: _value, ...w }) => w),
  devices: dash.devices.map((d) => ({ ...d.extra, id: d.id, name: d.name, boardType: d.boardType })),
  tags: dash.tags.map((t) => ({ id: t.id, name: t.name, deviceIds: [...t.deviceIds] }))
})

/** How much an account may hold (protocol.md §6.2; settings of the server). */
export interface Limits {
  readonly maxDashboards: number
  readonly maxDevicesPerDashboard: number
}
export const defaultLimits: Limits = { maxDashboards: 100, maxDevicesPerDashboard: 50 }

export const decide = (state: AccountState, command: AccountCommand, limits: Limits = defaultLimits): Decided => {
  switch (command._tag) {
    case "Register": {
      if (state !== undefined) return reject("AlreadyRegistered", `${state.email} is already registered`)
      const email = normalizeEmail(command.email)
      if (!valid(Email, email)) return reject("InvalidInput", `bad e-mail address ${JSON.stringify(command.email)}`)
      if (!valid(AppName, command.appName)) return reject("InvalidInput", `bad app name ${JSON.stringify(command.appName)}`)
      const { verification } = command
      if (verification !== undefined && !validPending(verification)) return reject("InvalidInput", "bad token digest or expiry")
      return [
        new AccountRegistered({ email, appName: command.appName, passwordHash: command.passwordHash }),
        ...(verification === undefined ? [] : [new EmailVerificationRequested(verification)])
      ]
    }
    case "CreateDashboard": {
      if (state === undefined) return reject("NotRegistered", "no such account")
      if (!valid(DashId, command.dashId) || !valid(Name, command.name)) return reject("InvalidInput", "bad dashboard id or name")
      if (findDashboard(state, command.dashId)) return reject("DuplicateId", `dashboard ${command.dashId} exists`)
      if (state.dashboards.length >= limits.maxDashboards) {
        return reject("TooManyDashboards", `at most ${limits.maxDashboards} dashboards per account`)
      }
      const widgets = command.widgets ?? []
      if (!widgets.every(validWidget)) return reject("InvalidInput", "a widget without a numeric id")
      if (new Set(widgets.map(widgetId)).size !== widgets.length) return reject("DuplicateId", "two widgets with one id")
      const devices = command.devices ?? []
      if (!devices.every(validDevice)) return reject("InvalidInput", "bad device")
      if (new Set(devices.map((d) => d.deviceId)).size !== devices.length) return reject("DuplicateId", "two devices with one id")
      if (devices.length > limits.maxDevicesPerDashboard) {
        return reject("TooManyDevices", `at most ${limits.maxDevicesPerDashboard} devices per dashboard`)
      }
      return [
        new DashboardCreated({
          dashId: command.dashId,
          name: command.name,
          ...(command.settings ? { settings: command.settings } : {}),
          ...(widgets.length > 0 ? { widgets } : {})
        }),
        ...devices.map((d) => new DeviceCreated({ dashId: command.dashId, ...d }))
      ]
    }
    case "UpdateDashboard":
      return withDashboard(state, command.dashId, () => {
        if (!valid(Name, command.name)) return reject("InvalidInput", "bad dashboard name")
        if (!command.widgets.every(validWidget)) return reject("InvalidInput", "a widget without a numeric id")
        const { _tag, ...rest } = command
        return [new DashboardUpdated(rest)]
      })
    case "UpdateProjectSettings":
      return withDashboard(state, command.dashId, () => {
        if (!valid(Name, command.name)) return reject("InvalidInput", "bad dashboard name")
        const { _tag, ...rest } = command
        return [new ProjectSettingsUpdated(rest)]
      })
    case "DeleteDashboard":
      return withDashboard(state, command.dashId, () => [new DashboardDeleted({ dashId: command.dashId })])
    case "Activate":
      return withDashboard(state, command.dashId, () => [new DashboardActivated({ dashId: command.dashId })])
    case "Deactivate": {
      if (state === undefined) return reject("NotRegistered", "no such account")
      if (command.dashId === undefined) {
        return state.dashboards.filter((d) => d.isActive).map((d) => new DashboardDeactivated({ dashId: d.id }))
      }
      return withDashboard(state, command.dashId, () => [new DashboardDeactivated({ dashId: command.dashId! })])
    }
    case "CreateDevice":
      return withDashboard(state, command.dashId, (account, dash) => {
        const { _tag, ...device } = command
        if (!validDevice(device)) return reject("InvalidInput", "bad device")
        if (findDevice(dash, command.deviceId)) {
          return reject("DuplicateId", `device ${command.deviceId} exists in dashboard ${command.dashId}`)
        }
        if (dash.devices.length >= limits.maxDevicesPerDashboard) {
          return reject("TooManyDevices", `at most ${limits.maxDevicesPerDashboard} devices per dashboard`)
        }
        if (allTokens(account).has(command.token)) return reject("DuplicateId", "token in use")
        return [new DeviceCreated(device)]
      })
    case "UpdateDevice":
      return withDashboard(state, command.dashId, (_, dash) => {
        if (!findDevice(dash, command.deviceId)) return reject("UnknownDevice", `no device ${command.deviceId}`)
        if (!valid(Name, command.name) || !valid(Name, command.boardType)) return reject("InvalidInput", "bad device name")
        const { _tag, ...rest } = command
        return [new DeviceUpdated(rest)]
      })
    case "RefreshToken":
      return withDashboard(state, command.dashId, (account, dash) => {
        if (!findDevice(dash, command.deviceId)) return reject("UnknownDevice", `no device ${command.deviceId}`)
        if (!valid(Token, command.token)) return reject("InvalidInput", "bad token")
        if (allTokens(account).has(command.token)) return reject("DuplicateId", "token in use")
        const { _tag, ...rest } = command
        return [new DeviceTokenRefreshed(rest)]
      })
    case "DeleteDevice":
      return withDashboard(state, command.dashId, (_, dash) =>
        findDevice(dash, command.deviceId)
          ? [new DeviceDeleted({ dashId: command.dashId, deviceId: command.deviceId })]
          : reject("UnknownDevice", `no device ${command.deviceId}`))
    case "CreateWidget":
      return withDashboard(state, command.dashId, (_, dash) => {
        if (!validWidget(command.widget)) return reject("InvalidInput", "a widget needs a numeric id and a type")
        if (dash.widgets.some((w) => widgetId(w) === widgetId(command.widget))) {
          return reject("DuplicateId", `widget ${widgetId(command.widget)} exists`)
        }
        return [new WidgetCreated({ dashId: command.dashId, widget: command.widget })]
      })
    case "UpdateWidget":
      return withDashboard(state, command.dashId, (_, dash) => {
        const old = dash.widgets.find((w) => widgetId(w) === widgetId(command.widget))
        if (old === undefined) return reject("UnknownWidget", `no widget ${widgetId(command.widget)}`)
        if (widgetType(old) !== widgetType(command.widget)) return reject("InvalidInput", "a widget cannot change its type")
        return [new WidgetUpdated({ dashId: command.dashId, widget: command.widget })]
      })
    case "DeleteWidget":
      return withDashboard(state, command.dashId, (_, dash) =>
        dash.widgets.some((w) => widgetId(w) === command.widgetId)
          ? [new WidgetDeleted({ dashId: command.dashId, widgetId: command.widgetId })]
          : reject("UnknownWidget", `no widget ${command.widgetId}`))
    case "CreateTag":
    case "UpdateTag":
      return withDashboard(state, command.dashId, (_, dash) => {
        const { tag } = command
        if (!valid(TagId, tag.id) || typeof tag.name !== "string" || !tag.deviceIds.every((id) => valid(DeviceId, id))) {
          return reject("InvalidInput", "bad tag")
        }
        const unknown = tag.deviceIds.find((id) => !findDevice(dash, id))
        if (unknown !== undefined) return reject("UnknownDevice", `no device ${unknown}`)
        const exists = dash.tags.some((t) => t.id === tag.id)
        if (command._tag === "CreateTag" && exists) return reject("DuplicateId", `tag ${tag.id} exists`)
        if (command._tag === "UpdateTag" && !exists) return reject("UnknownTag", `no tag ${tag.id}`)
        return [new TagSaved({ dashId: command.dashId, tagId: tag.id, name: tag.name, deviceIds: [...tag.deviceIds] })]
      })
    case "DeleteTag":
      return withDashboard(state, command.dashId, (_, dash) =>
        dash.tags.some((t) => t.id === command.tagId)
          ? [new TagDeleted({ dashId: command.dashId, tagId: command.tagId })]
          : reject("UnknownTag", `no tag ${command.tagId}`))
    case "SelectDevice":
      return withDashboard(state, command.dashId, (_, dash) => {
        const widget = dash.widgets.find((w) => widgetId(w) === command.widgetId)
        if (widget === undefined || widgetType(widget) !== "DEVICE_SELECTOR") return reject("UnknownWidget", `no device selector ${command.widgetId}`)
        if (!findDevice(dash, command.deviceId)) return reject("UnknownDevice", `no device ${command.deviceId}`)
        const { _tag, ...rest } = command
        return [new DeviceSelected(rest)]
      })
    case "GetShareToken":
      return withDashboard(state, command.dashId, (_, dash) => {
        if (dash.shareToken !== undefined) return []
        if (!valid(Token, command.token)) return reject("InvalidInput", "bad token")
        return [new ShareGranted({ dashId: dash.id, token: command.token })]
      })
    case "RefreshShareToken":
      return withDashboard(state, command.dashId, (_, dash) => {
        if (!valid(Token, command.token) || command.token === dash.shareToken) return reject("InvalidInput", "bad token")
        return [
          ...(dash.shareToken === undefined ? [] : [new ShareRevoked({ dashId: dash.id })]),
          new ShareGranted({ dashId: dash.id, token: command.token })
        ]
      })
    case "SetSharing":
      return withDashboard(state, command.dashId, () => [new SharingSwitched({ dashId: command.dashId, on: command.on })])
    case "IssueCloneCode":
      return withDashboard(state, command.dashId, (_, dash) =>
        valid(Token, command.code)
          ? [new CloneCodeIssued({ dashId: dash.id, code: command.code, layout: cloneLayout(dash) })]
          : reject("InvalidInput", "bad clone code"))
    case "DeleteGraphData":
      return withDashboard(state, command.dashId, (_, dash) => {
        const streams = chartStreams(dash, command.widgetId, command.targetId)
        if (streams === undefined) return reject("UnknownWidget", `no chart ${command.widgetId}`)
        const chosen = command.streamIndex === undefined ? streams : streams.slice(command.streamIndex, command.streamIndex + 1)
        if (command.streamIndex !== undefined && chosen.length === 0) return reject("InvalidInput", `no data stream ${command.streamIndex}`)
        const pins = new Map(chosen.flatMap((s) => s.sources).map((p) => [`${p.deviceId}-${p.pinType}${p.pin}`, [p.deviceId, p.pinType, p.pin] as const]))
        return pins.size === 0 ? [] : [new GraphDataDeleted({ dashId: dash.id, widgetId: command.widgetId, pins: [...pins.values()] })]
      })
    case "RequestPasswordReset": {
      if (state === undefined) return reject("NotRegistered", "no such account")
      if (!validPending(command)) return reject("InvalidInput", "bad token digest or expiry")
      return [new PasswordResetRequested({ tokenDigest: command.tokenDigest, expiresAt: command.expiresAt })]
    }
    case "CheckPasswordReset":
      if (state === undefined) return reject("NotRegistered", "no such account")
      return tokenValid(state.passwordReset, command.tokenDigest, command.now) ? [] : reject("NotAllowed", "invalid reset token")
    case "ResetPassword":
      if (state === undefined) return reject("NotRegistered", "no such account")
      if (!tokenValid(state.passwordReset, command.tokenDigest, command.now)) return reject("NotAllowed", "invalid reset token")
      if (!valid(PasswordHash, command.passwordHash)) return reject("InvalidInput", "bad password hash")
      // The token came through the address, so a reset also confirms an unconfirmed one.
      return [new PasswordChanged({ passwordHash: command.passwordHash }), ...(isConfirmed(state) ? [] : [new EmailVerified()])]
    case "RenewEmailVerification": {
      if (state === undefined) return reject("NotRegistered", "no such account")
      const pending = state.emailVerification
      if (pending === undefined) return reject("NotAllowed", "the address is confirmed")
      if (command.now < pending.expiresAt) return reject("NotAllowed", "the last link is still valid")
      if (!validPending(command)) return reject("InvalidInput", "bad token digest or expiry")
      return [new EmailVerificationRequested({ tokenDigest: command.tokenDigest, expiresAt: command.expiresAt })]
    }
    case "VerifyEmail":
      if (state === undefined) return reject("NotRegistered", "no such account")
      return tokenValid(state.emailVerification, command.tokenDigest, command.now)
        ? [new EmailVerified()]
        : reject("NotAllowed", "invalid confirmation token")
  }
}

const mapDash = (state: AccountState, dashId: number, f: (d: Dashboard) => Dashboard): AccountState =>
  state && { ...state, dashboards: state.dashboards.map((d) => (d.id === dashId ? f(d) : d)) }

export const evolve = (state: AccountState, event: AccountEvent): AccountState => {
  switch (event._tag) {
    case "AccountRegistered":
      return { email: event.email, appName: event.appName, passwordHash: event.passwordHash, dashboards: [] }
    case "DashboardCreated":
      return state && {
        ...state,
        dashboards: [...state.dashboards, {
          id: event.dashId,
          name: event.name,
          settings: event.settings ?? {},
          widgets: event.widgets ?? [],
          devices: [],
          tags: [],
          isActive: false
        }]
      }
    case "DashboardUpdated":
      return mapDash(state, event.dashId, (d) => ({ ...d, name: event.name, settings: event.settings, widgets: event.widgets }))
    case "ProjectSettingsUpdated":
      return mapDash(state, event.dashId, (d) => ({ ...d, name: event.name, settings: event.settings }))
    case "DashboardDeleted":
      return state && { ...state, dashboards: state.dashboards.filter((d) => d.id !== event.dashId) }
    case "DashboardActivated":
      return mapDash(state, event.dashId, (d) => ({ ...d, isActive: true }))
    case "DashboardDeactivated":
      return mapDash(state, event.dashId, (d) => ({ ...d, isActive: false }))
    case "DeviceCreated":
      return mapDash(state, event.dashId, (d) => ({
        ...d,
        devices: [...d.devices, {
          id: event.deviceId,
          name: event.name,
          boardType: event.boardType,
          token: event.token,
          extra: event.extra ?? {}
        }]
      }))
    case "DeviceUpdated":
      return mapDash(state, event.dashId, (d) => ({
        ...d,
        devices: d.devices.map((v) =>
          v.id === event.deviceId ? { ...v, name: event.name, boardType: event.boardType, extra: event.extra } : v
        )
      }))
    case "DeviceTokenRefreshed":
      return mapDash(state, event.dashId, (d) => ({
        ...d,
        devices: d.devices.map((v) => (v.id === event.deviceId ? { ...v, token: event.token } : v))
      }))
    case "DeviceDeleted":
      return mapDash(state, event.dashId, (d) => ({
        ...d,
        devices: d.devices.filter((v) => v.id !== event.deviceId),
        tags: d.tags.map((t) => ({ ...t, deviceIds: t.deviceIds.filter((id) => id !== event.deviceId) }))
      }))
    case "WidgetCreated":
      return mapDash(state, event.dashId, (d) => ({ ...d, widgets: [...d.widgets, event.widget] }))
    case "WidgetUpdated":
      return mapDash(state, event.dashId, (d) => ({
        ...d,
        widgets: d.widgets.map((w) => (widgetId(w) === widgetId(event.widget) ? event.widget : w))
      }))
    case "WidgetDeleted":
      return mapDash(state, event.dashId, (d) => ({ ...d, widgets: d.widgets.filter((w) => widgetId(w) !== event.widgetId) }))
    case "TagSaved": {
      const tag = { id: event.tagId, name: event.name, deviceIds: event.deviceIds }
      return mapDash(state, event.dashId, (d) => ({
        ...d,
        tags: d.tags.some((t) => t.id === tag.id) ? d.tags.map((t) => (t.id === tag.id ? tag : t)) : [...d.tags, tag]
      }))
    }
    case "TagDeleted":
      return mapDash(state, event.dashId, (d) => ({ ...d, tags: d.tags.filter((t) => t.id !== event.tagId) }))
    case "DeviceSelected":
      return mapDash(state, event.dashId, (d) => ({
        ...d,
        widgets: d.widgets.map((w) => (widgetId(w) === event.widgetId ? { ...w, value: event.deviceId } : w))
      }))
    case "ShareGranted":
      return mapDash(state, event.dashId, (d) => ({ ...d, shareToken: event.token }))
    case "ShareRevoked":
      return mapDash(state, event.dashId, (d) => ({ ...d, shareToken: undefined }))
    case "SharingSwitched":
      return mapDash(state, event.dashId, (d) => ({ ...d, settings: { ...d.settings, isShared: event.on } }))
    case "CloneCodeIssued":
    case "GraphDataDeleted":
      return state
    case "PasswordResetRequested":
      return state && { ...state, passwordReset: { tokenDigest: event.tokenDigest, expiresAt: event.expiresAt } }
    case "PasswordChanged":
      return state && { ...state, passwordHash: event.passwordHash, passwordReset: undefined }
    case "EmailVerificationRequested":
      return state && { ...state, emailVerification: { tokenDigest: event.tokenDigest, expiresAt: event.expiresAt } }
    case "EmailVerified":
      return state && { ...state, emailVerification: undefined }
  }
}

/** Decides commands one after the other, each on the state the ones before it left: all or nothing. */
export const decideAll = (
  state: AccountState,
  commands: ReadonlyArray<AccountCommand>,
  limits: Limits = defaultLimits
): { readonly state: AccountState; readonly events: ReadonlyArray<AccountEvent> } | AccountRejected => {
  let next = state
  const events: Array<AccountEvent> = []
  for (const command of commands) {
    const decided = decide(next, command, limits)
    if (decided instanceof AccountRejected) return decided
    for (const event of decided) {
      events.push(event)
      next = evolve(next, event)
    }
  }
  return { state: next, events }
}

export const replay = (events: Iterable<AccountEvent>): AccountState => {
  let state: AccountState = undefined
  for (const event of events) state = evolve(state, event)
  return state
}
