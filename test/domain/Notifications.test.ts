import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import type { Dashboard } from "../../src/domain/Account.ts"
import {
  bodyLimits,
  decideNotification,
  type NotificationContext,
  type NotificationKind,
  NotificationRequested
} from "../../src/domain/Notifications.ts"
import type { Widget } from "../../src/domain/Widgets.ts"

const dash = (widgets: ReadonlyArray<Widget>, isActive = true): Dashboard => ({
  id: 1,
  name: "Home",
  settings: {},
  widgets,
  devices: [{ id: 0, name: "boiler", boardType: "ESP32", token: "t".repeat(32), extra: {} }],
  tags: [],
  isActive
})

const context: NotificationContext = {
  requestId: "r-1",
  deviceId: 0,
  ownerEmail: "owner@example.com",
  vendorEmail: "vendor@example.com",
  emailsToday: 0,
  emailsPerDay: 100
}

const push = { id: 1, type: "NOTIFICATION", androidTokens: { phone: "fcm-token" } }
const mail = { id: 2, type: "EMAIL" }
const twitter = { id: 3, type: "TWITTER", token: "tok", secret: "sec" }
const sms = { id: 4, type: "SMS", to: "+15550100" }
const all = [push, mail, twitter, sms]

const statusOf = (result: ReturnType<typeof decideNotification>) =>
  result._tag === "Refused" ? result.status : "accepted"

describe("notification rules (protocol.md §2.1 rows 12-14 and 18, §6.2)", () => {
  it.each([
    ["push, 255 characters", dash(all), "push", "x".repeat(255), "accepted"],
    ["push, 256 characters", dash(all), "push", "x".repeat(256), "notificationInvalidBody"],
    ["push, empty", dash(all), "push", "", "notificationInvalidBody"],
    ["push, inactive project", dash(all, false), "push", "hi", "noActiveDashboard"],
    ["push, no widget", dash([mail]), "push", "hi", "notificationNotAuthorized"],
    ["push, widget without a token", dash([{ ...push, androidTokens: {}, iOSTokens: { a: "" } }]), "push", "hi", "notificationNotAuthorized"],
    ["push, an iOS token is enough", dash([{ id: 1, type: "NOTIFICATION", iOSTokens: { p: "apns" } }]), "push", "hi", "accepted"],
    ["push, too long and inactive: the body first", dash(all, false), "push", "x".repeat(300), "notificationInvalidBody"],
    ["tweet, 140 characters", dash(all), "tweet", "x".repeat(140), "accepted"],
    ["tweet, 141 characters", dash(all), "tweet", "x".repeat(141), "notificationInvalidBody"],
    ["tweet, no secret", dash([{ ...twitter, secret: "" }]), "tweet", "hi", "notificationNotAuthorized"],
    ["sms, 160 characters", dash(all), "sms", "x".repeat(160), "accepted"],
    ["sms, 161 characters", dash(all), "sms", "x".repeat(161), "notificationInvalidBody"],
    ["sms, widget without a number", dash([{ ...sms, to: "" }]), "sms", "hi", "notificationNotAuthorized"],
    ["sms, inactive project", dash(all, false), "sms", "hi", "noActiveDashboard"],
    ["email, subject and body", dash(all), "email", "subject\0body", "accepted"],
    ["email, one field", dash(all), "email", "just text", "illegalCommand"],
    ["email, no Mail widget", dash([push]), "email", "s\0b", "notAllowed"],
    ["email, inactive project", dash(all, false), "email", "s\0b", "notAllowed"],
    ["email, a bad address", dash(all), "email", "not an address\0s\0b", "illegalCommand"],
    ["no dashboard", undefined, "push", "hi", "noActiveDashboard"]
  ] as const)("%s: %s", (_, d, kind, body, expected) => {
    expect(statusOf(decideNotification(d, kind, body, context))).toBe(expected)
  })

  it("counts push lengths in UTF-16 units, as the legacy server did", () => {
    expect(statusOf(decideNotification(dash(all), "push", "😀".repeat(127), context))).toBe("accepted")
    expect(statusOf(decideNotification(dash(all), "push", "😀".repeat(128), context))).toBe("notificationInvalidBody")
  })

  it("e-mail: the widget's address wins, then the device's, then the owner's; placeholders are filled", () => {
    const withTo = dash([{ ...mail, to: "widget@example.com" }])
    const three = decideNotification(withTo, "email", "device@example.com\0{DEVICE_NAME} alarm\0ask {VENDOR_EMAIL}", context)
    expect(three).toEqual(new NotificationRequested({
      requestId: "r-1",
      kind: "email",
      dashId: 1,
      deviceId: 0,
      to: "widget@example.com",
      subject: "boiler alarm",
      body: "ask vendor@example.com"
    }))
    expect(decideNotification(dash([mail]), "email", "device@example.com\0s\0b", context)).toMatchObject({ to: "device@example.com" })
    expect(decideNotification(dash([mail]), "email", "s\0b", context)).toMatchObject({ to: "owner@example.com" })
    expect(decideNotification(dash([mail]), "email", "{DEVICE_OWNER_EMAIL}\0s\0b", context)).toMatchObject({ to: "owner@example.com" })
    // A body may carry more separators: they stay in it (as spaces: the log's JSON has no NUL).
    expect(decideNotification(dash([mail]), "email", "a@b.c\0s\0one\0two", context)).toMatchObject({ body: "one two" })
    // A subject is one header line.
    expect(decideNotification(dash([mail]), "email", "line\r\nBcc: x@y.z\0b", context)).toMatchObject({ subject: "line Bcc: x@y.z" })
  })

  it("e-mail: at most emailsPerDay a day", () => {
    expect(statusOf(decideNotification(dash(all), "email", "s\0b", { ...context, emailsToday: 99 }))).toBe("accepted")
    expect(statusOf(decideNotification(dash(all), "email", "s\0b", { ...context, emailsToday: 100 }))).toBe("quotaLimit")
    expect(statusOf(decideNotification(dash(all), "email", "s\0b", { ...context, emailsPerDay: 0 }))).toBe("quotaLimit")
    // The day's count is about e-mail only.
    expect(statusOf(decideNotification(dash(all), "push", "hi", { ...context, emailsToday: 1000 }))).toBe("accepted")
  })

  const kinds: ReadonlyArray<NotificationKind> = ["push", "email", "tweet", "sms"]
  const arbitraryDash = fc.record({
    widgets: fc.subarray(all),
    isActive: fc.boolean()
  }).map(({ widgets, isActive }) => dash(widgets, isActive))
  const arbitraryBody = fc.oneof(
    fc.string({ maxLength: 300 }),
    fc.string({ unit: "grapheme", maxLength: 200 }),
    fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 4 }).map((fields) => fields.join("\0"))
  )

  it("property: what is accepted has a body within bounds, comes from an active project with the kind's widget, and fits the day's e-mails", () => {
    fc.assert(fc.property(
      arbitraryDash,
      fc.constantFrom(...kinds),
      arbitraryBody,
      fc.nat({ max: 5 }),
      (d, kind, body, emailsToday) => {
        const result = decideNotification(d, kind, body, { ...context, emailsToday, emailsPerDay: 3 })
        if (result._tag === "Refused") return
        expect(result.kind).toBe(kind)
        expect(d.isActive).toBe(true)
        expect(result.body).not.toContain("\0")
        const types = d.widgets.map((w) => w["type"])
        if (kind === "email") {
          expect(types).toContain("EMAIL")
          expect(emailsToday).toBeLessThan(3)
          expect(result.to).toMatch(/^[^\s@]+@[^\s@]+$/)
          expect(result.subject).not.toMatch(/[\r\n\0]/)
        } else {
          expect(result.body.length).toBeGreaterThanOrEqual(1)
          expect(result.body.length).toBeLessThanOrEqual(bodyLimits[kind])
          expect(types).toContain({ push: "NOTIFICATION", tweet: "TWITTER", sms: "SMS" }[kind])
        }
      }
    ), { numRuns: 500 })
  })

  it("property: a push, tweet or SMS body out of bounds is refused as an invalid body, whatever the project", () => {
    fc.assert(fc.property(
      arbitraryDash,
      fc.constantFrom("push" as const, "tweet" as const, "sms" as const),
      fc.oneof(fc.constant(""), fc.string({ minLength: 256, maxLength: 400 }), fc.string({ minLength: 161, maxLength: 255 })),
      (d, kind, body) => {
        fc.pre(body.length === 0 || body.length > bodyLimits[kind])
        expect(statusOf(decideNotification(d, kind, body, context))).toBe("notificationInvalidBody")
      }
    ), { numRuns: 300 })
  })
})
