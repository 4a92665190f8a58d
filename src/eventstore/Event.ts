import { Schema } from "effect"

/**
 * Where a stream must be for an append to go through: `any`, `noStream` (it has no event yet), or
 * the exact version of its last event (versions start at 1, so 0 is the same as `noStream`).
 */
export const ExpectedVersion = Schema.Union([Schema.Literals(["any", "noStream"]), Schema.Int.check(Schema.isGreaterThanOrEqualTo(0))])
export type ExpectedVersion = typeof ExpectedVersion.Type

const Text = Schema.String.check(Schema.isMaxLength(512))

/** Who did it, from where, why, and when. Time comes from the caller: the domain has no clock. */
export const Metadata = Schema.Struct({
  actor: Schema.optional(Text),
  session: Schema.optional(Text),
  remoteAddress: Schema.optional(Text),
  correlationId: Schema.optional(Text),
  causationId: Schema.optional(Text),
  time: Schema.String.check(Schema.isPattern(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/))
})
export type Metadata = typeof Metadata.Type

export const StreamId = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,199}$/))

export const EventType = Schema.String.check(Schema.isPattern(/^[A-Za-z][A-Za-z0-9_.]{0,99}$/))

/** An event as the store takes it: already encoded to JSON-compatible data. */
export interface NewEvent {
  readonly type: string
  readonly schemaVersion: number
  readonly data: unknown
}

/** An event as the store gives it back. */
export interface RecordedEvent {
  /** Global position in the log (unique, increasing in insertion order, not in commit order). */
  readonly position: number
  /** The writing transaction's id: subscriptions order and checkpoint by (txId, position). */
  readonly txId: bigint
  readonly streamId: string
  readonly version: number
  readonly type: string
  readonly schemaVersion: number
  readonly data: unknown
  readonly metadata: Metadata
  readonly recordedAt: Date
}

export interface AppendResult {
  /** Positions of the appended events, in order. */
  readonly positions: ReadonlyArray<number>
  /** The stream's version after the append. */
  readonly version: number
}
