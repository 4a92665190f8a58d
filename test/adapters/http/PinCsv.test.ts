import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { gunzipSync } from "node:zlib"
import { CSV_POINTS, csvFileName, csvText, javaDouble, pinCsv } from "../../../src/adapters/http/PinCsv.ts"
import { accountStream, deviceStream } from "../../../src/domain/Streams.ts"
import * as PinHistory from "../../../src/eventstore/projections/PinHistory.ts"
import { backends, storeLayer } from "../../support/backends.ts"

const forever: PinHistory.Retention = { rawDays: 0, minuteDays: 0, hourDays: 0, dayDays: 0 }
const base = Date.parse("2026-05-01T10:00:00.000Z")
const MIN = 60_000

describe("CSV of a pin's history (protocol.md §7.4)", () => {
  it("prints values as Java's Double.toString does", () => {
    expect([10, 0.5, -3, 0, 1234567.25, 1e7, 12345678.9, 0.001, 0.000125, -2.5e-7, 1e21, Number.NaN].map(javaDouble)).toEqual([
      "10.0", "0.5", "-3.0", "0.0", "1234567.25", "1.0E7", "1.23456789E7", "0.001", "1.25E-4", "-2.5E-7", "1.0E21", "NaN"
    ])
    expect(csvText([{ value: 10, ts: 1438022081332 }, { value: 2.5, ts: 1438022141332 }], 0)).toBe(
      "10.0,1438022081332,0\n2.5,1438022141332,0\n"
    )
    expect(csvFileName("me@example.com", { accountStream: "user-x", dashId: 1, deviceId: 2, pinType: "v", pin: 5 }, 42)).toBe(
      "me@example.com_1_2_v5_42.csv.gz"
    )
    expect(CSV_POINTS).toBe(43_200)
  })
})

for (const backend of backends) {
  describe(`CSV export on ${backend.name}`, () => {
    it.live("gzip lines value,timestampMs,deviceId from the minute rollups, oldest first, the last ones only; no data, no file", () =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        yield* Effect.gen(function*() {
          const account = accountStream("csv@example.com", "Blynk")
          let position = 0
          const event = (time: number, writes: ReadonlyArray<readonly [string, number, string]>) => ({
            position: ++position,
            streamId: deviceStream(account, 1, 3),
            type: "PinsWritten",
            data: { _tag: "PinsWritten", dashId: 1, deviceId: 3, source: "hardware", writes },
            time
          })
          yield* PinHistory.apply([
            event(base + 1_000, [["v", 5, "10"], ["v", 5, "11"], ["v", 6, "text"]]),
            event(base + MIN + 5, [["v", 5, "2.5"]]),
            event(base + 3 * MIN, [["v", 5, "20000000"]])
          ], base + 4 * MIN, forever)
          const pin = { accountStream: account, dashId: 1, deviceId: 3, pinType: "v" as const, pin: 5 }
          const all = yield* pinCsv(pin)
          expect(all).toBeDefined()
          expect(gunzipSync(all!).toString()).toBe(
            `10.5,${base},3\n2.5,${base + MIN},3\n2.0E7,${base + 3 * MIN},3\n`
          )
          const last = yield* pinCsv(pin, { points: 2 })
          expect(gunzipSync(last!).toString()).toBe(`2.5,${base + MIN},3\n2.0E7,${base + 3 * MIN},3\n`)
          // A pin with only strings, or none at all: nothing to export.
          expect(yield* pinCsv({ ...pin, pin: 6 })).toBeUndefined()
          expect(yield* pinCsv({ ...pin, pin: 7 })).toBeUndefined()
        }).pipe(Effect.provide(storeLayer(storage)))
      }))
  })
}
