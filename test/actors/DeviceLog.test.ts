import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { DeviceLog, type Entry } from "../../src/actors/DeviceLog.ts"
import { DeviceEvent, type PinWrite } from "../../src/domain/Pins.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"
import { backends, storeLayer } from "../support/backends.ts"

const codec = EventCodec.typed(EventCodec.make(DeviceEvent))
const writer = { session: "s", remote: "127.0.0.1:1" }
const write = (n: number): Entry => ({
  _tag: "Write",
  dashId: 1,
  deviceId: 0,
  source: "hardware",
  write: ["v", 1, String(n)] as PinWrite,
  by: writer,
  at: Date.now()
})

/** Pushes 1 and 2, then 3-5 right after the first append completes; returns the writes per event. */
const scenario = (intervalMillis: number) =>
  Effect.scoped(Effect.gen(function*() {
    const storage = yield* backends[0]!.storage
    const context = yield* Layer.build(storeLayer(storage))
    const run = Effect.runCallbackWith(context)
    let appends = 0
    const log: DeviceLog = new DeviceLog((effect, done) => {
      const n = ++appends
      run(effect, {
        onExit: (exit) => {
          done(exit)
          if (n === 1) for (const k of [3, 4, 5]) log.push("device-x-1-0", write(k))
        }
      })
    }, { intervalMillis })
    log.push("device-x-1-0", write(1))
    log.push("device-x-1-0", write(2))
    yield* log.idle
    const events = yield* codec.readStream("device-x-1-0").pipe(Stream.runCollect, Effect.provideContext(context))
    return Array.from(events, ({ event }) => (event._tag === "PinsWritten" ? event.writes.map((w) => w[2]) : []))
  }))

describe("device log", () => {
  it.live("appends at once when idle, and coalesces what arrives while an append is in flight", () =>
    Effect.gen(function*() {
      expect(yield* scenario(0)).toEqual([["1"], ["2"], ["3", "4", "5"]])
    }))

  it.live("with an interval, a busy stream waits before its next append, so that append carries more", () =>
    Effect.gen(function*() {
      expect(yield* scenario(200)).toEqual([["1"], ["2", "3", "4", "5"]])
    }))
})
