import { Schema } from "effect"
import { type Dashboard, Email, findDevice } from "./Account.ts"
import { isJsonObject, type Widget, widgetType } from "./Widgets.ts"

/**
 * What devices ask the server to send (protocol.md §2.1 rows 12, 13, 14, 18): the `outbox-<id>`
 * streams. A request is decided here, appended by the account's actor, and delivered by the
 * outbox sender, which appends how it went. Pure: ids, counts and addresses come in the input.
 */

export const NotificationKind = Schema.Literals(["push", "email", "tweet", "sms"])
export type NotificationKind = typeof NotificationKind.Type

/** Longest body, in UTF-16 units as the legacy server counted (protocol.md §6.2); e-mail has none. */
export const bodyLimits = { push: 255, tweet: 140, sms: 160 } as const

export class NotificationRequested extends Schema.TaggedClass<NotificationRequested>()("NotificationRequested", {
  /** Made by the actor; the sender's events refer to it. */
  requestId: Schema.String,
  kind: NotificationKind,
  dashId: Schema.Int,
  deviceId: Schema.Int,
  /** The recipient (e-mail only; push, tweet and SMS go where the widget says). */
  to: Schema.optional(Schema.String),
  subject: Schema.optional(Schema.String),
  body: Schema.String
}) {}

export class NotificationSent extends Schema.TaggedClass<NotificationSent>()("NotificationSent", {
  requestId: Schema.String,
  kind: NotificationKind,
  /** Which sender delivered it: `smtp`, or `log` when no provider is configured. */
  by: Schema.String,
  attempt: Schema.Int
}) {}

/** One failed attempt; `final` when the sender gives up. */
export class NotificationFailed extends Schema.TaggedClass<NotificationFailed>()("NotificationFailed", {
  requestId: Schema.String,
  kind: NotificationKind,
  attempt: Schema.Int,
  reason: Schema.String,
  final: Schema.Boolean
}) {}

export const NotificationEvent = Schema.Union([NotificationRequested, NotificationSent, NotificationFailed])
export type NotificationEvent = typeof NotificationEvent.Type

/** Why a request is refused, named as the status it answers (protocol.md §1.3). */
export type NotificationRefusal =
  | "notificationInvalidBody"
  | "noActiveDashboard"
  | "notificationNotAuthorized"
  | "notAllowed"
  | "illegalCommand"
  | "quotaLimit"

export interface Refused {
  readonly _tag: "Refused"
  readonly status: NotificationRefusal
  readonly reason: string
}

export interface NotificationContext {
  readonly requestId: string
  readonly deviceId: number
  /** The account's e-mail: the default recipient and `{DEVICE_OWNER_EMAIL}`. */
  readonly ownerEmail: string
  /** `{VENDOR_EMAIL}`: the address the server sends from. */
  readonly vendorEmail: string
  /** E-mails the account has requested today, and how many it may. */
  readonly emailsToday: number
  readonly emailsPerDay: number
}

const refuse = (status: NotificationRefusal, reason: string): Refused => ({ _tag: "Refused", status, reason })

const isEmail = Schema.is(Email)

/** The dashboard's first widget of a type (the legacy `getWidgetByType`). */
export const widgetOf = (dash: Dashboard, type: string): Widget | undefined => dash.widgets.find((w) => widgetType(w) === type)

const text = (w: Widget, key: string): string => {
  const v = w[key]
  return typeof v === "string" ? v.trim() : ""
}

/** At least one push token in the widget's Android or iOS map (legacy `hasNoToken`). */
export const hasPushToken = (w: Widget) =>
  ["androidTokens", "iOSTokens"].some((key) => {
    const tokens = w[key]
    return isJsonObject(tokens) && Object.values(tokens).some((t) => typeof t === "string" && t !== "")
  })

/** The legacy `split3`: at most three fields, the last keeping any further NULs. */
const split3 = (body: string): Array<string> => {
  const first = body.indexOf("\0")
  if (first < 0) return [body]
  const second = body.indexOf("\0", first + 1)
  if (second < 0) return [body.slice(0, first), body.slice(first + 1)]
  return [body.slice(0, first), body.slice(first + 1, second), body.slice(second + 1)]
}

/**
 * Decides a device's request from the dashboard of that device and the body it sent:
 * the event to append, or the status to answer. Checks in the legacy server's order.
 */
export const decideNotification = (
  dash: Dashboard | undefined,
  kind: NotificationKind,
  body: string,
  context: NotificationContext
): NotificationRequested | Refused => {
  if (kind === "email") return decideEmail(dash, body, context)
  if (body.length === 0 || body.length > bodyLimits[kind]) {
    return refuse("notificationInvalidBody", `a ${kind} body has 1 to ${bodyLimits[kind]} characters, not ${body.length}`)
  }
  if (dash === undefined || !dash.isActive) return refuse("noActiveDashboard", "the project is not active")
  const base = { requestId: context.requestId, kind, dashId: dash.id, deviceId: context.deviceId, body: withoutNul(body) }
  switch (kind) {
    case "push": {
      const widget = widgetOf(dash, "NOTIFICATION")
      if (widget === undefined || !hasPushToken(widget)) return refuse("notificationNotAuthorized", "no Notification widget with a push token")
      return new NotificationRequested(base)
    }
    case "tweet": {
      const widget = widgetOf(dash, "TWITTER")
      if (widget === undefined || text(widget, "token") === "" || text(widget, "secret") === "") {
        return refuse("notificationNotAuthorized", "no Twitter widget with a token and a secret")
      }
      return new NotificationRequested(base)
    }
    case "sms": {
      const widget = widgetOf(dash, "SMS")
      if (widget === undefined || text(widget, "to") === "") return refuse("notificationNotAuthorized", "no SMS widget with a number")
      return new NotificationRequested({ ...base, to: text(widget, "to") })
    }
  }
}

const decideEmail = (dash: Dashboard | undefined, body: string, context: NotificationContext): NotificationRequested | Refused => {
  const fields = split3(body)
  if (fields.length < 2) return refuse("illegalCommand", "an e-mail is `to, subject, body` or `subject, body`")
  const widget = dash === undefined ? undefined : widgetOf(dash, "EMAIL")
  if (dash === undefined || widget === undefined || !dash.isActive) return refuse("notAllowed", "no Mail widget or the project is not active")
  const [given, subject, content] = fields.length === 3 ? [fields[0]!, fields[1]!, fields[2]!] : [undefined, fields[0]!, fields[1]!]
  const fill = placeholders(dash, context)
  // The widget's address wins over the device's; without either, the owner's.
  const to = fill(text(widget, "to") || given?.trim() || context.ownerEmail).trim()
  if (!isEmail(to)) return refuse("illegalCommand", "not an e-mail address")
  if (context.emailsToday >= context.emailsPerDay) return refuse("quotaLimit", `${context.emailsPerDay} e-mails a day`)
  return new NotificationRequested({
    requestId: context.requestId,
    kind: "email",
    dashId: dash.id,
    deviceId: context.deviceId,
    to,
    // A subject is one header line: a device's line breaks must not start another header.
    subject: withoutNul(fill(subject)).replace(/[\r\n]+/g, " "),
    body: withoutNul(fill(content))
  })
}

/** A NUL (a field separator the device left in) cannot be stored in the log's JSON: a space instead. */
const withoutNul = (s: string) => s.replaceAll("\0", " ")

/** `{DEVICE_NAME}`, `{DEVICE_OWNER_EMAIL}` and `{VENDOR_EMAIL}` (protocol.md §2.1, row 13). */
const placeholders = (dash: Dashboard, context: NotificationContext) => {
  const values: Record<string, string> = {
    "{DEVICE_NAME}": findDevice(dash, context.deviceId)?.name ?? "",
    "{DEVICE_OWNER_EMAIL}": context.ownerEmail,
    "{VENDOR_EMAIL}": context.vendorEmail
  }
  return (s: string) => s.replace(/\{DEVICE_NAME\}|\{DEVICE_OWNER_EMAIL\}|\{VENDOR_EMAIL\}/g, (m) => values[m] ?? m)
}
