import { describe, expect, it } from "@effect/vitest"
import { Effect, Schema, Stream } from "effect"
import type { Metadata, RecordedEvent } from "../../src/eventstore/Event.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"
import { EventStore } from "../../src/eventstore/EventStore.ts"
import { backends, storeLayer } from "../support/backends.ts"

class PinWritten extends Schema.TaggedClass<PinWritten>()("PinWritten", {
  pin: Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 255 })),
  value: Schema.String,
  unit: Schema.String
}) {}
class DeviceRenamed extends Schema.TaggedClass<DeviceRenamed>()("DeviceRenamed", { name: Schema.NonEmptyString }) {}
const DeviceEvent = Schema.Union([PinWritten, DeviceRenamed])

const codec = EventCodec.make(DeviceEvent, {
  // Version 1 of PinWritten had no unit; version 2 adds it.
  versions: { PinWritten: 2 },
  upcasters: { PinWritten: { 1: (data) => ({ ...(data as object), unit: "" }) } }
})

const meta: Metadata = { time: "2026-11-22T10:00:00.000Z" }
const recorded = (type: string, schemaVersion: number, data: unknown): RecordedEvent => ({
  position: 1,
  txId: 1n,
  streamId: "device-1",
  version: 1,
  type,
  schemaVersion,
  data,
  metadata: meta,
  recordedAt: new Date(0)
})

describe("event codec", () => {
  it.effect("stores the tag as the type, with the type's current schema version", () =>
    Effect.gen(function*() {
      const encoded = yield* codec.encode(new PinWritten({ pin: 3, value: "1.5", unit: "C" }))
      expect(encoded).toMatchObject({ type: "PinWritten", schemaVersion: 2 })
      expect(encoded.data).toMatchObject({ pin: 3, value: "1.5", unit: "C" })
      const renamed = yield* codec.encode(new DeviceRenamed({ name: "kitchen" }))
      expect(renamed.schemaVersion).toBe(1)
      const back = yield* codec.decode(recorded(encoded.type, encoded.schemaVersion, encoded.data))
      expect(back).toBeInstanceOf(PinWritten)
      expect(back).toMatchObject({ pin: 3, value: "1.5", unit: "C" })
    }))

  it.effect("upcasts an old version on the way out", () =>
    Effect.gen(function*() {
      const old = yield* codec.decode(recorded("PinWritten", 1, { _tag: "PinWritten", pin: 7, value: "on" }))
      expect(old).toMatchObject({ _tag: "PinWritten", pin: 7, value: "on", unit: "" })
    }))

  it.effect("an event that fails its schema, or cannot be upcast, is a typed error", () =>
    Effect.gen(function*() {
      const invalid = yield* Effect.flip(codec.encode({ _tag: "PinWritten", pin: 999, value: "x", unit: "" } as PinWritten))
      expect(invalid._tag).toBe("InvalidEvent")
      const garbage = yield* Effect.flip(codec.decode(recorded("PinWritten", 2, { _tag: "PinWritten", pin: "x" })))
      expect(garbage._tag).toBe("InvalidEvent")
      const noUpcaster = yield* Effect.flip(codec.decode(recorded("DeviceRenamed", 0, { _tag: "DeviceRenamed", name: "a" })))
      expect(noUpcaster._tag).toBe("InvalidEvent")
    }))
})

const backend = backends[0]!
const log = EventCodec.typed(codec)

describe(`typed appends on ${backend.name}`, () => {
  it.live("write typed events, read them back decoded, and write nothing when one is invalid", () =>
    Effect.gen(function*() {
      const storage = yield* backend.storage
      yield* Effect.gen(function*() {
        const store = yield* EventStore
        yield* log.append("device-1", "noStream", [new PinWritten({ pin: 1, value: "2", unit: "V" }), new DeviceRenamed({ name: "a" })], meta)
        const bad = yield* Effect.flip(
          log.append("device-1", "any", [new DeviceRenamed({ name: "b" }), { _tag: "DeviceRenamed", name: "" } as DeviceRenamed], meta)
        )
        expect(bad._tag).toBe("InvalidEvent")
        expect(yield* store.streamVersion("device-1")).toBe(2)
        const events = yield* Stream.runCollect(log.readStream("device-1"))
        expect(events.map((e) => e.event._tag)).toEqual(["PinWritten", "DeviceRenamed"])
        expect(events[0]!.recorded.schemaVersion).toBe(2)
      }).pipe(Effect.provide(storeLayer(storage)))
    }))
})
