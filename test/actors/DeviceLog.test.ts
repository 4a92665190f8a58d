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

/**
 * Pushes `first`, then `later` right after the first append completes (so `later` go in one
 * append if they can); returns the stream's events once the log is idle. `first` holds two
 * entries or more, so the log is still busy (not idle) when `later` come.
 */
const appended = (
  first: ReadonlyArray<Entry>,
  later: ReadonlyArray<Entry>,
  options: { readonly intervalMillis?: number; readonly retryMillis?: number } = {}
) =>
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
          if (n === 1) log.pushAll("device-x-1-0", later)
        }
      })
    }, options)
    for (const entry of first) log.push("device-x-1-0", entry)
    yield* log.idle
    const events = yield* codec.readStream("device-x-1-0").pipe(Stream.runCollect, Effect.provideContext(context))
    return Array.from(events, ({ event }) => event)
  }))

const valuesOf = (event: DeviceEvent) => (event._tag === "PinsWritten" ? event.writes.map((w) => w[2]) : [])

/** Pushes 1 and 2, then 3-5 right after the first append completes; returns the writes per event. */
const scenario = (intervalMillis: number) =>
  Effect.map(appended([write(1), write(2)], [write(3), write(4), write(5)], { intervalMillis }), (events) => events.map(valuesOf))

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
      const runs = (yield* appended([writeOf("first"), writeOf("second")], values.map(writeOf), { retryMillis: 60_000 })).map(valuesOf)
      expect(runs.flat()).toEqual(["first", "second", ...values])
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
      const events = yield* appended([writeOf("1"), writeOf("2")], [writeOf("3"), poison, writeOf("4"), writeOf("5")], { retryMillis: 60_000 })
      expect(events.map(valuesOf)).toEqual([["1"], ["2"], ["3"], ["4"], ["5"]])
      expect(calls).toEqual(["refused"])
    }))
})
