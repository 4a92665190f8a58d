import { Effect, Schema, Stream } from "effect"
import { InvalidEvent } from "./Errors.ts"
import type { ExpectedVersion, Metadata, NewEvent, RecordedEvent } from "./Event.ts"
import { EventStore } from "./EventStore.ts"

/** Rewrites the stored data of version `n` of an event type into the data of version `n + 1`. */
export type Upcaster = (data: unknown) => unknown

export interface EventCodecOptions {
  /** Current schema version per event type (`_tag`); 1 when absent. */
  readonly versions?: Readonly<Record<string, number>> | undefined
  /** Per event type, upcasters keyed by the version they upgrade from. */
  readonly upcasters?: Readonly<Record<string, Readonly<Record<number, Upcaster>>>> | undefined
}

export interface EventCodec<A extends { readonly _tag: string }> {
  readonly encode: (event: A) => Effect.Effect<NewEvent, InvalidEvent>
  /** Upcasts old versions to the current one, then decodes. */
  readonly decode: (event: RecordedEvent) => Effect.Effect<A, InvalidEvent>
}

/**
 * A codec for a tagged union of events: the tag is the stored event type, the data is the
 * schema's JSON encoding, stored with the type's current schema version.
 */
export const make = <S extends Schema.Codec<{ readonly _tag: string }, unknown>>(
  schema: S,
  options: EventCodecOptions = {}
): EventCodec<S["Type"]> => {
  const json = Schema.toCodecJson(schema)
  const encode = Schema.encodeUnknownEffect(json)
  const decode = Schema.decodeUnknownEffect(json)
  const versionOf = (type: string) => options.versions?.[type] ?? 1
  return {
    encode: (event) =>
      encode(event).pipe(
        Effect.map((data) => ({ type: event._tag, schemaVersion: versionOf(event._tag), data })),
        Effect.mapError((e) => new InvalidEvent({ reason: `${event._tag}: ${e.message}` }))
      ) as Effect.Effect<NewEvent, InvalidEvent>,
    decode: (recorded) =>
      Effect.suspend(() => {
        const target = versionOf(recorded.type)
        let data = recorded.data
        for (let v = recorded.schemaVersion; v < target; v++) {
          const up = options.upcasters?.[recorded.type]?.[v]
          if (up === undefined) {
            return Effect.fail(new InvalidEvent({ reason: `no upcaster for ${recorded.type} v${v}` }))
          }
          data = up(data)
        }
        return decode(data).pipe(
          Effect.mapError((e) => new InvalidEvent({ reason: `${recorded.type}@${recorded.position}: ${e.message}` }))
        ) as Effect.Effect<S["Type"], InvalidEvent>
      })
  }
}

/** The store seen through a codec: typed events in, typed events out. */
export const typed = <A extends { readonly _tag: string }>(codec: EventCodec<A>) => ({
  append: (stream: string, expected: ExpectedVersion, events: ReadonlyArray<A>, metadata: Metadata) =>
    Effect.gen(function*() {
      const store = yield* EventStore
      const encoded = yield* Effect.forEach(events, codec.encode)
      return yield* store.append(stream, expected, encoded, metadata)
    }),
  readStream: (stream: string, fromVersion?: number) =>
    Stream.unwrap(Effect.map(EventStore, (store) => store.readStream(stream, fromVersion))).pipe(
      Stream.mapEffect((recorded) => Effect.map(codec.decode(recorded), (event) => ({ recorded, event })))
    )
})
