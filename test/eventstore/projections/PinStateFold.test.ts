import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { pinKey, type PinType } from "../../../src/domain/Pins.ts"
import { accountStream, deviceStream } from "../../../src/domain/Streams.ts"
import { PinStateFold } from "../../../src/eventstore/projections/PinState.ts"

const accounts = ["fold-a@example.com", "fold-b@example.com"].map((e) => accountStream(e, "Blynk"))
/** Device streams: (account, dashboard, device). */
const streams = [[0, 1, 0], [0, 1, 1], [1, 2, 0]] as const

interface Event {
  readonly position: number
  readonly streamId: string
  readonly type: string
  readonly data: unknown
}

const write = fc.tuple(
  fc.constantFrom<PinType | "x">("v", "v", "d", "a", "x"),
  // Small pins (kept by code), the first past the code's range, and far ones.
  fc.constantFrom(0, 1, 2, 1023, 1024, 5000),
  fc.array(fc.constantFrom("1", "2", "on", ""), { minLength: 1, maxLength: 3 })
)

const op = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      _tag: fc.constant("write" as const),
      stream: fc.integer({ min: 0, max: streams.length - 1 }),
      // Now and then a dashboard or device other than the stream's.
      other: fc.constantFrom(false, false, false, false, true),
      writes: fc.array(write, { minLength: 1, maxLength: 4 })
    })
  },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("deleteDevice" as const), stream: fc.integer({ min: 0, max: streams.length - 1 }) }) },
  { weight: 1, arbitrary: fc.record({ _tag: fc.constant("deleteDashboard" as const), account: fc.integer({ min: 0, max: 1 }), dash: fc.constantFrom(1, 2) }) }
)
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never

const accountOfStream = new Map(streams.map(([a, dash, device]) => [deviceStream(accounts[a]!, dash, device), accounts[a]!]))

/** The events of a workload, in log order. */
const eventsOf = (ops: ReadonlyArray<Op>): Array<Event> =>
  ops.map((o, i): Event => {
    const position = i + 1
    switch (o._tag) {
      case "write": {
        const [a, dash, device] = streams[o.stream]!
        return {
          position,
          streamId: deviceStream(accounts[a]!, dash, device),
          type: "PinsWritten",
          data: {
            _tag: "PinsWritten",
            dashId: o.other ? dash + 10 : dash,
            deviceId: device,
            source: "hardware",
            writes: o.writes.map(([t, pin, values]) => [t, pin, ...values])
          }
        }
      }
      case "deleteDevice": {
        const [a, dash, device] = streams[o.stream]!
        return { position, streamId: accounts[a]!, type: "DeviceDeleted", data: { _tag: "DeviceDeleted", dashId: dash, deviceId: device } }
      }
      case "deleteDashboard":
        return { position, streamId: accounts[o.account]!, type: "DashboardDeleted", data: { _tag: "DashboardDeleted", dashId: o.dash } }
    }
  })

/** What the table holds after the events, applied one after the other in log order. */
const model = (events: ReadonlyArray<Event>) => {
  const rows = new Map<string, [string, string, ReadonlyArray<unknown>, number]>()
  for (const e of events) {
    const d = e.data as { dashId: number; deviceId?: number; writes?: ReadonlyArray<[string, number, ...Array<string>]> }
    if (e.type === "PinsWritten") {
      // A write of an unknown pin type makes the whole event unreadable: it does nothing.
      if (d.writes!.some((w) => w[0] === "x")) continue
      const account = accountOfStream.get(e.streamId)!
      for (const w of d.writes!) {
        const key = pinKey(d.dashId, d.deviceId!, w[0] as PinType, w[1])
        rows.set(`${account} ${key}`, [account, key, w.slice(2), e.position])
      }
    } else {
      const prefix = e.type === "DeviceDeleted" ? `${d.dashId}-${d.deviceId}-` : `${d.dashId}-`
      for (const [k, row] of rows) if (row[0] === e.streamId && row[1].startsWith(prefix)) rows.delete(k)
    }
  }
  return [...rows.values()].sort((x, y) => (`${x[0]} ${x[1]}` < `${y[0]} ${y[1]}` ? -1 : 1))
}

describe("PinStateFold", () => {
  it("events taken in any order and cut into any batches fold to what applying them in log order gives (property)", () => {
    fc.assert(
      fc.property(
        fc.array(op, { minLength: 1, maxLength: 40 }).chain((ops) =>
          fc.tuple(
            fc.constant(ops),
            fc.shuffledSubarray(ops.map((_, i) => i), { minLength: ops.length, maxLength: ops.length }),
            fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 5 })
          )
        ),
        ([ops, order, cuts]) => {
          const events = eventsOf(ops)
          const fold = new PinStateFold()
          const shuffled = order.map((i) => events[i]!)
          let from = 0
          for (const cut of [...cuts].sort((a, b) => a - b)) {
            fold.add(shuffled.slice(from, Math.max(from, cut)))
            from = Math.max(from, cut)
          }
          fold.add(shuffled.slice(from))
          const rows = [...fold.rows()].sort((x, y) => (`${x[0]} ${x[1]}` < `${y[0]} ${y[1]}` ? -1 : 1))
          expect(rows).toEqual(model(events))
        }
      ),
      { numRuns: 300 }
    )
  })
})
