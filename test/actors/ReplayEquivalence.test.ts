import { describe, expect, it } from "@effect/vitest"
import { type Context, Effect, Layer, Stream } from "effect"
import fc from "fast-check"
import * as AccountLog from "../../src/actors/AccountLog.ts"
import * as Directory from "../../src/actors/Directory.ts"
import type { AppPeer, DevicePeer } from "../../src/actors/Peer.ts"
import type { ExecuteResult, UserActor, UserView } from "../../src/actors/UserActor.ts"
import { newToken } from "../../src/adapters/security/Passwords.ts"
import {
  type AccountCommand,
  AccountEvent,
  AccountRejected,
  type AccountState,
  decide,
  evolve,
  findDashboard,
  findDevice
} from "../../src/domain/Account.ts"
import { applyDeviceEvent, DeviceEvent, pinKey, type PinValues, type PinWrite, propertyKey } from "../../src/domain/Pins.ts"
import { accountStream, deviceStream } from "../../src/domain/Streams.ts"
import type { JsonObject } from "../../src/domain/Widgets.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"
import { loadPinState } from "../../src/eventstore/projections/PinState.ts"
import { backends, storeLayer } from "../support/backends.ts"
import { inlineProjections } from "../../src/eventstore/projections/Inline.ts"

/**
 * DESIGN.md: the log is the truth, the actor's state a cache of it. For random interleavings of
 * account commands and pin writes sent to a user actor, what the actor holds equals what the log
 * rebuilds: the account by `AccountLog.load`, the pins by the `pin_state` projection, and the
 * pins again by a plain fold of the device streams (with the account's deletions, in log order),
 * which checks the projection itself. A fresh actor started from the log holds the same too.
 */

const DASHES = [1, 2, 3]
const DEVICES = [0, 1, 2]
const TAGS = [100_000, 100_001]

const accountLog = EventCodec.typed(EventCodec.make(AccountEvent))
const deviceLog = EventCodec.typed(EventCodec.make(DeviceEvent))
const encoder = new TextEncoder()

/** An account command; a device created gets a fresh token when the step runs. */
type CommandStep =
  | { readonly _tag: "Command"; readonly command: AccountCommand }
  | { readonly _tag: "CreateDevice"; readonly dashId: number; readonly deviceId: number; readonly name: string }
type Step =
  | CommandStep
  /** One write, or a burst of them as a busy device sends. */
  | { readonly _tag: "DeviceWrite"; readonly dashId: number; readonly deviceId: number; readonly writes: ReadonlyArray<PinWrite> }
  | { readonly _tag: "AppWrite"; readonly dashId: number; readonly targetId: number; readonly write: PinWrite }
  | {
    readonly _tag: "DeviceProperty"
    readonly dashId: number
    readonly deviceId: number
    readonly pin: number
    readonly property: string
    readonly value: string
  }

/** Mostly the dashboard and device every run starts with, so that writes and deletions meet. */
const dashId = fc.oneof({ arbitrary: fc.constant(DASHES[0]!), weight: 2 }, { arbitrary: fc.constantFrom(...DASHES), weight: 1 })
const deviceId = fc.oneof({ arbitrary: fc.constant(DEVICES[0]!), weight: 2 }, { arbitrary: fc.constantFrom(...DEVICES), weight: 1 })
const tagId = fc.constantFrom(...TAGS)
const name = fc.string({ unit: fc.constantFrom(..."ab xyZé水"), minLength: 1, maxLength: 8 })
const text = fc.string({ unit: fc.constantFrom(..."01ab.-é水 "), minLength: 1, maxLength: 6 })
const pinWrite: fc.Arbitrary<PinWrite> = fc
  .tuple(fc.constantFrom("v" as const, "d" as const, "a" as const), fc.nat({ max: 3 }), text, fc.array(text, { maxLength: 1 }))
  .map(([t, pin, first, rest]) => [t, pin, first, ...rest])
const WIDGET_TYPES = ["BUTTON", "GAUGE", "LED"]
/** A widget's type mostly follows from its id, so that most updates keep the type (and go through). */
const widget: fc.Arbitrary<JsonObject> = fc.record({
  id: fc.integer({ min: 1, max: 3 }),
  otherType: fc.oneof({ arbitrary: fc.constant(undefined), weight: 4 }, { arbitrary: fc.constantFrom(...WIDGET_TYPES), weight: 1 }),
  pinType: fc.constantFrom("VIRTUAL", "DIGITAL"),
  pin: fc.nat({ max: 3 }),
  deviceId,
  label: name,
  x: fc.nat({ max: 8 }),
  width: fc.integer({ min: 1, max: 4 })
}).map(({ otherType, ...w }) => ({ ...w, type: otherType ?? WIDGET_TYPES[w.id - 1]! }))
const settings: fc.Arbitrary<JsonObject> = fc.record({ theme: fc.constantFrom("Blynk", "BlynkLight"), keepScreenOn: fc.boolean() })
const extra: fc.Arbitrary<JsonObject> = fc.record(
  { vendor: name, connectionType: fc.constantFrom("WI_FI", "ETHERNET") },
  { requiredKeys: [] }
)
const command = (c: fc.Arbitrary<AccountCommand>) => c.map((command): Step => ({ _tag: "Command", command }))

/** Weighted so that most commands find what they update or delete, and some do not. */
const commandStep: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 1,
    arbitrary: command(
      fc.record({ _tag: fc.constant("CreateDashboard" as const), dashId, name, settings, widgets: fc.array(widget, { maxLength: 2 }) })
        .filter((c) => new Set(c.widgets.map((w) => w["id"])).size === c.widgets.length)
    )
  },
  {
    weight: 1,
    arbitrary: command(
      fc.record({ _tag: fc.constant("UpdateDashboard" as const), dashId, name, settings, widgets: fc.array(widget, { maxLength: 2 }) })
    )
  },
  { weight: 1, arbitrary: command(fc.record({ _tag: fc.constant("DeleteDashboard" as const), dashId })) },
  { weight: 2, arbitrary: command(fc.record({ _tag: fc.constant("Activate" as const), dashId })) },
  { weight: 1, arbitrary: command(fc.record({ _tag: fc.constant("Deactivate" as const), dashId })) },
  { weight: 1, arbitrary: command(fc.constant({ _tag: "Deactivate" as const })) },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("CreateDevice" as const), dashId, deviceId, name }) },
  { weight: 2, arbitrary: command(fc.record({ _tag: fc.constant("UpdateDevice" as const), dashId, deviceId, name, boardType: name, extra })) },
  { weight: 2, arbitrary: command(fc.record({ _tag: fc.constant("DeleteDevice" as const), dashId, deviceId })) },
  { weight: 3, arbitrary: command(fc.record({ _tag: fc.constant("CreateWidget" as const), dashId, widget })) },
  { weight: 3, arbitrary: command(fc.record({ _tag: fc.constant("UpdateWidget" as const), dashId, widget })) },
  {
    weight: 1,
    arbitrary: command(fc.record({ _tag: fc.constant("DeleteWidget" as const), dashId, widgetId: fc.integer({ min: 1, max: 3 }) }))
  },
  {
    weight: 2,
    arbitrary: command(fc.record({
      _tag: fc.constantFrom("CreateTag" as const, "UpdateTag" as const),
      dashId,
      tag: fc.record({ id: tagId, name, deviceIds: fc.uniqueArray(deviceId, { maxLength: 3 }) })
    }))
  },
  { weight: 1, arbitrary: command(fc.record({ _tag: fc.constant("DeleteTag" as const), dashId, tagId })) }
)

const writeStep: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ _tag: fc.constant("DeviceWrite" as const), dashId, deviceId, writes: fc.array(pinWrite, { minLength: 1, maxLength: 4 }) }),
  fc.record({ _tag: fc.constant("AppWrite" as const), dashId, targetId: fc.oneof(deviceId, tagId), write: pinWrite }),
  fc.record({
    _tag: fc.constant("DeviceProperty" as const),
    dashId,
    deviceId,
    pin: fc.nat({ max: 3 }),
    property: fc.constantFrom("label", "color"),
    value: text
  })
)

/** Commands and writes about evenly; a run opens with a dashboard and a device so writes land. */
const steps = fc.array(fc.oneof(commandStep, writeStep), { minLength: 1, maxLength: 30, size: "max" }).map((rest): Array<Step> => [
  { _tag: "Command", command: { _tag: "CreateDashboard", dashId: 1, name: "Home" } },
  { _tag: "CreateDevice", dashId: 1, deviceId: 0, name: "first" },
  { _tag: "Command", command: { _tag: "Activate", dashId: 1 } },
  ...rest
])

/** Peers that hear nothing: what the actor tells the sessions is the protocol tests' business. */
const devicePeer = (dashId: number, deviceId: number): DevicePeer => ({
  dashId,
  deviceId,
  remote: "test",
  session: "replay",
  send: () => {}
})
const appPeer: AppPeer = { remote: "test", session: "replay", send: () => {} }

const read = (actor: UserActor) => actor.ref.ask<UserView, never>((reply) => ({ _tag: "Read", reply }))

/** Runs one account command through the actor; a refusal is part of the game, a crash is not. */
const execute = (actor: UserActor, command: AccountCommand) =>
  actor.ref.ask<ExecuteResult, AccountRejected>((reply) => ({
    _tag: "Execute",
    peer: undefined,
    id: 0,
    commands: () => [command],
    metadata: { actor: "test", session: "replay", time: new Date().toISOString() },
    answer: () => undefined,
    reply
  })).pipe(Effect.asVoid, Effect.catchTag("AccountRejected", () => Effect.void))

const told = (actor: UserActor, message: Parameters<UserActor["ref"]["offer"]>[0]) =>
  Effect.map(actor.ref.tell(message), (accepted) => expect(accepted).toBe(true))

const hardwareBody = ([t, pin, ...values]: PinWrite) => [`${t}w`, String(pin), ...values].join("\0")

/** A step as the actor gets it; a device created gets its fresh token here. */
type Sent = Exclude<Step, { readonly _tag: "CreateDevice" }>
const prepare = (step: Step): Sent => {
  if (step._tag !== "CreateDevice") return step
  const { _tag, ...device } = step
  return { _tag: "Command", command: { _tag: "CreateDevice", ...device, boardType: "ESP32", token: newToken() } }
}

const send = (actor: UserActor, step: Sent) => {
  switch (step._tag) {
    case "Command":
      return execute(actor, step.command)
    case "DeviceWrite":
      return Effect.forEach(step.writes, (write) =>
        told(actor, {
          _tag: "DeviceWrite",
          peer: devicePeer(step.dashId, step.deviceId),
          id: 1,
          write,
          body: encoder.encode(hardwareBody(write))
        }), { discard: true })
    case "AppWrite":
      return told(actor, {
        _tag: "AppWrite",
        peer: appPeer,
        id: 2,
        dashId: step.dashId,
        targetId: step.targetId,
        write: step.write,
        body: encoder.encode(hardwareBody(step.write)),
        fullBody: encoder.encode(`${step.dashId}-${step.targetId}\0${hardwareBody(step.write)}`)
      })
    case "DeviceProperty":
      return told(actor, {
        _tag: "DeviceProperty",
        peer: devicePeer(step.dashId, step.deviceId),
        id: 3,
        pin: step.pin,
        property: step.property,
        value: step.value
      })
  }
}

const deletePrefix = (pins: PinValues, prefix: string) => {
  for (const key of [...pins.keys()]) if (key.startsWith(prefix)) pins.delete(key)
}

/**
 * What the messages mean, taken in the order the actor's mailbox took them (protocol.md §2.5):
 * a device's write is stored if its device exists; an app's write only while the dashboard is
 * active, for the device or the tag's devices; a property if the device exists; a deleted
 * device or dashboard takes its pins with it.
 */
interface Expected {
  account: AccountState
  readonly pins: PinValues
}
const expectStep = (m: Expected, step: Sent) => {
  switch (step._tag) {
    case "Command": {
      const decided = decide(m.account, step.command)
      if (decided instanceof AccountRejected) return
      for (const event of decided) {
        m.account = evolve(m.account, event)
        if (event._tag === "DeviceDeleted") deletePrefix(m.pins, `${event.dashId}-${event.deviceId}-`)
        if (event._tag === "DashboardDeleted") deletePrefix(m.pins, `${event.dashId}-`)
      }
      return
    }
    case "DeviceWrite":
      if (!findDevice(findDashboard(m.account, step.dashId), step.deviceId)) return
      for (const [t, pin, ...values] of step.writes) m.pins.set(pinKey(step.dashId, step.deviceId, t, pin), values)
      return
    case "AppWrite": {
      const dash = findDashboard(m.account, step.dashId)
      if (dash === undefined || !dash.isActive) return
      const targets = step.targetId < 100_000
        ? (findDevice(dash, step.targetId) ? [step.targetId] : [])
        : dash.tags.find((t) => t.id === step.targetId)?.deviceIds ?? []
      const [t, pin, ...values] = step.write
      for (const device of targets) m.pins.set(pinKey(step.dashId, device, t, pin), values)
      return
    }
    case "DeviceProperty":
      if (findDevice(findDashboard(m.account, step.dashId), step.deviceId)) {
        m.pins.set(propertyKey(step.dashId, step.deviceId, step.pin, step.property), [step.value])
      }
      return
  }
}

/**
 * The pins as the log says, without the projection: every device stream folded with
 * `applyDeviceEvent`, and the account's deletions of devices and dashboards (which take their pins
 * with them) applied at their place in the log.
 */
const foldPins = (stream: string) =>
  Effect.gen(function*() {
    const entries: Array<{ readonly position: number; readonly apply: (pins: PinValues) => void }> = []
    const deleting = (prefix: string) => (pins: PinValues) => deletePrefix(pins, prefix)
    yield* accountLog.readStream(stream).pipe(Stream.runForEach(({ event, recorded }) =>
      Effect.sync(() => {
        const { position } = recorded
        if (event._tag === "DeviceDeleted") entries.push({ position, apply: deleting(`${event.dashId}-${event.deviceId}-`) })
        if (event._tag === "DashboardDeleted") entries.push({ position, apply: deleting(`${event.dashId}-`) })
      })
    ))
    for (const dash of DASHES) {
      for (const device of DEVICES) {
        yield* deviceLog.readStream(deviceStream(stream, dash, device)).pipe(Stream.runForEach(({ event, recorded }) =>
          Effect.sync(() => {
            // A device stream holds only its own device's events.
            expect([event.dashId, event.deviceId]).toEqual([dash, device])
            entries.push({ position: recorded.position, apply: (pins) => applyDeviceEvent(pins, event) })
          })
        ))
      }
    }
    const pins: PinValues = new Map()
    for (const entry of entries.sort((a, b) => a.position - b.position)) entry.apply(pins)
    return pins
  })

const sorted = (pins: PinValues) => [...pins].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))

let accounts = 0

/** Runs the steps on a fresh account and gathers every view of its state. */
const scenario = (run: ReadonlyArray<Step>) =>
  Effect.gen(function*() {
    const directory = yield* Directory.Directory
    const email = `replay${++accounts}-${process.pid}-${Date.now()}@example.com`
    const stream = accountStream(email, "Blynk")
    const actor = yield* directory.actor(stream)
    const expected: Expected = { account: undefined, pins: new Map() }
    const register: Step = { _tag: "Command", command: { _tag: "Register", email, appName: "Blynk", passwordHash: "not-a-real-hash" } }
    for (const step of [register, ...run]) {
      const sent = prepare(step)
      expectStep(expected, sent)
      yield* send(actor, sent)
    }
    // Answered after every write before it was handled, so the device log has them all; then
    // wait until it has committed them.
    yield* read(actor)
    yield* actor.flushed
    const live = yield* read(actor)
    const log = yield* AccountLog.load(stream)
    const projected = yield* loadPinState(stream)
    const folded = yield* foldPins(stream)
    // What a restart sees: a new actor, built from the log alone.
    yield* directory.evict(stream)
    const restarted = yield* read(yield* directory.actor(stream))
    yield* directory.evict(stream)
    return { expected, live, log, projected, folded, restarted }
  })

type Services = Directory.Directory | Layer.Success<ReturnType<typeof storeLayer>>
type Outcome = Effect.Success<ReturnType<typeof scenario>>

/** Checks `check` on the outcome of 30 random runs, each on a fresh account. */
const property = (context: Context.Context<Services>, check: (outcome: Outcome) => void) =>
  Effect.promise(() =>
    fc.assert(
      fc.asyncProperty(steps, (run) => Effect.runPromise(Effect.map(scenario(run).pipe(Effect.provideContext(context)), check))),
      { numRuns: 30 }
    )
  )

for (const backend of backends) {
  describe(`user actor replay on ${backend.name}`, () => {
    const withStore = <A, E>(f: (context: Context.Context<Services>) => Effect.Effect<A, E>) =>
      Effect.gen(function*() {
        const storage = yield* backend.storage
        const context = yield* Layer.build(
          Directory.layer.pipe(Layer.provideMerge(storeLayer(storage, { inline: inlineProjections })))
        )
        return yield* f(context)
      })

    it.live("the live state equals the state rebuilt from the log: account, pin_state, a fold of the device streams, a restarted actor", () =>
      withStore((context) =>
        property(context, ({ live, log, projected, folded, restarted }) => {
          expect(live.account).toEqual(log.state)
          expect(live.version).toBe(log.version)
          expect(sorted(projected)).toEqual(sorted(folded))
          expect(sorted(live.pins)).toEqual(sorted(projected))
          expect(restarted.account).toEqual(live.account)
          expect(restarted.version).toBe(live.version)
          expect(sorted(restarted.pins)).toEqual(sorted(live.pins))
        })
      ))

    it.live("the log holds what the messages meant, in the order the actor took them", () =>
      withStore((context) =>
        property(context, ({ expected, log, projected }) => {
          expect(log.state).toEqual(expected.account)
          expect(sorted(projected)).toEqual(sorted(expected.pins))
        })
      ))
  })
}
