import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Cause, ConfigProvider, Effect, Exit, Layer } from "effect"
import * as Mailer from "../../../src/adapters/notify/Mailer.ts"
import { type SmtpTestServer, startSmtpServer } from "../../support/smtpServer.ts"

const credentials = { user: "mailer", pass: "p@ss:word" }
let smtp: SmtpTestServer
beforeAll(async () => {
  smtp = await startSmtpServer(credentials)
})
afterAll(() => smtp.close())

/** The Mailer as the server configures it, from these environment variables. */
const fromEnv = (env: Record<string, string>) => Mailer.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))

const send = (layer: Layer.Layer<Mailer.Mailer, unknown>, mail: Mailer.Mail) =>
  Effect.runPromiseExit(Effect.flatMap(Mailer.Mailer, (m) => Effect.as(m.send(mail), m.transport)).pipe(Effect.provide(layer)))

const failure = (exit: Exit.Exit<unknown, unknown>) =>
  Exit.isFailure(exit) ? Cause.squash(exit.cause) as Mailer.MailError : undefined

describe("Mailer", () => {
  it("without PINLEDGER_SMTP_URL it only logs", async () => {
    const exit = await send(fromEnv({}), { to: "a@example.com", subject: "s", text: "t" })
    expect(exit).toEqual(Exit.succeed("log"))
  })

  it("with PINLEDGER_SMTP_URL it sends through that server, with its credentials and PINLEDGER_MAIL_FROM", async () => {
    const env = { PINLEDGER_SMTP_URL: smtp.url, PINLEDGER_MAIL_FROM: "Farm <farm@example.com>" }
    const exit = await send(fromEnv(env), { to: "b@example.com", subject: "Hello", text: "Line one\nline two" })
    expect(exit).toEqual(Exit.succeed("smtp"))
    const mail = await smtp.awaitMail((m) => m.to.includes("b@example.com"))
    expect(mail).toMatchObject({ user: "mailer", from: "farm@example.com", subject: "Hello" })
    expect(mail.text.replace(/\r\n/g, "\n")).toBe("Line one\nline two")
  })

  it("a refusal is a MailError with the server's answer; a URL that is not smtp(s) is refused at start", async () => {
    const wrong = smtp.url.replace(encodeURIComponent(credentials.pass), "nope")
    const refused = await send(Mailer.layerSmtp({ url: wrong, from: "x@example.com" }), { to: "c@example.com", subject: "s", text: "t" })
    expect(failure(refused)).toBeInstanceOf(Mailer.MailError)
    expect(failure(refused)?.reason).toMatch(/535/)
    const http = await send(Mailer.layerSmtp({ url: "http://127.0.0.1/", from: "x@example.com" }), { to: "c@example.com", subject: "s", text: "t" })
    expect(failure(http)?.reason).toMatch(/smtp:\/\/ or smtps:\/\//)
  })

  it("helpers: the address of a From, a one-line preview", () => {
    expect(Mailer.addressOf("Pinledger <noreply@example.com>")).toBe("noreply@example.com")
    expect(Mailer.addressOf("plain@example.com")).toBe("plain@example.com")
    expect(Mailer.preview("a\n  b", 10)).toBe("a b")
    expect(Mailer.preview("x".repeat(70))).toBe(`${"x".repeat(60)}…`)
  })
})
