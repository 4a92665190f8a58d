import { Effect, Option } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { type Confirmation, confirmEmail, VERIFY_PATH } from "../accounts/EmailVerification.ts"

const page = (title: string, text: string) =>
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title></head>
<body style="font-family: sans-serif; max-width: 32em; margin: 4em auto; padding: 0 1em">
<h1>${title}</h1>
<p>${text}</p>
</body></html>
`

const answers: Record<Confirmation, { readonly status: number; readonly title: string; readonly text: string }> = {
  confirmed: { status: 200, title: "Address confirmed", text: "Your address is confirmed. You can log in from the app now." },
  invalid: {
    status: 400,
    title: "Link invalid or expired",
    text: "This link is not valid: it was used already, a newer one was sent, or it expired. Log in from the app to get a new one once it has expired."
  },
  blocked: { status: 429, title: "Too many attempts", text: "Too many failed attempts from your address. Try again later." }
}

const respond = (status: number, title: string, text: string) =>
  HttpServerResponse.text(page(title, text), { status, contentType: "text/html; charset=utf-8" })

/**
 * `GET /verify-email?token=…`: the link mailed at registration when PINLEDGER_REGISTRATION=verify.
 * 200 "address confirmed", 400 "link invalid or expired" (counted towards the address's login
 * throttle), 429 while the address is blocked.
 */
export const VerifyEmailRoute = HttpRouter.add("GET", VERIFY_PATH, (request) =>
  Effect.gen(function*() {
    const token = new URL(request.url, "http://localhost").searchParams.get("token") ?? ""
    const address = Option.getOrElse(request.remoteAddress, () => "unknown")
    const metadata = { actor: "http:verify-email", remoteAddress: address, time: new Date().toISOString() }
    const outcome = yield* confirmEmail(token.trim(), address, metadata)
    const answer = answers[outcome]
    return respond(answer.status, answer.title, answer.text)
  }).pipe(
    Effect.catchCause((cause) =>
      Effect.as(
        Effect.logWarning("GET /verify-email failed", cause),
        respond(500, "Something went wrong", "The server could not confirm the address just now. Try the link again later.")
      ))
  ))
