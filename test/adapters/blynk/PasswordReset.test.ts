import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import * as Mailer from "../../../src/adapters/notify/Mailer.ts"
import { tokenDigest } from "../../../src/adapters/security/MailedToken.ts"
import { clientPasswordHash } from "../../../src/adapters/security/Passwords.ts"
import { accountStream } from "../../../src/domain/Streams.ts"
import { readStream } from "../../support/awaitLog.ts"
import { BlynkClient } from "../../support/BlynkClient.ts"
import { newAccount } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"
import { shiftedClock } from "../../support/shiftedClock.ts"
import { type ReceivedMail, type SmtpTestServer, startSmtpServer } from "../../support/smtpServer.ts"

/** RESET_PASSWORD (81) on the wire, with a real SMTP server receiving the mails (issue 4 §5). */

const credentials = { user: "pinledger", pass: "reset pass" }
const time = shiftedClock()
const throttle = { maxFailures: 3, windowMs: 600_000, blockMs: 600_000 }
let smtp: SmtpTestServer
let server: RunningServer
let release: () => Promise<void> = async () => {}

beforeAll(async () => {
  smtp = await startSmtpServer(credentials)
  const opened = await openStorage()
  release = opened.release
  server = await startBlynkServer(opened.storage, { resetTokenMinutes: 60 }, throttle, {}, {
    mailer: Mailer.layerSmtp({ url: smtp.url, from: "Pinledger <noreply@example.com>" }),
    clock: time.clock
  })
})
afterAll(async () => {
  await server.close()
  await release()
  await smtp.close()
})
afterEach(() => {
  time.reset()
  smtp.setMode("accept")
})

let ids = 500
let addresses = 40
/** Each test from an address of its own, so that one test's failures never block another's. */
const freshAddress = () => `127.0.0.${++addresses}`
const app = (from = freshAddress()) => BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true, localAddress: from })
const reset = (client: BlynkClient, fields: ReadonlyArray<string>) => client.request(Command.RESET_PASSWORD, ++ids, fields)
const login = (client: BlynkClient, email: string, hash: string) => client.request(Command.LOGIN, ++ids, [email, hash, "Android", "2.27.0", "Blynk"])

/** The mails to `to` so far (each one arrived before the OK that follows its request). */
const mailsTo = (to: string) => smtp.received.filter((m) => m.to.includes(to))
const tokenIn = (mail: ReceivedMail) => /^or enter this token in the app: ([A-Za-z0-9_-]{32})$/m.exec(mail.text)?.[1]

/** An account (logged out) and the token of a reset started for it. */
const accountWithReset = async (client: BlynkClient) => {
  const { app: owner, email, hash } = await newAccount(server, "old password")
  await owner.close()
  expect(await reset(client, ["start", email, "Blynk"])).toBe(Status.OK)
  const mails = mailsTo(email)
  const token = tokenIn(mails[mails.length - 1]!)
  expect(token).toMatch(/^[A-Za-z0-9_-]{32}$/)
  return { email, hash, token: token! }
}

/** Every event's data and metadata as stored, as text. */
const wholeLog = () =>
  server.run(Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ data: string; metadata: string }>`SELECT data::text AS data, metadata::text AS metadata FROM pl_events`
    const tokens = yield* sql<{ row: string }>`SELECT row_to_json(t)::text AS row FROM pl_account_tokens t`
    return [...rows.map((r) => r.data + r.metadata), ...tokens.map((t) => t.row)].join("\n")
  }))

describe("password reset (RESET_PASSWORD 81)", () => {
  it("start mails a single-use token; verify and reset take it; the old password stops working, the new one works", async () => {
    const client = await app()
    const { email, hash, token } = await accountWithReset(client)
    const [mail] = mailsTo(email)
    expect(mail).toMatchObject({ from: "noreply@example.com", to: [email], subject: "Reset your Blynk password" })
    expect(mail!.text).toContain(`blynk://restore?token=${token}&email=${encodeURIComponent(email)}`)

    expect(await reset(client, ["verify", token])).toBe(Status.OK)
    expect(await reset(client, ["verify", token])).toBe(Status.OK)
    const newHash = clientPasswordHash(email, "new password")
    expect(await reset(client, ["reset", token, newHash])).toBe(Status.OK)

    // Used up: neither verify nor a second reset takes it.
    expect(await reset(client, ["verify", token])).toBe(Status.NOT_ALLOWED)
    expect(await reset(client, ["reset", token, clientPasswordHash(email, "third")])).toBe(Status.NOT_ALLOWED)

    await client.close()

    // (From another address: the two refusals above counted towards this one's throttle.)
    const later = await app()
    expect(await login(later, email, hash)).toBe(Status.USER_NOT_AUTHENTICATED)
    expect(await login(later, email, newHash)).toBe(Status.OK)
    await later.close()

    const types = (await readStream(server, accountStream(email, "Blynk"))).map((e) => e.type)
    expect(types).toEqual(["AccountRegistered", "PasswordResetRequested", "PasswordChanged"])
  })

  it("a reset logs out the apps that logged in with the old password", async () => {
    const { app: owner, email } = await newAccount(server, "old password")
    const client = await app()
    expect(await reset(client, ["start", email, "Blynk"])).toBe(Status.OK)
    const mails = mailsTo(email)
    const token = tokenIn(mails[mails.length - 1]!)!
    expect(await owner.request(Command.PING, 5)).toBe(Status.OK)
    expect(await reset(client, ["reset", token, clientPasswordHash(email, "new password")])).toBe(Status.OK)
    await owner.closed
    await client.close()
  })

  it("the log keeps the token's digest only, and never the password hash the app sent", async () => {
    const client = await app()
    const { email, token } = await accountWithReset(client)
    const newHash = clientPasswordHash(email, "another new password")
    expect(await reset(client, ["reset", token, newHash])).toBe(Status.OK)
    await client.close()
    const requested = (await readStream(server, accountStream(email, "Blynk"))).find((e) => e.type === "PasswordResetRequested")
    expect((requested?.data as { tokenDigest?: string }).tokenDigest).toBe(tokenDigest(token))
    const log = await wholeLog()
    expect(log).toContain(tokenDigest(token))
    expect(log).not.toContain(token)
    expect(log).not.toContain(newHash)
  })

  it("a new start voids the token mailed before", async () => {
    const client = await app()
    const { email, token: first } = await accountWithReset(client)
    expect(await reset(client, ["start", email, "Blynk"])).toBe(Status.OK)
    const mails = mailsTo(email)
    expect(mails).toHaveLength(2)
    const second = tokenIn(mails[1]!)!
    expect(second).not.toBe(first)
    expect(await reset(client, ["verify", first])).toBe(Status.NOT_ALLOWED)
    expect(await reset(client, ["verify", second])).toBe(Status.OK)
    await client.close()
  })

  it("a token expires after PINLEDGER_RESET_TOKEN_MINUTES (the clock moved, not waited for)", async () => {
    const client = await app()
    const { email, hash, token } = await accountWithReset(client)
    // Ten seconds short of the hour: room for the real time since the token was made (its mail
    // went through SMTP) on a loaded machine.
    time.advance(60 * 60_000 - 10_000)
    expect(await reset(client, ["verify", token])).toBe(Status.OK)
    time.advance(10_000)
    expect(await reset(client, ["verify", token])).toBe(Status.NOT_ALLOWED)
    expect(await reset(client, ["reset", token, clientPasswordHash(email, "too late")])).toBe(Status.NOT_ALLOWED)
    expect(await login(client, email, hash)).toBe(Status.OK)
    await client.close()
  })

  it("an unknown address gets the same OK, and no mail and no event", async () => {
    const client = await app()
    const attempts = smtp.attempts
    const unknown = `nobody-${process.pid}@example.org`
    expect(await reset(client, ["start", unknown, "Blynk"])).toBe(Status.OK)
    expect(smtp.attempts).toBe(attempts)
    // A known address right after it on the same connection: exactly one more mail, to it.
    const { email } = await accountWithReset(client)
    expect(smtp.attempts).toBe(attempts + 1)
    expect(mailsTo(unknown)).toEqual([])
    expect(mailsTo(email)).toHaveLength(1)
    expect(await readStream(server, accountStream(unknown, "Blynk"))).toEqual([])
    await client.close()
  })

  it("bad tokens count towards the address's login throttle; a blocked address is refused even a good token", async () => {
    const client = await app()
    const { token } = await accountWithReset(client)
    await client.close()
    const prober = await app("127.0.0.31")
    expect(await reset(prober, ["verify", "A".repeat(32)])).toBe(Status.NOT_ALLOWED)
    expect(await reset(prober, ["reset", "short", clientPasswordHash("x@example.com", "x")])).toBe(Status.NOT_ALLOWED)
    expect(await reset(prober, ["verify", "B".repeat(32)])).toBe(Status.NOT_ALLOWED)
    expect(await reset(prober, ["verify", token])).toBe(Status.NOT_ALLOWED)
    const types = (await readStream(server, throttleStream("login", "127.0.0.31"))).map((e) => e.type)
    expect(types).toEqual(["LoginFailed", "LoginFailed", "LoginFailed", "AddressBlocked"])
    await prober.close()
    // The token itself is fine, from anywhere else.
    const other = await app("127.0.0.32")
    expect(await reset(other, ["verify", token])).toBe(Status.OK)
    await other.close()
  })

  it("malformed bodies answer ILLEGAL_COMMAND and the connection stays", async () => {
    const client = await app("127.0.0.33")
    for (const body of [[], ["start"], ["start", "not an address"], ["start", "a@example.com", "bad app"], ["verify"], ["reset", "A".repeat(32)], ["forget", "x"]]) {
      expect(await reset(client, body), JSON.stringify(body)).toBe(Status.ILLEGAL_COMMAND)
    }
    // None of these is a failed token: the address is not blocked.
    expect(await readStream(server, throttleStream("login", "127.0.0.33"))).toEqual([])
    expect(await reset(client, ["start", `nobody-${process.pid}@example.org`])).toBe(Status.OK)
    await client.close()
  })

  it("a mail server that refuses the mail makes start answer SERVER_ERROR", async () => {
    const client = await app()
    const { app: owner, email } = await newAccount(server)
    await owner.close()
    smtp.setMode("reject")
    expect(await reset(client, ["start", email, "Blynk"])).toBe(Status.SERVER_ERROR)
    await client.close()
  })
})
