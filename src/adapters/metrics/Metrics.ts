import { Effect, Layer, Metric } from "effect"
import { monitorEventLoopDelay } from "node:perf_hooks"
import * as ThrottleMetrics from "../../actors/ThrottleMetrics.ts"
import { Database } from "../../eventstore/Database.ts"
import { EventStore } from "../../eventstore/EventStore.ts"
import * as StoreMetrics from "../../eventstore/StoreMetrics.ts"
import * as SubscriberLag from "../../eventstore/SubscriberLag.ts"
import { type ConnectionCounters, counters } from "./Counters.ts"
import * as Prometheus from "./Prometheus.ts"

/**
 * Everything `/metrics` reports, as effect metrics in the default registry. Three sources:
 * - pushed per batch or per login by the event store and the throttle (StoreMetrics.ts,
 *   ThrottleMetrics.ts);
 * - read when scraped from plain counters (the sessions' Counters.ts) and from the process,
 *   through series registered by `layer`;
 * - asked of the database when scraped (`exposition`): the log's head and each subscriber's lag.
 */

const connectionsOpen = Metric.gauge("pinledger_connections", {
  description: "Blynk connections open now, by kind (an app connection counts as shared_app once logged in with SHARE_LOGIN)"
})
const webSocketsOpen = Metric.gauge("pinledger_websocket_connections", {
  description: "Of the open Blynk connections, those over WebSocket (/websockets for devices, /dashws for apps)"
})
const received = Metric.counter("pinledger_messages_received_total", {
  description: "Blynk frames received, by connection kind (counted before the flood quota)",
  incremental: true
})
const sent = Metric.counter("pinledger_messages_sent_total", {
  description: "Blynk frames written to connections, by connection kind",
  incremental: true
})
const notSent = Metric.counter("pinledger_messages_not_sent_total", {
  description: "Blynk frames not written because the connection was closed or too slow (over 4 MiB unsent), by connection kind",
  incremental: true
})
const overQuota = Metric.counter("pinledger_messages_over_quota_total", {
  description: "Blynk frames dropped by the flood quota (PINLEDGER_MESSAGE_QUOTA), by connection kind",
  incremental: true
})

const residentMemory = Metric.gauge("pinledger_process_resident_memory_bytes", { description: "Resident memory of the server process, in bytes" })
const heapUsed = Metric.gauge("pinledger_process_heap_used_bytes", { description: "V8 heap in use, in bytes" })
const cpuSeconds = Metric.counter("pinledger_process_cpu_seconds_total", { description: "CPU time of the server process (user and system), in seconds", incremental: true })
const startTime = Metric.gauge("pinledger_process_start_time_seconds", { description: "When the server process started, in seconds since the Unix epoch" })
const eventLoopDelay = Metric.summary("pinledger_event_loop_delay_seconds", {
  description: "Event-loop delay: how late a timer due every 20 ms runs, in seconds; quantiles over the time since the previous scrape, sum and count since the start",
  maxAge: "1 minute",
  maxSize: 1,
  quantiles: [0.5, 0.9, 0.99]
})

const headPosition = Metric.gauge("pinledger_eventstore_head_position", { description: "Position of the last event in the log (its rate is events appended per second)" })
const available = Metric.gauge("pinledger_eventstore_up", { description: "1 if the log answered the scrape's query, else 0" })
const subscriberLag = Metric.gauge("pinledger_subscriber_lag_events", {
  description: `Events in the log after a subscriber's position, i.e. still to be read by it (exact up to ${SubscriberLag.EXACT_LAG_LIMIT}, estimated from positions beyond)`
})

const kinds: ReadonlyArray<readonly [string, ConnectionCounters]> = [
  ["hardware", counters.hardware],
  ["app", counters.app],
  ["shared_app", counters.sharedApp]
]

const noUpdate = { update: () => {}, modify: () => {} }
const gaugeOf = (read: () => number) => ({ get: () => ({ value: read() }), ...noUpdate })
const counterOf = (read: () => number) => ({ get: () => ({ count: read(), incremental: true }), ...noUpdate })

const EVENT_LOOP_RESOLUTION_MS = 20

/** The event-loop delay since the last read, as a summary whose sum and count keep growing. */
const eventLoopHooks = () => {
  const monitor = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS })
  monitor.enable()
  let count = 0
  let sum = 0
  const hooks = {
    get: () => {
      const n = monitor.count
      // The monitor records the whole time between two of its timer's runs: the delay is what exceeds the interval.
      const seconds = (ns: number) => Math.max(0, ns / 1e6 - EVENT_LOOP_RESOLUTION_MS) / 1000
      const quantiles = [0.5, 0.9, 0.99].map((q) => [q, n > 0 ? seconds(monitor.percentile(q * 100)) : undefined] as const)
      count += n
      if (n > 0) sum += seconds(monitor.mean) * n
      const state = { quantiles, count, sum, min: n > 0 ? seconds(monitor.min) : 0, max: n > 0 ? seconds(monitor.max) : 0 }
      monitor.reset()
      return state
    },
    ...noUpdate
  }
  return { hooks, stop: () => monitor.disable() }
}

/**
 * Registers the series read when scraped (connections, frames, process) for the life of the
 * layer, and makes the pushed ones exist at zero so that an idle server reports every family.
 */
export const layer: Layer.Layer<never> = Layer.effectDiscard(Effect.gen(function*() {
  const context = yield* Effect.context<never>()
  yield* Effect.forEach([...StoreMetrics.all, ...ThrottleMetrics.all, available], Metric.value, { discard: true })
  yield* Effect.acquireRelease(
    Effect.sync(() => {
      const started = Date.now() / 1000 - process.uptime()
      const eventLoop = eventLoopHooks()
      const registrations = [
        ...kinds.flatMap(([kind, c]) => {
          const by = <S>(metric: Metric.Metric<number, S>) => Metric.withAttributes(metric, { kind })
          return [
            Metric.registerUnsafe(by(connectionsOpen), context, gaugeOf(() => c.open)),
            Metric.registerUnsafe(by(received), context, counterOf(() => c.received)),
            Metric.registerUnsafe(by(sent), context, counterOf(() => c.sent)),
            Metric.registerUnsafe(by(notSent), context, counterOf(() => c.notSent)),
            Metric.registerUnsafe(by(overQuota), context, counterOf(() => c.overQuota))
          ]
        }),
        Metric.registerUnsafe(Metric.withAttributes(webSocketsOpen, { kind: "hardware" }), context, gaugeOf(() => counters.webSockets.hardware)),
        Metric.registerUnsafe(Metric.withAttributes(webSocketsOpen, { kind: "app" }), context, gaugeOf(() => counters.webSockets.app)),
        Metric.registerUnsafe(residentMemory, context, gaugeOf(() => process.memoryUsage.rss())),
        Metric.registerUnsafe(heapUsed, context, gaugeOf(() => process.memoryUsage().heapUsed)),
        Metric.registerUnsafe(cpuSeconds, context, counterOf(() => {
          const { user, system } = process.cpuUsage()
          return (user + system) / 1e6
        })),
        Metric.registerUnsafe(startTime, context, gaugeOf(() => started)),
        Metric.registerUnsafe(eventLoopDelay, context, eventLoop.hooks)
      ]
      return { registrations, stop: eventLoop.stop }
    }),
    ({ registrations, stop }) =>
      Effect.sync(() => {
        for (const r of registrations) r.remove()
        stop()
      })
  )
}))

/**
 * The metrics in the Prometheus text format, after asking the database for the log's head and
 * each subscriber's lag. A database out of reach leaves those as they were and reports
 * `pinledger_eventstore_up 0`; the rest is still answered.
 */
export const exposition = Effect.gen(function*() {
  const database = yield* Database
  const store = yield* EventStore
  const head = yield* Effect.option(store.head)
  yield* Metric.update(available, head._tag === "Some" ? 1 : 0)
  if (head._tag === "Some") {
    yield* Metric.update(headPosition, head.value)
    yield* Effect.forEach(SubscriberLag.tracked(database), ([name, at]) =>
      SubscriberLag.lagOf(at).pipe(
        Effect.flatMap((lag) => Metric.update(Metric.withAttributes(subscriberLag, { subscriber: name }), lag)),
        Effect.catch((e) => Effect.logDebug(`metrics: no lag for subscriber ${name}`, e))
      ), { discard: true })
  }
  const snapshots = yield* Metric.snapshot
  return Prometheus.render(snapshots.filter((s) => s.id.startsWith("pinledger_")))
})
