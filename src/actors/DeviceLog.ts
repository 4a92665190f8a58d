import { Cause, Effect, Exit, Schema } from "effect"
import { AccessEvent } from "../domain/Access.ts"
import { DeviceEvent, type PinWrite, type Source } from "../domain/Pins.ts"
import type { Metadata, NewEvent } from "../eventstore/Event.ts"
import * as EventCodec from "../eventstore/EventCodec.ts"
import { InvalidEvent } from "../eventstore/Errors.ts"
import { EventStore } from "../eventstore/EventStore.ts"

const eventCodec = EventCodec.make(Schema.Union([DeviceEvent, AccessEvent]))

/** Who wrote: the session and address of the connection (the peer object itself, not a copy). */
export interface Writer {
  readonly session: string
  readonly remote: string
}

export type Entry =
  | {
    readonly _tag: "Write"
    readonly dashId: number
    readonly deviceId: number
    readonly source: Source
    readonly write: PinWrite
    readonly by: Writer
    /** Date.now() when it arrived; made into metadata only for the first entry of an append. */
    readonly at: number
    /** The write's own time (ms) when the writer gave one (HTTP `extra/pin`): the event carries `timestamps`. */
    readonly timestamp?: number
    /** Who wrote, for the metadata (the owner API's `api:<email>`); the source's name by default. */
    readonly actor?: string
    /** Called once committed (see `awaited`). */
    readonly committed?: () => void
    /** Called instead when the store refuses this entry for good (it is dropped; see DeviceLog). */
    readonly refused?: () => void
  }
  /**
   * Something a device connection did besides writing pins (connect, disconnect, a property),
   * or what a shared app was allowed or refused (`actor` says who, default "device").
   */
  | {
    readonly _tag: "Event"
    readonly event: DeviceEvent | AccessEvent
    readonly by: Writer
    readonly at: number
    readonly actor?: string
    /** Called once committed (see `awaited`). */
    readonly committed?: () => void
    /** Called instead when the store refuses this entry for good (it is dropped; see DeviceLog). */
    readonly refused?: () => void
  }

/**
 * An entry with `committed` (an HTTP write, answered only after its commit) is called back once
 * the append holding it is committed, and is appended only with consecutive entries of the same
 * writer that are awaited too, so the event's metadata (actor, address) is its own.
 */
const awaited = (entry: Entry) => entry.committed !== undefined

/** How many of the pending entries the next append takes. */
const batchLength = (pending: ReadonlyArray<Entry>): number => {
  const first = pending[0]!
  let n = 1
  if (awaited(first)) {
    while (n < pending.length && awaited(pending[n]!) && pending[n]!.by === first.by) n++
  } else {
    while (n < pending.length && !awaited(pending[n]!)) n++
  }
  return n
}

const metadataOf = (entry: Entry): Metadata => ({
  actor: entry.actor ?? (entry._tag === "Event" || entry.source === "hardware" ? "device" : entry.source),
  session: entry.by.session,
  remoteAddress: entry.by.remote,
  time: new Date(entry.at).toISOString()
})

/** Runs an append in the background and calls back with its exit. */
export type Runner = (effect: Effect.Effect<unknown, unknown, EventStore>, done: (exit: Exit.Exit<unknown, unknown>) => void) => void

interface StreamQueue {
  pending: Array<Entry>
  inFlight: boolean
  /** After a batch was refused for good: how many more entries go one per append, to find the one refused. */
  isolating: number
}

/** Most writes in one event; a longer run is split. */
const MAX_WRITES = 1000

/**
 * Most characters of values in one event; a run that would hold more is split. Even if every
 * character were escaped six-fold in JSON this stays under the store's 1 MB per event, so writes
 * the store takes one by one are never refused for having been put together.
 */
export const MAX_RUN_CHARS = 128 * 1024

/** Whether an append failed for good: the store refused the data (InvalidEvent), not the database being away. */
const refusedForGood = (cause: Cause.Cause<unknown>) =>
  cause.reasons.some((r) => r._tag === "Fail" && r.error instanceof InvalidEvent)

/**
 * Appends what devices do to their streams without making anyone wait: at most one append per
 * stream is in flight, and what arrives meanwhile goes into the next one, consecutive writes as
 * one `PinsWritten`. So at low load every write is its own event, committed within the group
 * commit's window, and under load the events grow instead of the queue. Order per stream is
 * kept; an append the store refuses for a passing reason is retried, nothing is dropped. An append
 * the store refuses for good (InvalidEvent: data it can never take) is tried again an entry at a
 * time, so that only the entry at fault is dropped, with an error in the log and its `refused`
 * called; a stream never stays stuck behind it.
 */
export class DeviceLog {
  readonly #streams = new Map<string, StreamQueue>()
  readonly #run: Runner
  readonly #retryMillis: number
  readonly #intervalMillis: number
  #idle: Array<() => void> = []

  /**
   * `intervalMillis`: while a stream stays busy, its appends start at least this far apart, so
   * under load each event carries more writes (fewer, larger events cost the log much less). A
   * write after a quiet spell is appended at once.
   */
  constructor(run: Runner, options: { readonly retryMillis?: number; readonly intervalMillis?: number } = {}) {
    this.#run = run
    this.#retryMillis = options.retryMillis ?? 1000
    this.#intervalMillis = options.intervalMillis ?? 0
  }

  push(stream: string, entry: Entry) {
    this.pushAll(stream, [entry])
  }

  /** Several entries that belong together (one HTTP request's writes): queued at once, so an idle stream appends them in one go. */
  pushAll(stream: string, entries: ReadonlyArray<Entry>) {
    if (entries.length === 0) return
    let queue = this.#streams.get(stream)
    if (queue === undefined) {
      queue = { pending: [], inFlight: false, isolating: 0 }
      this.#streams.set(stream, queue)
    }
    queue.pending.push(...entries)
    if (!queue.inFlight) this.#flush(stream, queue)
  }

  /** Resolves once nothing is pending or in flight (for shutdown and tests). */
  readonly idle: Effect.Effect<void> = Effect.callback<void>((resume) => {
    if (this.#streams.size === 0) resume(Effect.void)
    else this.#idle.push(() => resume(Effect.void))
  })

  #flush(stream: string, queue: StreamQueue) {
    const take = queue.isolating > 0 ? 1 : batchLength(queue.pending)
    const entries = take === queue.pending.length ? queue.pending : queue.pending.slice(0, take)
    queue.pending = take === queue.pending.length ? [] : queue.pending.slice(take)
    queue.inFlight = true
    const started = Date.now()
    this.#run(append(stream, entries), (exit) => {
      if (Exit.isFailure(exit)) {
        if (!refusedForGood(exit.cause)) {
          queue.pending = [...entries, ...queue.pending]
          Effect.runFork(Effect.logError(`device log: append to ${stream} failed, retrying`, Cause.pretty(exit.cause)))
          setTimeout(() => this.#flush(stream, queue), this.#retryMillis)
          return
        }
        if (entries.length > 1) {
          // Which of them? One at a time from here on.
          queue.pending = [...entries, ...queue.pending]
          queue.isolating = entries.length
          return this.#flush(stream, queue)
        }
        const [entry] = entries
        Effect.runFork(Effect.logError(`device log: ${describe(entry!)} refused for good by the store and dropped (${stream})`, Cause.pretty(exit.cause)))
        entry!.refused?.()
      } else {
        for (const entry of entries) entry.committed?.()
      }
      if (queue.isolating > 0) queue.isolating--
      if (queue.pending.length > 0) {
        const wait = started + this.#intervalMillis - Date.now()
        if (wait <= 0) return this.#flush(stream, queue)
        return void setTimeout(() => this.#flush(stream, queue), wait)
      }
      queue.inFlight = false
      this.#streams.delete(stream)
      if (this.#streams.size === 0) {
        const waiting = this.#idle
        this.#idle = []
        for (const resume of waiting) resume()
      }
    })
  }
}

/** An entry as the log line about it names it (the value's start only). */
const describe = (entry: Entry) =>
  entry._tag === "Event"
    ? `${entry.event._tag} from ${entry.by.remote}`
    : `write ${entry.write[0]}${entry.write[1]} (${(entry.write.slice(2) as Array<string>).reduce((n, v) => n + v.length, 0)} characters) from ${entry.by.remote}`

/** Consecutive writes of one device and source; `timestamps` only when each write came with its own time. */
interface Run {
  dashId: number
  deviceId: number
  source: Source
  writes: Array<PinWrite>
  timestamps?: Array<number>
}

/**
 * `PinsWritten` as its codec would write it (`_tag` and the fields; tuples as arrays), built by
 * hand: this is the hot path, and the replay tests read it back through the codec.
 */
const pinsWritten = (run: Run): NewEvent => ({
  type: "PinsWritten",
  schemaVersion: 1,
  data: { _tag: "PinsWritten", ...run }
})

const isNewEvent = (item: DeviceEvent | AccessEvent | NewEvent): item is NewEvent => !("_tag" in item)

const append = (stream: string, entries: ReadonlyArray<Entry>) =>
  Effect.gen(function*() {
    const store = yield* EventStore
    const events: Array<NewEvent> = []
    for (const item of toEvents(entries)) events.push(isNewEvent(item) ? item : yield* eventCodec.encode(item))
    return yield* store.append(stream, "any", events, metadataOf(entries[0]!))
  })

const toEvents = (entries: ReadonlyArray<Entry>): Array<DeviceEvent | AccessEvent | NewEvent> => {
  const events: Array<DeviceEvent | AccessEvent | NewEvent> = []
  let run: Run | undefined
  let chars = 0
  const close = () => {
    if (run) events.push(pinsWritten(run))
    run = undefined
  }
  for (const entry of entries) {
    if (entry._tag === "Event") {
      close()
      events.push(entry.event)
      continue
    }
    let size = 0
    for (let i = 2; i < entry.write.length; i++) size += (entry.write[i] as string).length
    if (
      run === undefined || run.dashId !== entry.dashId || run.deviceId !== entry.deviceId || run.source !== entry.source ||
      run.writes.length >= MAX_WRITES || chars + size > MAX_RUN_CHARS || (entry.timestamp === undefined) !== (run.timestamps === undefined)
    ) {
      close()
      run = { dashId: entry.dashId, deviceId: entry.deviceId, source: entry.source, writes: [] }
      chars = 0
      if (entry.timestamp !== undefined) run.timestamps = []
    }
    chars += size
    run.writes.push(entry.write)
    if (entry.timestamp !== undefined) run.timestamps?.push(entry.timestamp)
  }
  close()
  return events
}
