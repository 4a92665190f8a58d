import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Scope } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import * as Mailer from "../../../src/adapters/notify/Mailer.ts"
import * as OutboxSender from "../../../src/adapters/notify/OutboxSender.ts"
import { accountStream, outboxStream } from "../../../src/domain/Streams.ts"
import type { RecordedEvent } from "../../../src/eventstore/Event.ts"
import { awaitStream, readStream } from "../../support/awaitLog.ts"
import { type Backend, backends } from "../../support/backends.ts"
import { isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"
import { type SmtpTestServer, startSmtpServer } from "../../support/smtpServer.ts"

const credentials = { user: "pinledger", pass: "s3cret pass" }
const FROM = "Pinledger <noreply@example.com>"

let smtp: SmtpTestServer
beforeAll(async () => {
  smtp = await startSmtpServer(credentials)
})
afterAll(() => smtp.close())

const openStorageOn = async (backend: Backend) => {
  const scope = Effect.runSync(Scope.make())
  const storage = await Effect.runPromise(Scope.provide(backend.storage, scope).pipe(Effect.orDie))
  return { storage, release: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

/** The sender as the server runs it, through the test's SMTP server; the returned call stops it. */
const startSender = async (
  server: RunningServer,
  options: OutboxSender.SenderOptions = {},
  // Long timeouts: in these tests only the SMTP server decides when an attempt ends.
  mailer: Layer.Layer<Mailer.Mailer, Mailer.MailError> = Mailer.layerSmtp({ url: smtp.url, from: FROM, timeoutMs: 600_000 })
) => {
  const fiber = await server.run(Effect.forkDetach(
    OutboxSender.run({ pollInterval: "200 millis", ...options }).pipe(Effect.provide(mailer))
  ))
  return () => Effect.runPromise(Fiber.interrupt(fiber))
}

const ofType = (events: ReadonlyArray<RecordedEvent>, type: string) => events.filter((e) => e.type === type)
const dataOf = (e: RecordedEvent | undefined) => e?.data as Record<string, unknown> | undefined

const mailWidget = { id: 12, type: "EMAIL", x: 0, y: 0 }

/** An account whose dashboard has a Mail widget, active, with device 0 "boiler"; e-mails go to `to`. */
const setup = async (server: RunningServer) => {
  const { app, email } = await newAccount(server)
  await createDash(app, { widgets: [mailWidget] })
  const token = await createDevice(app, 1, 0, "boiler")
  const device = await connectDevice(server, token)
  expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
  return { app, email, token, device, outbox: outboxStream(accountStream(email, "Blynk")) }
}

let recipients = 0
const recipient = () => `${++recipients}-${process.pid}@example.net`

describe.each(backends.map((b) => [b.name, b] as const))("notification outbox sender (%s)", (_, backend) => {
  it("delivers a device's e-mail through a real SMTP server and records it as sent", async () => {
    const { storage, release } = await openStorageOn(backend)
    const server = await startBlynkServer(storage, { notifyIntervalSeconds: 0 })
    const stop = await startSender(server)
    const { app, email, device, outbox } = await setup(server)
    const to = recipient()
    expect(await device.request(Command.EMAIL, 7, [to, "{DEVICE_NAME} is hot", "It is 95 C. Owner: {DEVICE_OWNER_EMAIL}"])).toBe(Status.OK)

    const mail = await smtp.awaitMail((m) => m.to.includes(to))
    expect(mail).toMatchObject({ user: credentials.user, from: "noreply@example.com", to: [to], subject: "boiler is hot" })
    expect(mail.text).toBe(`It is 95 C. Owner: ${email}`)
    expect(mail.raw).toMatch(/^From: Pinledger <noreply@example\.com>/m)

    const events = await awaitStream(server, outbox, (es) => ofType(es, "NotificationSent").length === 1)
    const [requested] = ofType(events, "NotificationRequested")
    expect(dataOf(ofType(events, "NotificationSent")[0])).toEqual({
      _tag: "NotificationSent",
      requestId: dataOf(requested)?.["requestId"],
      kind: "email",
      by: "smtp",
      attempt: 1
    })
    expect(ofType(events, "NotificationFailed")).toEqual([])
    await device.close()
    await app.close()
    await stop()
    await server.close()
    await release()
  })

  it("without PINLEDGER_SMTP_URL, and for push, tweet and SMS (no providers), messages go to the log and are recorded as sent by it", async () => {
    const { storage, release } = await openStorageOn(backend)
    const server = await startBlynkServer(storage, { notifyIntervalSeconds: 0 })
    const stop = await startSender(server, {}, Mailer.layerLog)
    const { app, email } = await newAccount(server)
    await createDash(app, {
      widgets: [
        mailWidget,
        { id: 13, type: "NOTIFICATION", x: 1, y: 0, androidTokens: { phone: "fcm-token" } },
        { id: 14, type: "TWITTER", x: 2, y: 0, token: "t", secret: "s" },
        { id: 15, type: "SMS", x: 3, y: 0, to: "+15550100" }
      ]
    })
    const token = await createDevice(app, 1, 0, "boiler")
    const device = await connectDevice(server, token)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    const to = recipient()
    expect(await device.request(Command.EMAIL, 1, [to, "subject", "body"])).toBe(Status.OK)
    expect(await device.request(Command.PUSH_NOTIFICATION, 2, ["push"])).toBe(Status.OK)
    expect(await device.request(Command.TWEET, 3, ["tweet"])).toBe(Status.OK)
    expect(await device.request(Command.SMS, 4, ["sms"])).toBe(Status.OK)
    const outbox = outboxStream(accountStream(email, "Blynk"))
    const events = await awaitStream(server, outbox, (es) => ofType(es, "NotificationSent").length === 4)
    expect(ofType(events, "NotificationSent").map((e) => [dataOf(e)?.["kind"], dataOf(e)?.["by"]]).sort()).toEqual([
      ["email", "log"],
      ["push", "log"],
      ["sms", "log"],
      ["tweet", "log"]
    ])
    expect(smtp.received.filter((m) => m.to.includes(to))).toEqual([])
    await device.close()
    await app.close()
    await stop()
    await server.close()
    await release()
  })

  it("a mail server that hangs, then refuses, never delays the device's writes; the message is retried, then recorded as failed", async () => {
    const { storage, release } = await openStorageOn(backend)
    const server = await startBlynkServer(storage, { notifyIntervalSeconds: 0 })
    const stop = await startSender(server, { attempts: 3, backoffMs: { initial: 10, max: 20 } })
    const { app, device, outbox } = await setup(server)
    smtp.setMode("hold")
    const before = smtp.attempts
    const to = recipient()
    expect(await device.request(Command.EMAIL, 3, [to, "stuck", "body"])).toBe(Status.OK)
    // The sender is now waiting on the mail server, and will until the test lets it go.
    await smtp.awaitAttempts(before + 1)

    const forwarded = app.next(isMessage(Command.HARDWARE))
    device.send(Command.HARDWARE, 4, ["vw", "1", "42"])
    expect((await forwarded).fields).toEqual(["1-0", "vw", "1", "42"])
    // The forward came while the message was still pending: nothing recorded beyond the request.
    expect((await readStream(server, outbox)).map((e) => e.type)).toEqual(["NotificationRequested"])
    expect(await device.request(Command.PING, 5)).toBe(Status.OK)

    smtp.setMode("reject")
    const events = await awaitStream(server, outbox, (es) => ofType(es, "NotificationFailed").some((e) => dataOf(e)?.["final"] === true))
    expect(ofType(events, "NotificationFailed").map((e) => [dataOf(e)?.["attempt"], dataOf(e)?.["final"]])).toEqual([[1, false], [2, false], [3, true]])
    expect(String(dataOf(ofType(events, "NotificationFailed")[0])?.["reason"])).toMatch(/550/)
    expect(ofType(events, "NotificationSent")).toEqual([])
    expect(smtp.attempts - before).toBe(3)
    expect(smtp.received.filter((m) => m.to.includes(to))).toEqual([])
    smtp.setMode("accept")
    await device.close()
    await app.close()
    await stop()
    await server.close()
    await release()
  })

  it("after a restart: what was sent is not sent again (with its checkpoint, and without), what was pending is sent", async () => {
    const { storage, release } = await openStorageOn(backend)
    // One delivery at a time: a message is looked at only after every earlier one was.
    const options = { concurrency: 1 }
    let server = await startBlynkServer(storage, { notifyIntervalSeconds: 0 })
    let stop = await startSender(server, options)
    let { app, device, token, outbox } = await setup(server)
    const first = recipient()
    expect(await device.request(Command.EMAIL, 1, [first, "first", "body"])).toBe(Status.OK)
    await awaitStream(server, outbox, (es) => ofType(es, "NotificationSent").length === 1)

    // A second message is being delivered when the server stops: it must not be lost.
    smtp.setMode("hold")
    const before = smtp.attempts
    const second = recipient()
    expect(await device.request(Command.EMAIL, 2, [second, "second", "body"])).toBe(Status.OK)
    await smtp.awaitAttempts(before + 1)
    await device.close()
    await app.close()
    await stop()
    await server.close()
    smtp.setMode("accept")

    server = await startBlynkServer(storage, { notifyIntervalSeconds: 0 })
    stop = await startSender(server, options)
    await smtp.awaitMail((m) => m.to.includes(second))
    await awaitStream(server, outbox, (es) => ofType(es, "NotificationSent").length === 2)
    await stop()

    // Without a checkpoint the sender reads the whole log again, and still resends nothing.
    await server.run(Effect.flatMap(SqlClient, (sql) => sql`DELETE FROM pl_checkpoints WHERE subscriber = 'notification-outbox'`))
    stop = await startSender(server, options)
    device = await connectDevice(server, token)
    const third = recipient()
    expect(await device.request(Command.EMAIL, 3, [third, "third", "body"])).toBe(Status.OK)
    await smtp.awaitMail((m) => m.to.includes(third))
    const events = await awaitStream(server, outbox, (es) => ofType(es, "NotificationSent").length === 3)

    for (const to of [first, second, third]) expect(smtp.received.filter((m) => m.to.includes(to))).toHaveLength(1)
    expect(ofType(events, "NotificationSent")).toHaveLength(3)
    await device.close()
    await stop()
    await server.close()
    await release()
  })
})
