import { Context } from "effect"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { EventStoreUnavailable, InvalidEvent, WrongExpectedVersion } from "./Errors.ts"
import type { AppendResult, ExpectedVersion, Metadata, NewEvent, RecordedEvent } from "./Event.ts"

/**
 * The append-only log. One writer fiber batches concurrent appends into one transaction (group
 * commit); every caller is completed only after its events are committed.
 */
export class EventStore extends Context.Service<EventStore, {
  readonly append: (
    stream: string,
    expected: ExpectedVersion,
    events: ReadonlyArray<NewEvent>,
    metadata: Metadata
  ) => Effect.Effect<AppendResult, WrongExpectedVersion | InvalidEvent | EventStoreUnavailable>
  /** The events of one stream with version >= fromVersion, in version order. */
  readonly readStream: (stream: string, fromVersion?: number) => Stream.Stream<RecordedEvent, EventStoreUnavailable>
  /**
   * Committed events with position >= fromPosition, in position order, as of each page's read.
   * Subscriptions, not this, are how to follow the log without missing late commits.
   */
  readonly readAll: (fromPosition?: number) => Stream.Stream<RecordedEvent, EventStoreUnavailable>
  /** The highest position in the log (0 when empty). */
  readonly head: Effect.Effect<number, EventStoreUnavailable>
  /** The current version of a stream (0 when it has no event). */
  readonly streamVersion: (stream: string) => Effect.Effect<number, EventStoreUnavailable>
}>()("pinledger/EventStore") {}

/** The NOTIFY channel the writer signals after each committed batch. */
export const eventsChannel = "pl_events"
