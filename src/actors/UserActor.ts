import { Deferred, Effect, Exit, Stream } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import {
  type Account,
  type AccountCommand,
  AccountEvent,
  AccountRejected,
  type AccountState,
  type Dashboard,
  decideAll,
  evolve,
  type Limits,
  findDashboard,
  findDevice
} from "../domain/Account.ts"
import { type AccessEvent, CommandRefused, OwnerLoggedIn, SharedLogin, SharedLoginRefused, SharedSessionsClosed } from "../domain/Access.ts"
import { deviceOfToken, mayChangeLayout, mayControl, mayView, type Principal, sharedDashboard } from "../domain/Permissions.ts"
import { DeviceConnected, DeviceDisconnected, type PinWrite, parsePinKey, parsePropertyKey, pinKey, type PinValues, PropertySet, propertyKey, type PinType } from "../domain/Pins.ts"
import { DAY_MS, dayOf, defaultEventLimits, type DeviceEventsToday, type EventLimits } from "../domain/LoggedEvents.ts"
import { accessStream, deviceStream } from "../domain/Streams.ts"
import { pinModes, widgetId } from "../domain/Widgets.ts"
import { WrongExpectedVersion } from "../eventstore/Errors.ts"
import type { Metadata } from "../eventstore/Event.ts"
import * as EventCodec from "../eventstore/EventCodec.ts"
import type { EventStore } from "../eventstore/EventStore.ts"
import { eventsLoggedSince } from "../eventstore/LoggedEventQueries.ts"
import { loadPinState } from "../eventstore/projections/PinState.ts"
import * as Actor from "./Actor.ts"
import * as AccountLog from "./AccountLog.ts"
import { DeviceLog, type Writer } from "./DeviceLog.ts"
import * as HttpWrites from "./HttpWrites.ts"
import * as Notify from "./Notify.ts"
import type { AppNotice, AppPeer, DevicePeer } from "./Peer.ts"

/** What a user actor holds: the account as its stream says, and the last value of every pin. */
export interface UserState {
  readonly account: AccountState
  readonly version: number
  readonly pins: PinValues
}

/** What the actor answers to `Read`: a copy of its state plus who is online. */
export interface UserView extends UserState {
  /** `dashId-deviceId` of every device with at least one socket. */
  readonly online: ReadonlySet<string>
  readonly apps: number
}

export type ExecuteResult = { readonly account: Account; readonly events: ReadonlyArray<AccountEvent> }

export type UserMessage =
  | {
    readonly _tag: "DeviceLogin"
    readonly peer: DevicePeer
    readonly id: number
    readonly reply: Deferred.Deferred<boolean>
    /** Set once the actor has re-read its stream for this login. */
    readonly reloaded?: boolean
  }
  | { readonly _tag: "DeviceLogout"; readonly peer: DevicePeer }
  | { readonly _tag: "DeviceWrite"; readonly peer: DevicePeer; readonly id: number; readonly write: PinWrite; readonly body: Uint8Array }
  | {
    readonly _tag: "DeviceSync"
    readonly peer: DevicePeer
    readonly id: number
    readonly pins: ReadonlyArray<{ readonly pinType: PinType; readonly pin: number }> | undefined
  }
  | {
    readonly _tag: "DeviceProperty"
    readonly peer: DevicePeer
    readonly id: number
    readonly pin: number
    readonly property: string
    readonly value: string
  }
  | { readonly _tag: "DeviceRtc"; readonly peer: DevicePeer; readonly id: number }
  /** BRIDGE init (protocol.md §2.4): `pin` now leads to the device of `token`, if it is this account's. */
  | { readonly _tag: "BridgeInit"; readonly peer: DevicePeer; readonly id: number; readonly pin: string; readonly token: string }
  /**
   * BRIDGE use: `body` (the hardware body after the bridge pin) goes to the target's other
   * connections, and `write`, if it is one, counts as the target's own.
   */
  | {
    readonly _tag: "BridgeWrite"
    readonly peer: DevicePeer
    readonly id: number
    readonly pin: string
    readonly write: PinWrite | undefined
    readonly body: Uint8Array
  }
  | { readonly _tag: "AppAttach"; readonly peer: AppPeer; readonly reply: Deferred.Deferred<boolean> }
  | { readonly _tag: "AppDetach"; readonly peer: AppPeer }
  /** A shared app asked for something outside its scope; the session answered NOT_ALLOWED, the actor records it. */
  | { readonly _tag: "Refused"; readonly peer: AppPeer; readonly command: string }
  | {
    readonly _tag: "AppWrite"
    readonly peer: AppPeer
    readonly id: number
    readonly dashId: number
    readonly targetId: number
    /** Undefined for operations that are forwarded but change no value. */
    readonly write: PinWrite | undefined
    /** The body for the device: the app's body without its target. */
    readonly body: Uint8Array
    /** The app's whole body, for the account's other apps. */
    readonly fullBody: Uint8Array
  }
  | { readonly _tag: "AppSync"; readonly peer: AppPeer; readonly id: number; readonly dashId: number; readonly deviceId: number | undefined }
  | {
    readonly _tag: "Execute"
    readonly peer: AppPeer | undefined
    readonly id: number
    readonly commands: (state: AccountState) => ReadonlyArray<AccountCommand>
    readonly metadata: Metadata
    /** The answer to the peer once committed (the adapter encodes it); undefined sends OK, null nothing. */
    readonly answer: (result: ExecuteResult) => AppNotice | undefined | null
    readonly reply: Deferred.Deferred<ExecuteResult, AccountRejected>
  }
  | { readonly _tag: "Read"; readonly reply: Deferred.Deferred<UserView> }
  /**
   * A security event of the account from outside a session (the owner API's login), appended to
   * `access-<account>` with its writer's metadata; `reply` completes once it is committed.
   */
  | {
    readonly _tag: "RecordAccess"
    readonly event: AccessEvent
    readonly by: Writer
    readonly actor: string
    readonly reply: Deferred.Deferred<void>
  }
  /**
   * Another process (the CLI) appended to the account's stream, up to `version`: read what this
   * actor has not seen and act on it as on its own commits (close reprovisioned devices...).
   */
  | { readonly _tag: "CatchUp"; readonly version: number }
  | Notify.DeviceNotify
  /** A pin write or widget property through the HTTP API, replied to once committed (HttpWrites.ts). */
  | HttpWrites.HttpMessage

export interface UserActor {
  readonly stream: string
  readonly ref: Actor.ActorRef<UserMessage>
  /** Resolves when every device event handed to the log so far is committed. */
  readonly flushed: Effect.Effect<void>
}

const SYNC_ID = 1111
/** protocol.md §6.2: bridges per hardware connection. */
const MAX_BRIDGES = 100
const accountLog = EventCodec.typed(EventCodec.make(AccountEvent))

const encoder = new TextEncoder()

const deviceKey = (dashId: number, deviceId: number) => `${dashId}-${deviceId}`

const flag = (dash: Dashboard, name: string) => dash.settings[name] === true

const principalOf = (peer: AppPeer): Principal =>
  peer.shared === undefined ? { kind: "owner" } : { kind: "shared", dashId: peer.shared.dashId, token: peer.shared.token }

/** Who changed something when no connection did (the CLI, a follower of the log). */
const nobody = { session: "server", remote: "local" }

/** Forgets the values of a deleted device (`dash-device-`) or dashboard (`dash-`), as the pin state projection does. */
const dropPins = (pins: PinValues, prefix: string) => {
  for (const key of [...pins.keys()]) if (key.startsWith(prefix)) pins.delete(key)
}

/**
 * The single writer of an account's streams (DESIGN.md). Sessions tell it what their sockets
 * said; it decides, appends, evolves, and tells the sessions what changed. The sessions of the
 * account are kept outside the state, so a restarted actor (rebuilt from the log) still knows
 * who is connected.
 */
export interface UserActorOptions {
  /** While a device stream stays busy, its appends start at least this far apart (see DeviceLog). */
  readonly deviceLogIntervalMillis?: number
  /** Dashboards per account, devices per dashboard (default: `defaultLimits`). */
  readonly limits?: Limits | undefined
  /** The per-day e-mail limit and `{VENDOR_EMAIL}` (see Notify). */
  readonly notifications?: Notify.NotifyOptions | undefined
  /** The limits on events devices log through the HTTP API (default: `defaultEventLimits`). */
  readonly events?: EventLimits | undefined
}

export const make = (stream: string, options: UserActorOptions = {}) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<EventStore | SqlClient>()
    const runCallback = Effect.runCallbackWith(context)
    const deviceLog = new DeviceLog((effect, done) => {
      runCallback(effect, { onExit: done })
    }, { intervalMillis: options.deviceLogIntervalMillis ?? 0 })
    const notifier = yield* Notify.make(stream, options.notifications)
    const devices = new Map<string, Set<DevicePeer>>()
    const apps = new Set<AppPeer>()

    const load = Effect.gen(function*() {
      const { state, version } = yield* AccountLog.load(stream)
      const pins = yield* loadPinState(stream)
      return { account: state, version, pins } satisfies UserState
    })

    /** To the account's apps that see `dashId`: every owner app, shared apps of that dashboard only. */
    const toApps = (notice: AppNotice, dashId: number | undefined, except?: AppPeer) => {
      for (const app of apps) {
        if (app === except || (app.shared !== undefined && app.shared.dashId !== dashId)) continue
        app.send(notice)
      }
    }

    /**
     * Records a security event: by an app session, or else by the writer of the commit that
     * caused it (the owner API's `api:<email>` with its session and address), else the server
     * itself (a catch-up on another process's commits).
     */
    const record = (event: AccessEvent, by: AppPeer | undefined, writer?: Metadata) =>
      deviceLog.push(accessStream(stream), {
        _tag: "Event",
        event,
        at: Date.now(),
        ...(by !== undefined
          ? { by, actor: by.shared ? "app:shared" : "app" }
          : writer !== undefined
          ? { by: { session: writer.session ?? nobody.session, remote: writer.remoteAddress ?? nobody.remote }, actor: writer.actor ?? "app" }
          : { by: nobody, actor: "app" })
      })

    /** Answers NOT_ALLOWED to a shared app and records the refusal. */
    const refuse = (peer: AppPeer, id: number, command: string) => {
      peer.send({ _tag: "Status", id, status: "notAllowed" })
      record(new CommandRefused({ dashId: peer.shared?.dashId ?? -1, command, remote: peer.remote }), peer)
    }

    /** Closes the shared sessions of a dashboard (its token revoked, or the dashboard gone). */
    const closeShared = (dashId: number, reason: string, by: AppPeer | undefined, id: number | undefined, writer: Metadata | undefined) => {
      let closed = 0
      for (const app of [...apps]) {
        if (app.shared?.dashId !== dashId) continue
        apps.delete(app)
        if (id !== undefined) app.send({ _tag: "Status", id, status: "notAllowed" })
        app.send({ _tag: "Close", reason })
        closed++
      }
      if (closed > 0) record(new SharedSessionsClosed({ dashId, sessions: closed, reason }), by, writer)
    }
    const socketsOf = (dashId: number, deviceId: number) => devices.get(deviceKey(dashId, deviceId))
    /** What the `logEvent` limits remember per device stream (its count of today's events is read from the log at first use). */
    const eventsToday = new Map<string, DeviceEventsToday>()
    const http: HttpWrites.HttpWriteContext = {
      accountStream: stream,
      deviceLog,
      socketsOf,
      toApps,
      eventLimits: options.events ?? defaultEventLimits,
      eventsToday
    }

    /** A device's pin write (its own, or a bridge's in its name): stored, logged, shown to the apps of an active project. */
    const deviceWrote = (state: UserState, dashId: number, deviceId: number, write: PinWrite, id: number, body: Uint8Array, by: DevicePeer) => {
      const dash = findDashboard(state.account, dashId)
      if (dash === undefined || !findDevice(dash, deviceId)) return
      const [t, pin, ...values] = write
      state.pins.set(pinKey(dashId, deviceId, t, pin), values)
      deviceLog.push(deviceStream(stream, dashId, deviceId), { _tag: "Write", dashId, deviceId, source: "hardware", write, by, at: Date.now() })
      if (dash.isActive) toApps({ _tag: "DeviceWrite", id, dashId, deviceId, body }, dashId)
    }

    /** Bridges each device connection set up (pin → target), for as long as the connection lives. */
    const bridges = new WeakMap<DevicePeer, Map<string, { readonly dashId: number; readonly deviceId: number; readonly token: string }>>()

    /** protocol.md §2.3/§3.7: devices of active projects with `isAppConnectedOn` hear of apps. */
    const tellPresence = (state: UserState, connected: boolean) => {
      for (const dash of state.account?.dashboards ?? []) {
        if (!dash.isActive || !flag(dash, "isAppConnectedOn")) continue
        for (const device of dash.devices) {
          for (const socket of socketsOf(dash.id, device.id) ?? []) socket.send({ _tag: "AppPresence", connected })
        }
      }
    }

    const syncTo = (peer: AppPeer, state: UserState, dashId: number, deviceId: number | undefined) => {
      for (const [key, values] of state.pins) {
        const pin = parsePinKey(key)
        if (pin !== undefined) {
          if (pin.dashId !== dashId || (deviceId !== undefined && pin.deviceId !== deviceId)) continue
          peer.send({
            _tag: "Sync",
            id: SYNC_ID,
            dashId,
            deviceId: pin.deviceId,
            fields: [`${pin.pinType}w`, String(pin.pin), ...values]
          })
          continue
        }
        const prop = parsePropertyKey(key)
        if (prop === undefined || prop.dashId !== dashId || (deviceId !== undefined && prop.deviceId !== deviceId)) continue
        peer.send({ _tag: "Property", id: SYNC_ID, dashId, deviceId: prop.deviceId, pin: prop.pin, property: prop.property, value: values.join("\0") })
      }
    }

    /** What another writer appended to the account's stream since this actor's version, applied. */
    const catchUp = (state: UserState) =>
      Effect.gen(function*() {
        let next = state
        const events: Array<AccountEvent> = []
        yield* accountLog.readStream(stream, state.version + 1).pipe(Stream.runForEach(({ event, recorded }) =>
          Effect.sync(() => {
            events.push(event)
            next = { ...next, account: evolve(next.account, event), version: recorded.version }
          })
        ))
        return { state: next, events }
      })

    /** Runs commands through the decider and appends their events; a concurrent writer (the CLI) makes it reload and retry. */
    const execute = (state: UserState, commands: (s: AccountState) => ReadonlyArray<AccountCommand>, metadata: Metadata) =>
      Effect.gen(function*() {
        let current = state
        for (let attempt = 0;; attempt++) {
          const decided = decideAll(current.account, commands(current.account), options.limits)
          if (decided instanceof AccountRejected) return { state: current, result: decided }
          const { state: next, events } = decided
          if (events.length === 0) return { state: current, result: { account: next!, events } }
          // A deletion must come after the pin writes already handed to the device log, or they
          // would land after it and outlive it in the pin state (and the history).
          if (events.some((e) => e._tag === "DeviceDeleted" || e._tag === "DashboardDeleted" || e._tag === "GraphDataDeleted")) yield* deviceLog.idle
          const appended = yield* accountLog.append(stream, current.version === 0 ? "noStream" : current.version, events, metadata).pipe(
            Effect.catchIf((e): e is WrongExpectedVersion => e instanceof WrongExpectedVersion && attempt < 3, () => Effect.succeed(undefined))
          )
          if (appended === undefined) {
            const caught = yield* catchUp(current)
            afterCommit(current, caught.state, caught.events, undefined, 0)
            current = caught.state
            continue
          }
          return {
            state: { ...current, account: next, version: appended.version },
            result: { account: next!, events }
          }
        }
      })

    /** What follows a committed command: sessions told, sockets of removed devices closed. */
    /** What follows a commit; `writer` is the commit's metadata when no app session made it (the owner API, registration, a reset). */
    const afterCommit = (
      before: UserState,
      after: UserState,
      events: ReadonlyArray<AccountEvent>,
      peer: AppPeer | undefined,
      id: number,
      writer?: Metadata
    ) => {
      for (const event of events) {
        switch (event._tag) {
          case "DashboardActivated": {
            const dash = findDashboard(after.account, event.dashId)
            if (dash === undefined) break
            for (const device of dash.devices) {
              const sockets = socketsOf(dash.id, device.id)
              const modes = pinModes(dash.widgets, device.id)
              if (sockets && modes.length > 0) for (const s of sockets) s.send({ _tag: "PinModes", modes })
            }
            toApps({ _tag: "Activated", id, dashId: dash.id }, dash.id, peer)
            break
          }
          case "DashboardDeactivated":
            toApps({ _tag: "Deactivated", id, dashId: event.dashId }, event.dashId, peer)
            break
          case "SharingSwitched":
            toApps({ _tag: "Sharing", id, dashId: event.dashId, on: event.on }, event.dashId, peer)
            break
          case "PasswordChanged":
            // Whoever was logged in with the old password is logged out (shared apps are not: they never had it).
            for (const app of [...apps]) {
              if (app.shared !== undefined) continue
              apps.delete(app)
              app.send({ _tag: "Close", reason: "password changed" })
            }
            break
          case "ShareRevoked":
            // protocol.md §4.2: every shared session of the dashboard gets NOT_ALLOWED (the
            // refresh's id) and is closed; the old token opens nothing from this commit on.
            closeShared(event.dashId, "share token refreshed", peer, id, writer)
            break
          case "DeviceTokenRefreshed":
            for (const s of socketsOf(event.dashId, event.deviceId) ?? []) s.send({ _tag: "Close", reason: "token refreshed" })
            break
          case "DeviceDeleted":
            dropPins(after.pins, `${event.dashId}-${event.deviceId}-`)
            for (const s of socketsOf(event.dashId, event.deviceId) ?? []) s.send({ _tag: "Close", reason: "device deleted" })
            break
          case "DashboardDeleted":
            dropPins(after.pins, `${event.dashId}-`)
            closeShared(event.dashId, "dashboard deleted", peer, undefined, writer)
            for (const device of findDashboard(before.account, event.dashId)?.devices ?? []) {
              for (const s of socketsOf(event.dashId, device.id) ?? []) s.send({ _tag: "Close", reason: "dashboard deleted" })
            }
            break
          default:
            break
        }
      }
    }

    /** What needs no effect: the hot paths (pin writes, syncs) run here, many per turn of the actor. */
    const handleSync = (state: UserState, message: UserMessage): UserState | undefined => {
      switch (message._tag) {
        case "DeviceWrite":
          deviceWrote(state, message.peer.dashId, message.peer.deviceId, message.write, message.id, message.body, message.peer)
          return state
        case "BridgeInit": {
          // protocol.md §2.4: a token of this account's devices; at most MAX_BRIDGES pins per connection.
          const { peer } = message
          const target = deviceOfToken(state.account, message.token)
          let pins = bridges.get(peer)
          if (target === undefined || (!pins?.has(message.pin) && (pins?.size ?? 0) >= MAX_BRIDGES)) {
            peer.send({ _tag: "Status", id: message.id, status: "notAllowed" })
            return state
          }
          if (pins === undefined) bridges.set(peer, (pins = new Map()))
          pins.set(message.pin, { ...target, token: message.token })
          peer.send({ _tag: "Status", id: message.id, status: "ok" })
          return state
        }
        case "BridgeWrite": {
          const { peer } = message
          const bridge = bridges.get(peer)?.get(message.pin)
          const now = bridge && deviceOfToken(state.account, bridge.token)
          // Not initialised, or the target's token was refreshed or its device deleted since.
          if (bridge === undefined || now?.dashId !== bridge.dashId || now.deviceId !== bridge.deviceId) {
            peer.send({ _tag: "Status", id: message.id, status: "notAllowed" })
            return state
          }
          let online = 0
          for (const socket of socketsOf(bridge.dashId, bridge.deviceId) ?? []) {
            if (socket === peer) continue
            online++
            socket.send({ _tag: "Bridge", id: message.id, body: message.body })
          }
          // Also as if the target had written it: stored, logged, shown to the apps.
          if (message.write !== undefined) deviceWrote(state, bridge.dashId, bridge.deviceId, message.write, message.id, message.body, peer)
          if (online === 0) peer.send({ _tag: "Status", id: message.id, status: "deviceNotInNetwork" })
          return state
        }
        case "DeviceLogout": {
          const { peer } = message
          const key = deviceKey(peer.dashId, peer.deviceId)
          const sockets = devices.get(key)
          if (!sockets?.delete(peer)) return state
          if (sockets.size === 0) devices.delete(key)
          deviceLog.push(deviceStream(stream, peer.dashId, peer.deviceId), {
            _tag: "Event",
            event: new DeviceDisconnected({ dashId: peer.dashId, deviceId: peer.deviceId, remote: peer.remote }),
            by: peer,
            at: Date.now()
          })
          const dash = findDashboard(state.account, peer.dashId)
          if (dash?.isActive && !flag(dash, "isNotificationsOff")) {
            toApps({ _tag: "Offline", dashId: peer.dashId, deviceId: peer.deviceId }, peer.dashId)
          }
          return state
        }
        case "DeviceSync": {
          const { peer } = message
          const send = (pinType: PinType, pin: number) => {
            const values = state.pins.get(pinKey(peer.dashId, peer.deviceId, pinType, pin))
            if (values === undefined) return
            peer.send({ _tag: "Write", id: message.id, body: encoder.encode([`${pinType}w`, String(pin), ...values].join("\0")) })
          }
          if (message.pins !== undefined) {
            for (const { pinType, pin } of message.pins) send(pinType, pin)
          } else {
            const prefix = `${peer.dashId}-${peer.deviceId}-`
            for (const key of state.pins.keys()) {
              const parsed = key.startsWith(prefix) ? parsePinKey(key) : undefined
              if (parsed) send(parsed.pinType, parsed.pin)
            }
          }
          return state
        }
        case "DeviceProperty": {
          const { peer } = message
          const dash = findDashboard(state.account, peer.dashId)
          if (dash === undefined || !findDevice(dash, peer.deviceId)) return state
          // A list property's items come NUL-separated; the log keeps them apart (PropertySet.more).
          const [value = "", ...more] = message.value.split("\0")
          state.pins.set(propertyKey(peer.dashId, peer.deviceId, message.pin, message.property), [value, ...more])
          deviceLog.push(deviceStream(stream, peer.dashId, peer.deviceId), {
            _tag: "Event",
            event: new PropertySet({
              dashId: peer.dashId,
              deviceId: peer.deviceId,
              pin: message.pin,
              property: message.property,
              value,
              ...(more.length > 0 ? { more } : {})
            }),
            by: peer,
            at: Date.now()
          })
          if (dash.isActive) {
            toApps({
              _tag: "Property",
              id: message.id,
              dashId: peer.dashId,
              deviceId: peer.deviceId,
              pin: message.pin,
              property: message.property,
              value: message.value
            }, peer.dashId)
          }
          return state
        }
        case "DeviceNotify":
          notifier.handle(state.account, message)
          return state
        case "RecordAccess": {
          const { reply } = message
          deviceLog.push(accessStream(stream), {
            _tag: "Event",
            event: message.event,
            by: message.by,
            at: Date.now(),
            actor: message.actor,
            committed: () => Deferred.doneUnsafe(reply, Exit.void)
          })
          return state
        }
        case "HttpWrite":
        case "HttpProperty":
        case "HttpLogEvent":
          // The day's count of the device's events comes from the log first (in `handle`).
          if (HttpWrites.needsEventCount(message, http)) return undefined
          HttpWrites.handle(state.account, state.pins, message, http)
          return state
        case "DeviceRtc": {
          // protocol.md §2.3: answered only when the project has an RTC widget.
          const rtc = findDashboard(state.account, message.peer.dashId)?.widgets.find((w) => w["type"] === "RTC")
          if (rtc !== undefined) {
            const tz = rtc["tzName"]
            message.peer.send({ _tag: "Rtc", id: message.id, timeZone: typeof tz === "string" ? tz : undefined })
          }
          return state
        }
        case "AppDetach":
          if (apps.delete(message.peer)) tellPresence(state, false)
          return state
        case "Refused":
          record(new CommandRefused({ dashId: message.peer.shared?.dashId ?? -1, command: message.command, remote: message.peer.remote }), message.peer)
          return state
        case "AppWrite": {
          const { peer } = message
          const principal = principalOf(peer)
          // A shared app's writes reach only the dashboard it was shared (fixed on purpose, issue 4).
          if (peer.shared !== undefined && !mayView(state.account, principal, message.dashId)) {
            refuse(peer, message.id, `HARDWARE to dashboard ${message.dashId}`)
            return state
          }
          const dash = findDashboard(state.account, message.dashId)
          if (dash === undefined) {
            peer.send({ _tag: "Status", id: message.id, status: "illegalCommand" })
            return state
          }
          if (!dash.isActive) return state
          const targets = resolveTargets(dash, message.targetId)
          if (targets.length === 0) return state
          // Sharing switched off (or the token replaced meanwhile): the shared app may look, not write.
          if (peer.shared !== undefined && !targets.every((id) => mayControl(state.account, principal, dash.id, id))) {
            refuse(peer, message.id, "HARDWARE while sharing is off")
            return state
          }
          if (message.write !== undefined) {
            const [t, pin, ...values] = message.write
            for (const deviceId of targets) {
              state.pins.set(pinKey(dash.id, deviceId, t, pin), values)
              deviceLog.push(deviceStream(stream, dash.id, deviceId), {
                _tag: "Write",
                dashId: dash.id,
                deviceId,
                source: "app",
                write: message.write,
                by: peer,
                at: Date.now()
              })
            }
          }
          toApps({ _tag: "AppWrite", id: message.id, body: message.fullBody }, dash.id, peer)
          let online = 0
          for (const deviceId of targets) {
            for (const socket of socketsOf(dash.id, deviceId) ?? []) {
              online++
              socket.send({ _tag: "Write", id: message.id, body: message.body })
            }
          }
          if (online === 0 && !flag(dash, "isNotificationsOff")) {
            peer.send({ _tag: "Status", id: message.id, status: "deviceNotInNetwork" })
          }
          return state
        }
        case "AppSync": {
          if (message.peer.shared !== undefined && !mayView(state.account, principalOf(message.peer), message.dashId)) {
            refuse(message.peer, message.id, `APP_SYNC of dashboard ${message.dashId}`)
            return state
          }
          const dash = findDashboard(state.account, message.dashId)
          if (dash === undefined) {
            message.peer.send({ _tag: "Status", id: message.id, status: "illegalCommand" })
            return state
          }
          message.peer.send({ _tag: "Status", id: message.id, status: "ok" })
          syncTo(message.peer, state, dash.id, message.deviceId)
          return state
        }
        default:
          return undefined
      }
    }

    const handle = (state: UserState, message: UserMessage): Effect.Effect<UserState, unknown, EventStore | SqlClient> => {
      const fast = handleSync(state, message)
      if (fast !== undefined) return Effect.succeed(fast)
      switch (message._tag) {
        case "DeviceLogin": {
          const { peer } = message
          const known = findDevice(findDashboard(state.account, peer.dashId), peer.deviceId)
          if (known === undefined && !message.reloaded) {
            // The token was found, so another writer (the CLI) may have added the device since
            // this actor read its stream: catch up, then look again.
            return Effect.gen(function*() {
              const { state: account, version } = yield* AccountLog.load(stream)
              const next = { ...state, account, version }
              return yield* handle(next, { ...message, reloaded: true })
            })
          }
          const dash = findDashboard(state.account, peer.dashId)
          if (dash === undefined || known === undefined) {
            return Effect.as(Deferred.succeed(message.reply, false), state)
          }
          const key = deviceKey(peer.dashId, peer.deviceId)
          let sockets = devices.get(key)
          if (sockets === undefined) devices.set(key, (sockets = new Set()))
          sockets.add(peer)
          deviceLog.push(deviceStream(stream, peer.dashId, peer.deviceId), {
            _tag: "Event",
            event: new DeviceConnected({ dashId: peer.dashId, deviceId: peer.deviceId, remote: peer.remote }),
            by: peer,
            at: Date.now()
          })
          return Deferred.succeed(message.reply, true).pipe(Effect.andThen(Effect.sync(() => {
            peer.send({ _tag: "Status", id: message.id, status: "ok" })
            const modes = dash.isActive ? pinModes(dash.widgets, peer.deviceId) : []
            if (modes.length > 0) peer.send({ _tag: "PinModes", modes })
            toApps({ _tag: "Connected", id: message.id, dashId: peer.dashId, deviceId: peer.deviceId }, peer.dashId)
          })), Effect.as(state))
        }
        case "AppAttach": {
          if (state.account === undefined) return Effect.as(Deferred.succeed(message.reply, false), state)
          const { shared } = message.peer
          if (shared !== undefined) {
            // The projection said yes; the actor has the last word (a refresh may have come between).
            if (sharedDashboard(state.account, shared.token)?.id !== shared.dashId) {
              record(new SharedLoginRefused({ dashId: shared.dashId, remote: message.peer.remote }), message.peer)
              return Effect.as(Deferred.succeed(message.reply, false), state)
            }
            record(new SharedLogin({ dashId: shared.dashId, remote: message.peer.remote }), message.peer)
          } else {
            record(new OwnerLoggedIn({ via: "app", remote: message.peer.remote }), message.peer)
          }
          apps.add(message.peer)
          tellPresence(state, true)
          return Effect.as(Deferred.succeed(message.reply, true), state)
        }
        case "Execute": {
          const { peer } = message
          return Effect.gen(function*() {
            if (peer !== undefined && !mayChangeLayout(principalOf(peer)) && peer.shared !== undefined) {
              // A shared app may only point a device selector of its dashboard (`vu`); the session
              // already refused the rest, this is the rule's last line.
              const scope = peer.shared.dashId
              const commands = message.commands(state.account)
              if (!commands.every((c) => c._tag === "SelectDevice" && c.dashId === scope)) {
                record(new CommandRefused({ dashId: scope, command: commands.map((c) => c._tag).join(","), remote: peer.remote }), peer)
                yield* Deferred.fail(message.reply, new AccountRejected({ reason: "NotAllowed", detail: "a shared app may not change the layout" }))
                return state
              }
            }
            const { state: next, result } = yield* execute(state, message.commands, message.metadata)
            if (result instanceof AccountRejected) {
              yield* Deferred.fail(message.reply, result)
              return next
            }
            const activated = result.events.find((e) => e._tag === "DashboardActivated")
            if (peer !== undefined) {
              if (activated !== undefined) {
                // protocol.md §3.6: offline devices reported with id 1; no device online at all → 7.
                const dash = findDashboard(next.account, activated.dashId)!
                const online = dash.devices.filter((d) => socketsOf(dash.id, d.id) !== undefined)
                if (online.length > 0) {
                  for (const d of dash.devices) {
                    if (socketsOf(dash.id, d.id) === undefined) peer.send({ _tag: "Status", id: 1, status: "deviceNotInNetwork" })
                  }
                }
                peer.send({
                  _tag: "Status",
                  id: message.id,
                  status: online.length > 0 || flag(dash, "isNotificationsOff") ? "ok" : "deviceNotInNetwork"
                })
              } else {
                const answer = message.answer(result)
                if (answer !== null) peer.send(answer ?? { _tag: "Status", id: message.id, status: "ok" })
              }
            }
            afterCommit(state, next, result.events, peer, message.id, message.metadata)
            if (activated !== undefined) {
              for (const app of apps) {
                if (app.shared === undefined || app.shared.dashId === activated.dashId) syncTo(app, next, activated.dashId, undefined)
              }
            }
            yield* Deferred.succeed(message.reply, result)
            return next
          })
        }
        case "HttpLogEvent": {
          const device = deviceStream(stream, message.dashId, message.deviceId)
          const now = Date.now()
          return eventsLoggedSince(device, new Date(dayOf(now) * DAY_MS)).pipe(
            Effect.catch((error) => Effect.as(Effect.logWarning(`events: cannot count today's events of ${device}`, error), 0)),
            Effect.map((count) => {
              if (!eventsToday.has(device)) eventsToday.set(device, { day: dayOf(now), count, lastByCode: new Map() })
              HttpWrites.handle(state.account, state.pins, message, http)
              return state
            })
          )
        }
        case "CatchUp":
          if (message.version <= state.version) return Effect.succeed(state)
          return Effect.map(catchUp(state), (caught) => {
            afterCommit(state, caught.state, caught.events, undefined, 0)
            return caught.state
          })
        case "Read": {
          const online = new Set(devices.keys())
          return Effect.as(
            Deferred.succeed(message.reply, { ...state, pins: new Map(state.pins), online, apps: apps.size }),
            state
          )
        }
        default:
          // Handled by handleSync above.
          return Effect.succeed(state)
      }
    }

    const ref = yield* Actor.make<UserState, UserMessage, unknown, EventStore | SqlClient>({
      name: stream,
      initial: load,
      handle,
      handleSync,
      mailboxSize: 65_536
    })
    yield* Effect.addFinalizer(() => deviceLog.idle)
    return { stream, ref, flushed: deviceLog.idle } satisfies UserActor
  })

/**
 * The devices an app's write is for (protocol.md §2.5): a device id, a tag (100 000 up) or a
 * device selector widget (200 000 up, its selected device).
 */
export const resolveTargets = (dash: Dashboard, targetId: number): ReadonlyArray<number> => {
  if (targetId < 100_000) return findDevice(dash, targetId) ? [targetId] : []
  if (targetId < 200_000) return (dash.tags.find((t) => t.id === targetId)?.deviceIds ?? []).filter((id) => findDevice(dash, id))
  const selector = dash.widgets.find((w) => widgetId(w) === targetId)
  if (selector === undefined) return []
  const id = Number(selector["value"])
  return Number.isInteger(id) && findDevice(dash, id) ? [id] : []
}


