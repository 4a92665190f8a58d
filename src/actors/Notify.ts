import { Cause, Effect, Exit } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { type AccountState, findDashboard } from "../domain/Account.ts"
import { decideNotification, NotificationEvent, type NotificationKind, type NotificationRequested } from "../domain/Notifications.ts"
import { outboxStream } from "../domain/Streams.ts"
import { InvalidEvent } from "../eventstore/Errors.ts"
import type { Metadata } from "../eventstore/Event.ts"
import * as EventCodec from "../eventstore/EventCodec.ts"
import type { EventStore } from "../eventstore/EventStore.ts"
import { emailRequestsSince } from "../eventstore/OutboxQueries.ts"
import type { DevicePeer } from "./Peer.ts"

/** A device asked for a push, an e-mail, a tweet or an SMS (protocol.md §2.1 rows 12, 13, 14, 18). */
export interface DeviceNotify {
  readonly _tag: "DeviceNotify"
  readonly peer: DevicePeer
  readonly id: number
  readonly kind: NotificationKind
  /** The hardware body as text (NUL-separated fields for e-mail). */
  readonly body: string
  /** Called when the request is refused: the connection's slot for this kind was not used up. */
  readonly refused: () => void
  /** Who asked, for the event's metadata; "device" by default ("http" for the HTTP API). */
  readonly actor?: string
  /** Called once the accepted request is in the log (true), or was dropped as invalid (false). */
  readonly committed?: (ok: boolean) => void
}

export interface NotifyOptions {
  /** E-mails an account's devices may request per UTC day; default 100 (protocol.md §6.2). */
  readonly emailsPerDay?: number | undefined
  /** What `{VENDOR_EMAIL}` becomes. */
  readonly vendorEmail?: string | undefined
}

export interface Notifier {
  /** Decides a request against the account, answers the device at once, appends in the background. */
  readonly handle: (account: AccountState, message: DeviceNotify) => void
  /** Resolves once every accepted request is in the log. */
  readonly idle: Effect.Effect<void>
}

const DAY_MS = 86_400_000
const log = EventCodec.typed(EventCodec.make(NotificationEvent))

/**
 * The notification side of a user actor. Accepted requests go to the account's outbox stream
 * without making the device wait on the database, one append at a time, in order (the outbox
 * sender delivers them from the log). The day's e-mail count starts from the log, so a restart
 * does not give an account a fresh allowance.
 */
export const make = (accountStream: string, options: NotifyOptions = {}) =>
  Effect.gen(function*() {
    const context = yield* Effect.context<EventStore | SqlClient>()
    const runCallback = Effect.runCallbackWith(context)
    const stream = outboxStream(accountStream)
    const emailsPerDay = options.emailsPerDay ?? 100
    const vendorEmail = options.vendorEmail ?? ""
    let day = Math.floor(Date.now() / DAY_MS)
    let emailsToday = yield* emailRequestsSince(stream, new Date(day * DAY_MS)).pipe(
      Effect.map((ids) => ids.length),
      Effect.catch((error) => Effect.as(Effect.logWarning(`notifications: cannot count today's e-mails of ${stream}`, error), 0))
    )

    const pending: Array<{
      readonly event: NotificationRequested
      readonly metadata: Metadata
      readonly committed: ((ok: boolean) => void) | undefined
    }> = []
    let inFlight = false
    let waiting: Array<() => void> = []

    const flush = (): void => {
      const next = pending[0]
      if (next === undefined) {
        inFlight = false
        const resume = waiting
        waiting = []
        for (const r of resume) r()
        return
      }
      inFlight = true
      runCallback(log.append(stream, "any", [next.event], next.metadata), {
        onExit: (exit) => {
          if (Exit.isFailure(exit)) {
            const error = Cause.squash(exit.cause)
            // Refused for what it holds, it would be refused again: keep the rest flowing.
            if (!(error instanceof InvalidEvent)) {
              runCallback(Effect.logWarning(`notifications: append to ${stream} failed, retrying`, Cause.pretty(exit.cause)))
              return void setTimeout(flush, 1000)
            }
            runCallback(Effect.logError(`notifications: request ${next.event.requestId} dropped`, error))
          }
          next.committed?.(Exit.isSuccess(exit))
          pending.shift()
          flush()
        }
      })
    }

    const idle = Effect.callback<void>((resume) => {
      if (!inFlight) resume(Effect.void)
      else waiting.push(() => resume(Effect.void))
    })
    yield* Effect.addFinalizer(() => idle)

    const handle = (account: AccountState, message: DeviceNotify) => {
      const { peer } = message
      const now = Date.now()
      const today = Math.floor(now / DAY_MS)
      if (today !== day) {
        day = today
        emailsToday = 0
      }
      const decided = decideNotification(findDashboard(account, peer.dashId), message.kind, message.body, {
        requestId: randomUUID(),
        deviceId: peer.deviceId,
        ownerEmail: account?.email ?? "",
        vendorEmail,
        emailsToday,
        emailsPerDay
      })
      if (decided._tag === "Refused") {
        message.refused()
        return peer.send({ _tag: "Status", id: message.id, status: decided.status })
      }
      if (decided.kind === "email") emailsToday++
      pending.push({
        event: decided,
        metadata: { actor: message.actor ?? "device", session: peer.session, remoteAddress: peer.remote, time: new Date(now).toISOString() },
        committed: message.committed
      })
      if (!inFlight) flush()
      peer.send({ _tag: "Status", id: message.id, status: "ok" })
    }

    return { handle, idle } satisfies Notifier
  })
