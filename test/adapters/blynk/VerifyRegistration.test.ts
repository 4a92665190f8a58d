import { afterAll, afterEach, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import * as Http from "node:http"
import * as Https from "node:https"
import * as AccountLog from "../../../src/actors/AccountLog.ts"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import * as Mailer from "../../../src/adapters/notify/Mailer.ts"
import { tokenDigest } from "../../../src/adapters/security/MailedToken.ts"
import { clientPasswordHash, hashPassword } from "../../../src/adapters/security/Passwords.ts"
import { accountStream } from "../../../src/domain/Streams.ts"
import { readStream } from "../../support/awaitLog.ts"
import { BlynkClient } from "../../support/BlynkClient.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"
import { shiftedClock } from "../../support/shiftedClock.ts"
import { type ReceivedMail, type SmtpTestServer, startSmtpServer } from "../../support/smtpServer.ts"

/** PINLEDGER_REGISTRATION=verify: a mailed link confirms the address before the first login (issue 4 §5). */

const credentials = { user: "pinledger", pass: "verify pass" }
const PUBLIC_URL = "https://pinledger.example:9443"
const time = shiftedClock()
const throttle = { maxFailures: 3, windowMs: 600_000, blockMs: 600_000 }
let smtp: SmtpTestServer
let server: RunningServer
let release: () => Promise<void> = async () => {}

beforeAll(async () => {
  smtp = await startSmtpServer(credentials)
  const opened = await openStorage()
  release = opened.release
  server = await startBlynkServer(opened.storage, { registration: "verify", publicUrl: PUBLIC_URL, verifyTokenHours: 48 }, throttle, {}, {
    mailer: Mailer.layerSmtp({ url: smtp.url, from: "Pinledger <noreply@example.com>" }),
    clock: time.clock
  })
})
afterAll(async () => {
  await server.close()
  await release()
  await smtp.close()
})
afterEach(() => time.reset())

let ids = 700
let addresses = 60
let accounts = 0
/** Each test from an address of its own, so that one test's failures never block another's. */
const freshAddress = () => `127.0.0.${++addresses}`
const app = (from = freshAddress()) => BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true, localAddress: from })
const newEmail = () => `verify${++accounts}-${process.pid}@example.com`
const login = (client: BlynkClient, email: string, hash: string) => client.request(Command.LOGIN, ++ids, [email, hash, "Android", "2.27.0", "Blynk"])
const mailsTo = (to: string) => smtp.received.filter((m) => m.to.includes(to))
const linkIn = (mail: ReceivedMail) => /^(https:\/\/\S+\/verify-email\?token=[A-Za-z0-9_-]{32})$/m.exec(mail.text)?.[1]

/** Registers through the protocol; the confirmation mail (if any) has arrived when this returns. */
const register = async (client: BlynkClient, email: string, password = "pw") => {
  const hash = clientPasswordHash(email, password)
  expect(await client.request(Command.REGISTER, ++ids, [email, hash, "Blynk"])).toBe(Status.OK)
  return hash
}

/** GET on the server's HTTP app: over TLS (`https`) or the plain port, from a chosen local address. */
const get = (path: string, options: { readonly tls?: boolean; readonly from?: string } = {}) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const tls = options.tls ?? true
    const request = (tls ? Https : Http).request({
      host: "127.0.0.1",
      port: tls ? server.tlsPort : server.plainPort,
      path,
      method: "GET",
      localAddress: options.from ?? freshAddress(),
      rejectUnauthorized: false
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }))
    })
    request.on("error", reject)
    request.end()
  })

/** The link's path and query, to GET on this test's server (the link names the public URL). */
const pathOf = (link: string) => {
  const url = new URL(link)
  return url.pathname + url.search
}

const typesOf = async (email: string) => (await readStream(server, accountStream(email, "Blynk"))).map((e) => e.type)

describe("registration with a confirmed address (PINLEDGER_REGISTRATION=verify)", () => {
  it("the very first account needs no confirmation; an account made like the CLI does neither", async () => {
    const client = await app()
    const attempts = smtp.attempts
    const first = newEmail()
    const hash = await register(client, first)
    expect(smtp.attempts).toBe(attempts)
    expect(await login(client, first, hash)).toBe(Status.OK)
    await client.close()

    const cli = newEmail()
    const cliHash = clientPasswordHash(cli, "cli pw")
    await server.run(Effect.flatMap(hashPassword(cliHash), (passwordHash) =>
      AccountLog.execute(cli, "Blynk", () => [{ _tag: "Register", email: cli, appName: "Blynk", passwordHash }], {
        actor: "cli",
        time: new Date().toISOString()
      })))
    const other = await app()
    expect(await login(other, cli, cliHash)).toBe(Status.OK)
    await other.close()
    expect(mailsTo(cli)).toEqual([])
  })

  it("register → mail → login refused (6, not counted) → the link over HTTPS → login OK; the link works once", async () => {
    const from = freshAddress()
    const client = await app(from)
    const email = newEmail()
    const hash = await register(client, email)
    const [mail] = mailsTo(email)
    expect(mail).toMatchObject({ to: [email], subject: "Confirm your address for Blynk" })
    const link = linkIn(mail!)!
    expect(link.startsWith(`${PUBLIC_URL}/verify-email?token=`)).toBe(true)

    // Right password, unconfirmed: NOT_ALLOWED each time, and never a throttle failure (3 would block).
    for (let i = 0; i < 4; i++) expect(await login(client, email, hash)).toBe(Status.NOT_ALLOWED)
    expect(await readStream(server, throttleStream("login", from))).toEqual([])
    // A wrong password still counts.
    expect(await login(client, email, clientPasswordHash(email, "wrong"))).toBe(Status.USER_NOT_AUTHENTICATED)
    expect((await readStream(server, throttleStream("login", from))).map((e) => e.type)).toEqual(["LoginFailed"])

    const confirmed = await get(pathOf(link))
    expect(confirmed.status).toBe(200)
    expect(confirmed.body).toContain("Address confirmed")
    expect(await login(client, email, hash)).toBe(Status.OK)
    await client.close()

    const again = await get(pathOf(link))
    expect(again.status).toBe(400)
    expect(again.body).toContain("Link invalid or expired")
    expect(await typesOf(email)).toEqual(["AccountRegistered", "EmailVerificationRequested", "EmailVerified"])
  })

  it("the link works on the plain HTTP port as well", async () => {
    const client = await app()
    const email = newEmail()
    const hash = await register(client, email)
    const link = linkIn(mailsTo(email)[0]!)!
    expect((await get(pathOf(link), { tls: false })).status).toBe(200)
    expect(await login(client, email, hash)).toBe(Status.OK)
    await client.close()
  })

  it("a bad link is 400 and changes nothing; the log holds the token's digest, never the token", async () => {
    const client = await app()
    const email = newEmail()
    const hash = await register(client, email)
    const link = linkIn(mailsTo(email)[0]!)!
    const token = new URL(link).searchParams.get("token")!
    const forged = token.slice(0, 31) + (token.endsWith("A") ? "B" : "A")
    for (const path of [`/verify-email?token=${forged}`, "/verify-email?token=short", "/verify-email"]) {
      const answer = await get(path)
      expect(answer.status, path).toBe(400)
      expect(answer.body).toContain("Link invalid or expired")
    }
    expect(await typesOf(email)).toEqual(["AccountRegistered", "EmailVerificationRequested"])
    expect(await login(client, email, hash)).toBe(Status.NOT_ALLOWED)
    const log = await server.run(Effect.gen(function*() {
      const sql = yield* SqlClient
      const rows = yield* sql<{ text: string }>`SELECT data::text || metadata::text AS text FROM pl_events`
      const tokens = yield* sql<{ text: string }>`SELECT row_to_json(t)::text AS text FROM pl_account_tokens t`
      return [...rows, ...tokens].map((r) => r.text).join("\n")
    }))
    expect(log).toContain(tokenDigest(token))
    expect(log).not.toContain(token)
    await client.close()
  })

  it("invalid links count towards the requesting address's login throttle; a blocked address gets 429 even with a good link", async () => {
    const client = await app()
    const email = newEmail()
    const hash = await register(client, email)
    const link = linkIn(mailsTo(email)[0]!)!
    const from = freshAddress()
    for (const token of ["A".repeat(32), "B".repeat(32), "nonsense"]) {
      expect((await get(`/verify-email?token=${token}`, { from })).status).toBe(400)
    }
    expect((await readStream(server, throttleStream("login", from))).map((e) => e.type))
      .toEqual(["LoginFailed", "LoginFailed", "LoginFailed", "AddressBlocked"])
    const blocked = await get(pathOf(link), { from })
    expect(blocked.status).toBe(429)
    expect(await login(client, email, hash)).toBe(Status.NOT_ALLOWED)
    // From elsewhere the link is still good.
    expect((await get(pathOf(link))).status).toBe(200)
    expect(await login(client, email, hash)).toBe(Status.OK)
    await client.close()
  })

  it("a link expires after PINLEDGER_VERIFY_TOKEN_HOURS; a login with the right password then mails a new one", async () => {
    const client = await app()
    const email = newEmail()
    const hash = await register(client, email)
    const old = linkIn(mailsTo(email)[0]!)!
    time.advance(48 * 3_600_000)
    expect((await get(pathOf(old))).status).toBe(400)
    // Wrong password: no new link.
    expect(await login(client, email, clientPasswordHash(email, "wrong"))).toBe(Status.USER_NOT_AUTHENTICATED)
    expect(mailsTo(email)).toHaveLength(1)
    expect(await login(client, email, hash)).toBe(Status.NOT_ALLOWED)
    expect(mailsTo(email)).toHaveLength(2)
    // The new link is valid while it lasts: a second login does not mail again.
    expect(await login(client, email, hash)).toBe(Status.NOT_ALLOWED)
    expect(mailsTo(email)).toHaveLength(2)
    const renewed = linkIn(mailsTo(email)[1]!)!
    expect(renewed).not.toBe(old)
    expect((await get(pathOf(renewed))).status).toBe(200)
    expect(await login(client, email, hash)).toBe(Status.OK)
    await client.close()
  })

  it("a password reset confirms the address it was mailed to", async () => {
    const client = await app()
    const email = newEmail()
    await register(client, email)
    expect(await client.request(Command.RESET_PASSWORD, ++ids, ["start", email, "Blynk"])).toBe(Status.OK)
    const token = /^or enter this token in the app: ([A-Za-z0-9_-]{32})$/m.exec(mailsTo(email)[1]!.text)![1]!
    const newHash = clientPasswordHash(email, "new pw")
    expect(await client.request(Command.RESET_PASSWORD, ++ids, ["reset", token, newHash])).toBe(Status.OK)
    expect(await login(client, email, newHash)).toBe(Status.OK)
    await client.close()
    expect(await typesOf(email)).toEqual(["AccountRegistered", "EmailVerificationRequested", "PasswordResetRequested", "PasswordChanged", "EmailVerified"])
  })
})
