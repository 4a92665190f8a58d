import { Effect } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Database } from "../../eventstore/Database.ts"
import { EventStore } from "../../eventstore/EventStore.ts"

/** `GET /health`: 200 with the database kind and the log's head position, 503 if the log is out of reach. */
export const HealthRoute = HttpRouter.add(
  "GET",
  "/health",
  Effect.gen(function*() {
    const database = yield* Database
    const store = yield* EventStore
    return yield* store.head.pipe(
      Effect.flatMap((head) => HttpServerResponse.json({ status: "ok", database: database.kind, head })),
      Effect.catchTag("EventStoreUnavailable", (e) =>
        HttpServerResponse.json({ status: "unavailable", database: database.kind, error: e.reason }, { status: 503 }))
    )
  })
)
