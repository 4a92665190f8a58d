import { Cause, Effect, Exit, Option } from "effect"
import { causeResponseStripped } from "effect/http/HttpServerError"
import { HttpServerRequest } from "effect/http/HttpServerRequest"
import type { HttpServerResponse } from "effect/http/HttpServerResponse"

/**
 * The HTTP app's request log: one record per answer, "Sent HTTP response", annotated with
 * `http.method`, `http.url` and `http.status` (README: PINLEDGER_LOG_FORMAT). It stands in for
 * effect's own request logger because that one logs the whole path, and the legacy HTTP API
 * carries a device's token in its path (`/{token}/update/V1`): whoever reads the server's log
 * would hold every device used over HTTP. So a path segment that may be a token (32 URL-safe
 * characters, protocol.md §4.4: device tokens, clone codes) keeps its first four characters
 * only, as the throttle's records do; the query is left out (`/verify-email?token=…`).
 */

const TOKEN_LIKE = /^[A-Za-z0-9_-]{32}$/

const decoded = (segment: string) => {
  try {
    return decodeURIComponent(segment)
  } catch {
    return segment
  }
}

/** The path of a request URL as the log shows it: no query, token-like segments cut to four characters. */
export const loggedPath = (url: string): string => {
  const end = url.search(/[?#]/)
  const path = end < 0 ? url : url.slice(0, end)
  return path.split("/").map((segment) => {
    const text = decoded(segment)
    return TOKEN_LIKE.test(text) ? `${text.slice(0, 4)}…` : segment
  }).join("/")
}

/** The server middleware (`HttpRouter.serve`'s `middleware`, with its own logger disabled). */
export const requestLog = <E, R>(
  app: Effect.Effect<HttpServerResponse, E, R>
): Effect.Effect<HttpServerResponse, E, R | HttpServerRequest> =>
  Effect.gen(function*() {
    const request = yield* HttpServerRequest
    return yield* app.pipe(
      Effect.onExit((exit) => {
        const [response, cause] = Exit.isSuccess(exit) ? [exit.value, Option.none()] : causeResponseStripped(exit.cause)
        const annotations = { "http.method": request.method, "http.url": loggedPath(request.url), "http.status": response.status }
        // An unexpected failure (not a client gone away) is logged with its cause.
        const failed = Option.isSome(cause) && !Cause.hasInterruptsOnly(cause.value)
        return Effect.annotateLogs(failed ? Effect.log("Sent HTTP response", cause.value) : Effect.log("Sent HTTP response"), annotations)
      }),
      Effect.withLogSpan("http")
    )
  })
