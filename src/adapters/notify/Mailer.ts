import { Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import nodemailer from "nodemailer"
import { ServerConfig } from "../Config.ts"

/** A plain-text message. */
export interface Mail {
  readonly to: string
  readonly subject: string
  readonly text: string
}

export class MailError extends Schema.TaggedError<MailError>()("MailError", { reason: Schema.String }) {
  override get message() {
    return this.reason
  }
}

/**
 * Sends mail: through SMTP when `PINLEDGER_SMTP_URL` is set, else into the server's log. For the
 * notification outbox, and for whatever else mails an account (password reset, verification).
 */
export class Mailer extends Context.Service<Mailer, {
  /** `smtp`, or `log` when nothing is configured: what the outbox records as the sender. */
  readonly transport: "smtp" | "log"
  readonly send: (mail: Mail) => Effect.Effect<void, MailError>
}>()("pinledger/notify/Mailer") {}

/** The first characters of a text, on one line, for logs. */
export const preview = (text: string, length = 60): string => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length <= length ? line : `${line.slice(0, length)}…`
}

/** Logs each message (recipient, subject, the start of the body) instead of sending it. */
export const layerLog: Layer.Layer<Mailer> = Layer.succeed(Mailer, {
  transport: "log",
  send: (mail) =>
    Effect.logInfo(`mail to ${mail.to} (logged, not sent: no PINLEDGER_SMTP_URL): ${JSON.stringify(mail.subject)} ${JSON.stringify(preview(mail.text))}`)
})

export interface SmtpOptions {
  /** `smtp://user:password@host:587` (STARTTLS when offered) or `smtps://…:465` (TLS from the start). */
  readonly url: string
  /** The `From` of every message, e.g. `Pinledger <pinledger@example.com>`. */
  readonly from: string
  /** Most time to connect, and to wait for the server at any step. */
  readonly timeoutMs?: number | undefined
}

/** Where the URL points, without its password: for logs. */
export const describeUrl = (url: URL) => `${url.protocol}//${url.username === "" ? "" : `${decodeURIComponent(url.username)}@`}${url.host}`

const reasonOf = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  const code = (error as { responseCode?: unknown; code?: unknown }).responseCode ?? (error as { code?: unknown }).code
  return code === undefined ? error.message : `${String(code)} ${error.message}`
}

/** Sends through an SMTP server with nodemailer; one connection per message, closed after it. */
export const layerSmtp = (options: SmtpOptions): Layer.Layer<Mailer, MailError> =>
  Layer.effect(
    Mailer,
    Effect.gen(function*() {
      const url = yield* Effect.try({ try: () => new URL(options.url), catch: () => new MailError({ reason: "PINLEDGER_SMTP_URL is not a URL" }) })
      if (url.protocol !== "smtp:" && url.protocol !== "smtps:") {
        return yield* new MailError({ reason: `PINLEDGER_SMTP_URL must start with smtp:// or smtps://, not ${url.protocol}//` })
      }
      const timeout = options.timeoutMs ?? 30_000
      const transporter = yield* Effect.acquireRelease(
        Effect.sync(() =>
          nodemailer.createTransport(
            { url: options.url, connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout },
            { from: options.from }
          )
        ),
        (t) => Effect.sync(() => t.close())
      )
      yield* Effect.logInfo(`mail: SMTP through ${describeUrl(url)}, from ${options.from}`)
      return {
        transport: "smtp" as const,
        send: Effect.fn("Mailer.send")(function*(mail: Mail) {
          yield* Effect.tryPromise({
            // The signal aborts the SMTP exchange when the caller gives up (a timeout, shutdown).
            try: (signal) => transporter.sendMail({ to: mail.to, subject: mail.subject, text: mail.text, signal }),
            catch: (error) => new MailError({ reason: reasonOf(error) })
          })
        })
      }
    })
  )

/** SMTP when `PINLEDGER_SMTP_URL` is set, the log otherwise. */
export const layer = Layer.unwrap(
  Effect.gen(function*() {
    const config = yield* ServerConfig
    const url = Option.getOrUndefined(Option.filter(Option.map(config.smtpUrl, Redacted.value), (u) => u.trim() !== ""))
    if (url === undefined) {
      yield* Effect.logInfo("mail: no PINLEDGER_SMTP_URL, messages are written to the log")
      return layerLog
    }
    return layerSmtp({ url, from: config.mailFrom })
  })
)

/** The address part of `Name <address>`, or the whole text. */
export const addressOf = (from: string): string => /<([^>]+)>/.exec(from)?.[1]?.trim() ?? from.trim()
