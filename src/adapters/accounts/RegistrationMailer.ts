import { Effect, Layer } from "effect"
import type { ConfigError } from "effect/Config"
import * as Mailer from "../notify/Mailer.ts"

/**
 * The sessions' mailer. With PINLEDGER_REGISTRATION=verify the server refuses to start without a
 * mail server: confirmation links that only reach the server's log would leave every new account
 * unable to log in.
 */
export const layer = (registration: "closed" | "open" | "verify"): Layer.Layer<Mailer.Mailer, Mailer.MailError | ConfigError> =>
  Layer.effect(
    Mailer.Mailer,
    Effect.gen(function*() {
      const mailer = yield* Mailer.Mailer
      if (registration === "verify" && mailer.transport === "log") {
        return yield* new Mailer.MailError({
          reason: "PINLEDGER_REGISTRATION=verify mails confirmation links: set PINLEDGER_SMTP_URL (or choose open or closed)"
        })
      }
      return mailer
    })
  ).pipe(Layer.provide(Mailer.layer))
