import { Clock, Context, Effect, Layer, Semaphore, Stream } from "effect"
import {
  decideFailure,
  evolve,
  initial,
  isBlocked,
  ThrottleEvent,
  type ThrottleKind,
  type ThrottleSettings,
  type ThrottleState
} from "../domain/Throttle.ts"
import type { Metadata } from "../eventstore/Event.ts"
import * as EventCodec from "../eventstore/EventCodec.ts"
import type { EventStore } from "../eventstore/EventStore.ts"
import * as ThrottleMetrics from "./ThrottleMetrics.ts"

const log = EventCodec.typed(EventCodec.make(ThrottleEvent))

/** Addresses kept in memory before those with nothing in force are dropped (default). */
export const CACHE_LIMIT = 10_000

/** `throttle-<kind>-<address>`, with what a stream id may not hold replaced. */
export const throttleStream = (kind: ThrottleKind, address: string) =>
  `throttle-${kind}-${address.replace(/[^A-Za-z0-9_.:@-]/g, "_")}`.slice(0, 200)

/** The address part of `host:port` (IPv6 hosts keep their colons). */
export const addressOf = (remote: string) => {
  const colon = remote.lastIndexOf(":")
  return colon <= 0 ? remote : remote.slice(0, colon)
}

/**
 * Who may try to log in (DESIGN.md: security events are events): every failure and every block
 * is appended to the address's stream, and the state is rebuilt from it after a restart, so a
 * block outlives the process that imposed it.
 */
export class Throttle extends Context.Service<Throttle, {
  readonly blocked: (kind: ThrottleKind, address: string) => Effect.Effect<boolean>
  /** Records a failure; true when the address is blocked from now on. */
  readonly fail: (kind: ThrottleKind, address: string, identity: string, metadata: Metadata) => Effect.Effect<boolean>
  /** How many addresses are held in memory now. */
  readonly tracked: Effect.Effect<number>
}>()("pinledger/actors/Throttle") {}

export const layer = (settings: ThrottleSettings, cacheLimit = CACHE_LIMIT): Layer.Layer<Throttle, never, EventStore> =>
  Layer.effect(
    Throttle,
    Effect.gen(function*() {
      const context = yield* Effect.context<EventStore>()
      const states = new Map<string, ThrottleState>()
      // Failures are rare: one at a time keeps decide-append-evolve simple and exact.
      const lock = yield* Semaphore.make(1)

      /**
       * Addresses with nothing in force (no failure in the window, no block) are dropped once the
       * cache grows past `cacheLimit`: a scan of many addresses must not grow memory for good.
       * A dropped address is read again from its stream when it next shows up.
       */
      const prune = (now: number) => {
        if (states.size <= cacheLimit) return
        for (const [key, state] of states) {
          if (!isBlocked(state, now) && state.failures.every((t) => now - t >= settings.windowMs)) states.delete(key)
        }
      }

      const stateOf = (kind: ThrottleKind, address: string) =>
        Effect.suspend(() => {
          const key = `${kind}|${address}`
          const known = states.get(key)
          if (known !== undefined) return Effect.succeed(known)
          return log.readStream(throttleStream(kind, address)).pipe(
            Stream.runFold(() => initial, (state, { event }) => evolve(state, event, settings)),
            Effect.tap((state) =>
              Effect.map(Clock.currentTimeMillis, (now) => {
                prune(now)
                states.set(key, state)
              })
            ),
            Effect.provideContext(context)
          )
        })

      const blocked = (kind: ThrottleKind, address: string) =>
        Effect.gen(function*() {
          const state = yield* stateOf(kind, address)
          const refused = isBlocked(state, yield* Clock.currentTimeMillis)
          if (refused) yield* ThrottleMetrics.recordRefused(kind)
          return refused
        }).pipe(Effect.catch((error) => Effect.as(Effect.logWarning(`throttle: cannot read ${address}`, error), false)))

      const fail = (kind: ThrottleKind, address: string, identity: string, metadata: Metadata) =>
        lock.withPermit(Effect.gen(function*() {
          const state = yield* stateOf(kind, address)
          const at = yield* Clock.currentTimeMillis
          // What was tried is free text (a token from a path may hold a NUL): made fit for the log's JSON.
          const tried = identity.slice(0, 64).toWellFormed().replaceAll("\0", "\uFFFD")
          const events = decideFailure(state, { kind, address, identity: tried, at }, settings)
          yield* log.append(throttleStream(kind, address), "any", events, metadata).pipe(Effect.provideContext(context))
          let next = state
          for (const event of events) next = evolve(next, event, settings)
          states.set(`${kind}|${address}`, next)
          prune(at)
          const now = isBlocked(next, at)
          yield* ThrottleMetrics.recordFailure(kind, now && !isBlocked(state, at))
          if (now && !isBlocked(state, at)) yield* Effect.logWarning(`throttle: ${address} blocked for ${kind === "login" ? "app and share" : "hardware"} logins until ${new Date(next.blockedUntil).toISOString()}`)
          return now
        })).pipe(Effect.catch((error) => Effect.as(Effect.logWarning(`throttle: cannot record a failure of ${address}`, error), false)))

      return { blocked, fail, tracked: Effect.sync(() => states.size) }
    })
  )
