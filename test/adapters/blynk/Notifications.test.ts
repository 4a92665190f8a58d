import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { accountStream, outboxStream } from "../../../src/domain/Streams.ts"
import type { RecordedEvent } from "../../../src/eventstore/Event.ts"
import { awaitStream, readStream } from "../../support/awaitLog.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"
import { clearOfBoundary, DAY_MS } from "../../support/clockBoundary.ts"

let server: RunningServer
let release: () => Promise<void>

beforeAll(async () => {
  const opened = await openStorage()
  release = opened.release
  // A long interval, so that "within the interval" never depends on how fast the machine is.
  server = await startBlynkServer(opened.storage, { notifyIntervalSeconds: 600 }, undefined, {
    notifications: { emailsPerDay: 2, vendorEmail: "vendor@example.com" }
  })
})
afterAll(async () => {
  await server.close()
  await release()
})

const pushWidget = { id: 11, type: "NOTIFICATION", x: 0, y: 0, androidTokens: { phone: "fcm-token" } }
const mailWidget = { id: 12, type: "EMAIL", x: 0, y: 1 }

/** An account with one dashboard (the widgets given), device 0 "boiler" connected, the app logged in. */
const setup = async (widgets: ReadonlyArray<Record<string, unknown>>, active = true) => {
  const { app, email } = await newAccount(server)
  await createDash(app, { widgets })
  const token = await createDevice(app, 1, 0, "boiler")
  const device = await connectDevice(server, token)
  if (active) await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])
  const outbox = outboxStream(accountStream(email, "Blynk"))
  const close = async () => {
    await device.close()
    await app.close()
  }
  return { app, email, token, device, outbox, close }
}

const requests = (events: ReadonlyArray<RecordedEvent>) => events.filter((e) => e.type === "NotificationRequested")

describe("notifications from devices (protocol.md §2.1 rows 12-14 and 18, §6.2)", () => {
  it("a push from an active project with a Notification widget answers OK and is in the account's outbox", async () => {
    const { device, outbox, close } = await setup([pushWidget])
    expect(await device.request(Command.PUSH_NOTIFICATION, 5, ["Door opened"])).toBe(Status.OK)
    const events = await awaitStream(server, outbox, (es) => requests(es).length === 1)
    expect(events[0]).toMatchObject({
      type: "NotificationRequested",
      data: { _tag: "NotificationRequested", kind: "push", dashId: 1, deviceId: 0, body: "Door opened" },
      metadata: { actor: "device" }
    })
    await close()
  })

  it("an e-mail goes to the address given, with the placeholders filled; the Mail widget's own address wins", async () => {
    const { device, outbox, email, close } = await setup([mailWidget])
    expect(await device.request(Command.EMAIL, 6, ["alerts@example.com", "{DEVICE_NAME} is hot", "from {DEVICE_OWNER_EMAIL}, ask {VENDOR_EMAIL}"]))
      .toBe(Status.OK)
    expect(await device.request(Command.EMAIL, 7, ["Subject only", "and a body"])).toBe(Status.QUOTA_LIMIT)
    const events = await awaitStream(server, outbox, (es) => requests(es).length === 1)
    expect(events[0]?.data).toMatchObject({
      kind: "email",
      to: "alerts@example.com",
      subject: "boiler is hot",
      body: `from ${email}, ask vendor@example.com`
    })
    await close()

    const other = await setup([{ ...mailWidget, to: "widget@example.com" }])
    expect(await other.device.request(Command.EMAIL, 8, ["device@example.com", "s", "b"])).toBe(Status.OK)
    const [request] = requests(await awaitStream(server, other.outbox, (es) => requests(es).length === 1))
    expect(request?.data).toMatchObject({ to: "widget@example.com" })
    await other.close()
  })

  it("refuses with the protocol's statuses: inactive project, missing widget or token, bad bodies", async () => {
    const inactive = await setup([pushWidget, mailWidget], false)
    expect(await inactive.device.request(Command.PUSH_NOTIFICATION, 1, ["hi"])).toBe(Status.NO_ACTIVE_DASHBOARD)
    expect(await inactive.device.request(Command.EMAIL, 2, ["s", "b"])).toBe(Status.NOT_ALLOWED)
    expect(await inactive.device.request(Command.SMS, 3, ["hi"])).toBe(Status.NO_ACTIVE_DASHBOARD)
    await inactive.close()

    const bare = await setup([{ ...pushWidget, androidTokens: {} }])
    expect(await bare.device.request(Command.PUSH_NOTIFICATION, 4, ["x".repeat(256)])).toBe(Status.NOTIFICATION_INVALID_BODY)
    expect(await bare.device.request(Command.PUSH_NOTIFICATION, 5, [""])).toBe(Status.NOTIFICATION_INVALID_BODY)
    expect(await bare.device.request(Command.PUSH_NOTIFICATION, 6, ["hi"])).toBe(Status.NOTIFICATION_NOT_AUTHORIZED)
    expect(await bare.device.request(Command.TWEET, 7, ["hi"])).toBe(Status.NOTIFICATION_NOT_AUTHORIZED)
    expect(await bare.device.request(Command.TWEET, 8, ["x".repeat(141)])).toBe(Status.NOTIFICATION_INVALID_BODY)
    expect(await bare.device.request(Command.SMS, 9, ["hi"])).toBe(Status.NOTIFICATION_NOT_AUTHORIZED)
    expect(await bare.device.request(Command.EMAIL, 10, ["s", "b"])).toBe(Status.NOT_ALLOWED)
    // Nothing refused reaches the log. A ping is answered after everything before it.
    expect(await bare.device.request(Command.PING, 11)).toBe(Status.OK)
    expect(await readStream(server, bare.outbox)).toEqual([])
    await bare.close()
  })

  it("one message of a kind per interval per connection: the second push answers QUOTA_LIMIT, a refused one does not count", async () => {
    const { app, device, token, outbox, close } = await setup([pushWidget, mailWidget], false)
    // Refused (inactive): the slot is given back, so the next push is judged on its own.
    expect(await device.request(Command.PUSH_NOTIFICATION, 1, ["first"])).toBe(Status.NO_ACTIVE_DASHBOARD)
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    expect(await device.request(Command.PUSH_NOTIFICATION, 2, ["second"])).toBe(Status.OK)
    expect(await device.request(Command.PUSH_NOTIFICATION, 3, ["third"])).toBe(Status.QUOTA_LIMIT)
    // Another kind, and another connection of the same device, have slots of their own.
    expect(await device.request(Command.EMAIL, 4, ["s", "b"])).toBe(Status.OK)
    const twin = await connectDevice(server, token)
    expect(await twin.request(Command.PUSH_NOTIFICATION, 5, ["from the twin"])).toBe(Status.OK)
    const events = await awaitStream(server, outbox, (es) => requests(es).length === 3)
    expect(requests(events).map((e) => (e.data as { body: string }).body)).toEqual(["second", "b", "from the twin"])
    await twin.close()
    await close()
  })

  it("at most PINLEDGER_EMAILS_PER_DAY e-mails per account a day, across connections", async () => {
    // The count is per UTC day: the whole test in one day.
    await clearOfBoundary(DAY_MS, 30_000)
    const { token, outbox, close } = await setup([mailWidget])
    const statuses: Array<number> = []
    for (let i = 0; i < 3; i++) {
      // A connection each: the per-connection interval is not what is tested here.
      const device = await connectDevice(server, token)
      statuses.push(await device.request(Command.EMAIL, 1, [`mail ${i}`, "body"]))
      await device.close()
    }
    expect(statuses).toEqual([Status.OK, Status.OK, Status.QUOTA_LIMIT])
    expect(requests(await awaitStream(server, outbox, (es) => requests(es).length === 2))).toHaveLength(2)
    await close()
  })

  it("the day's e-mail count is read back from the log after a restart", async () => {
    await clearOfBoundary(DAY_MS, 30_000)
    const opened = await openStorage()
    const actors = { notifications: { emailsPerDay: 2 } }
    let restarted = await startBlynkServer(opened.storage, { notifyIntervalSeconds: 0 }, undefined, actors)
    const { app, email } = await newAccount(restarted)
    await createDash(app, { widgets: [mailWidget] })
    const token = await createDevice(app, 1, 0, "boiler")
    await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])
    let device = await connectDevice(restarted, token)
    expect(await device.request(Command.EMAIL, 1, ["before", "the restart"])).toBe(Status.OK)
    // Stopping the server commits what is pending.
    await device.close()
    await app.close()
    await restarted.close()

    restarted = await startBlynkServer(opened.storage, { notifyIntervalSeconds: 0 }, undefined, actors)
    device = await connectDevice(restarted, token)
    expect(await device.request(Command.EMAIL, 2, ["after", "the restart"])).toBe(Status.OK)
    expect(await device.request(Command.EMAIL, 3, ["one", "too many"])).toBe(Status.QUOTA_LIMIT)
    const events = await awaitStream(restarted, outboxStream(accountStream(email, "Blynk")), (es) => requests(es).length === 2)
    expect(requests(events).map((e) => (e.data as { subject: string }).subject)).toEqual(["before", "after"])
    await device.close()
    await restarted.close()
    await opened.release()
  })
})
