import { Schema } from "effect"

/** The stream was not at the version the caller expected; nothing of that append was written. */
export class WrongExpectedVersion extends Schema.TaggedError<WrongExpectedVersion>()("WrongExpectedVersion", {
  stream: Schema.String,
  expected: Schema.Union([Schema.Literals(["any", "noStream"]), Schema.Number]),
  actual: Schema.Number
}) {
  override get message() {
    return `stream ${this.stream}: expected version ${this.expected}, found ${this.actual}`
  }
}

/** An event or its metadata failed validation; nothing was written. */
export class InvalidEvent extends Schema.TaggedError<InvalidEvent>()("InvalidEvent", {
  reason: Schema.String
}) {
  override get message() {
    return `invalid event: ${this.reason}`
  }
}

/**
 * The database could not be reached or refused the write. For an append the outcome may be
 * unknown (the connection can die during COMMIT): read the stream before retrying.
 */
export class EventStoreUnavailable extends Schema.TaggedError<EventStoreUnavailable>()("EventStoreUnavailable", {
  reason: Schema.String,
  cause: Schema.optional(Schema.Defect())
}) {
  override get message() {
    return `event store unavailable: ${this.reason}`
  }
}

/** Another instance of the same subscriber moved its checkpoint first; this one must restart. */
export class CheckpointConflict extends Schema.TaggedError<CheckpointConflict>()("CheckpointConflict", {
  subscriber: Schema.String
}) {
  override get message() {
    return `checkpoint of subscriber ${this.subscriber} was moved by someone else`
  }
}
