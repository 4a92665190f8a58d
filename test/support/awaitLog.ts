import { Effect, Queue, Stream } from "effect"
import { Database } from "../../src/eventstore/Database.ts"
import type { RecordedEvent } from "../../src/eventstore/Event.ts"
import { EventStore, eventsChannel } from "../../src/eventstore/EventStore.ts"
import type { RunningServer } from "./blynkServer.ts"

/**
 * Waits until a stream's events satisfy `done`, re-reading after each commit (the store's NOTIFY;
 * a slow poll only as a fallback), and returns them. Fails with the last events seen after 30 s,
 * so that a missing event fails with a message rather than a test timeout.
 */
export const awaitStream = (
  server: RunningServer,
  stream: string,
  done: (events: ReadonlyArray<RecordedEvent>) => boolean
): Promise<ReadonlyArray<RecordedEvent>> => {
  let last: ReadonlyArray<RecordedEvent> = []
  return server.run(
    Effect.scoped(Effect.gen(function*() {
      const database = yield* Database
      const store = yield* EventStore
      const wake = yield* database.listen(eventsChannel)
      while (true) {
        last = yield* Stream.runCollect(store.readStream(stream))
        if (done(last)) return last
        yield* Queue.take(wake).pipe(Effect.timeoutOption("1 second"))
      }
    })).pipe(
      Effect.timeoutOrElse({
        duration: "30 seconds",
        orElse: () => Effect.die(new Error(`${stream}: still ${JSON.stringify(last.map((e) => [e.type, e.data]))} after 30 s`))
      })
    )
  )
}

/** The stream's events as they are now. */
export const readStream = (server: RunningServer, stream: string) =>
  server.run(Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readStream(stream))))
