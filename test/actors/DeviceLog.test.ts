import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { DeviceLog, type Entry, MAX_RUN_CHARS } from "../../src/actors/DeviceLog.ts"
import { DeviceEvent, type PinWrite, PropertySet } from "../../src/domain/Pins.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"
import { backends, storeLayer } from "../support/backends.ts"

const codec = EventCodec.typed(EventCodec.make(DeviceEvent))
const writer = { session: "s", remote: "127.0.0.1:1" }
const writeOf = (value: string): Entry => ({
  _tag: "Write",
  dashId: 1,
  deviceId: 0,
  source: "hardware",
  write: ["v", 1, value] as PinWrite,
  by: writer,
  at: Date.now()
})

const write = (n: number): Entry => writeOf(String(n))

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

/**
 * Pushes `first`, then `rest` while the first append is in flight (so they go in one append if
 * they can); returns the stream's events once the log is idle.
 */
const pushedWhileBusy = (first: Entry, rest: ReadonlyArray<Entry>) =>
  Effect.scoped(Effect.gen(function*() {
    const storage = yield* backends[0]!.storage
    const context = yield* Layer.build(storeLayer(storage))
    const run = Effect.runCallbackWith(context)
    let appends = 0
    const log: DeviceLog = new DeviceLog((effect, done) => {
      const n = ++appends
      run(effect, {
        onExit: (exit) => {
          if (n === 1) log.pushAll("device-x-1-0", rest)
          done(exit)
        }
      })
    }, { retryMillis: 60_000 })
    log.push("device-x-1-0", first)
    yield* log.idle
    const events = yield* codec.readStream("device-x-1-0").pipe(Stream.runCollect, Effect.provideContext(context))
    return Array.from(events, ({ event }) => event)
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

  it.live("writes coalesced while busy are split into events the store takes (by size as well as by count), none lost", () =>
    Effect.gen(function*() {
      // 300 writes of 8,000 characters: 2.4 MB in one event, over the store's 1 MB per event.
      const values = Array.from({ length: 300 }, (_, i) => String(i % 10).repeat(8_000))
      const events = yield* pushedWhileBusy(writeOf("first"), values.map(writeOf))
      const runs = events.map((e) => (e._tag === "PinsWritten" ? e.writes.map((w) => w[2]) : []))
      expect(runs.flat()).toEqual(["first", ...values])
      expect(runs.length).toBeGreaterThan(2)
      for (const run of runs) expect(run.reduce((n, v) => n + v.length, 0)).toBeLessThanOrEqual(MAX_RUN_CHARS)
    }))

  it.live("an entry the store refuses for good is dropped alone, with `refused` called; the rest of its append is stored, in order", () =>
    Effect.gen(function*() {
      const calls: Array<string> = []
      // PostgreSQL's JSON cannot hold a NUL: the store refuses this event whatever happens.
      const poison: Entry = {
        _tag: "Event",
        event: new PropertySet({ dashId: 1, deviceId: 0, pin: 1, property: "label", value: "a\0b" }),
        by: writer,
        at: Date.now(),
        // Not awaited (no `committed`), so it goes in one append with the writes around it.
        refused: () => calls.push("refused")
      }
      const events = yield* pushedWhileBusy(writeOf("1"), [writeOf("2"), poison, writeOf("3"), writeOf("4")])
      expect(events.map((e) => (e._tag === "PinsWritten" ? e.writes.map((w) => w[2]).join(",") : e._tag))).toEqual(["1", "2", "3", "4"])
      expect(calls).toEqual(["refused"])
    }))
})
