import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Stream } from "effect"
import { DeviceLog, type Entry } from "../../src/actors/DeviceLog.ts"
import type { PinWrite } from "../../src/domain/Pins.ts"
import { EventStore } from "../../src/eventstore/EventStore.ts"
import { backends, storeLayer } from "../support/backends.ts"

const device = { session: "hw-1", remote: "10.0.0.1:4000" }
const caller = { session: "http-1", remote: "10.0.0.2" }

const write = (value: string, extra: Partial<Entry & { _tag: "Write" }> = {}): Entry => ({
  _tag: "Write",
  dashId: 1,
  deviceId: 0,
  source: "hardware",
  write: ["v", 1, value] as PinWrite,
  by: device,
  at: Date.now(),
  ...extra
})

describe("device log: writes someone waits on (HTTP)", () => {
  it.live("are appended apart from other writers' with their own metadata and timestamps, and called back once committed", () =>
    Effect.scoped(Effect.gen(function*() {
      const storage = yield* backends[0]!.storage
      const context = yield* Layer.build(storeLayer(storage))
      const run = Effect.runCallbackWith(context)
      const log = new DeviceLog((effect, done) => run(effect, { onExit: done }))
      const called: Array<string> = []
      log.push("device-x-1-0", write("d1"))
      // While d1's append is in flight:
      log.push("device-x-1-0", write("d2"))
      log.pushAll("device-x-1-0", [
        write("h1", { source: "http", by: caller, timestamp: 1000, committed: () => called.push("h1") }),
        write("h2", { source: "http", by: caller, timestamp: 2000, committed: () => called.push("h2") })
      ])
      log.push("device-x-1-0", write("d3"))
      yield* log.idle
      const events = yield* Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readStream("device-x-1-0"))).pipe(
        Effect.provideContext(context)
      )
      expect(events.map((e) => [e.data, e.metadata.actor, e.metadata.remoteAddress])).toEqual([
        [{ _tag: "PinsWritten", dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 1, "d1"]] }, "device", device.remote],
        [{ _tag: "PinsWritten", dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 1, "d2"]] }, "device", device.remote],
        [
          { _tag: "PinsWritten", dashId: 1, deviceId: 0, source: "http", writes: [["v", 1, "h1"], ["v", 1, "h2"]], timestamps: [1000, 2000] },
          "http",
          caller.remote
        ],
        [{ _tag: "PinsWritten", dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 1, "d3"]] }, "device", device.remote]
      ])
      expect(called).toEqual(["h1", "h2"])
    })))
})
