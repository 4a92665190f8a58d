import { Context, Effect, type Exit, Layer } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import { Directory } from "../../actors/Directory.ts"
import type { Throttle } from "../../actors/Throttle.ts"
import type { EventStore } from "../../eventstore/EventStore.ts"
import type { Mailer } from "../notify/Mailer.ts"

/** The services an effect run for a session may use. */
export type SessionServices = Directory | SqlClient | EventStore | Throttle | Mailer

/** A connection the sweeper watches: closed once it has been silent for `idleMs`. */
export interface Watched {
  lastSeen: number
  idleMs: number
  readonly onIdle: () => void
}

/**
 * One timer for all connections instead of one per connection: re-arming a timer on every frame
 * costs more than the frame at high rates, and an idle device should cost next to nothing.
 */
export class IdleSweeper {
  readonly #watched = new Set<Watched>()
  add(w: Watched) {
    this.#watched.add(w)
  }
  remove(w: Watched) {
    this.#watched.delete(w)
  }
  sweep(now: number) {
    for (const w of this.#watched) {
      if (w.idleMs > 0 && now - w.lastSeen >= w.idleMs) {
        this.#watched.delete(w)
        w.onIdle()
      }
    }
  }
}

export interface SessionSettings {
  /** Inbound frames per second per connection before frames are dropped (protocol.md §6.1). */
  readonly messageQuota: number
  /** Hardware idle timeout in seconds before the ×2.3 factor (protocol.md §3.5); 0 = none. */
  readonly hardwareIdleSeconds: number
  /** App idle timeout in seconds; 0 = none. */
  readonly appIdleSeconds: number
  /**
   * Who may REGISTER through the protocol: `closed`, only the very first account (later ones are
   * made with the CLI); `open`, anyone; `verify`, anyone, but an account (other than the very
   * first) logs in only once its address is confirmed through a mailed link.
   */
  readonly registration: "closed" | "open" | "verify"
  /** How long a password-reset token stays good, in minutes (PINLEDGER_RESET_TOKEN_MINUTES). */
  readonly resetTokenMinutes: number
  /** How long an address-confirmation link stays good, in hours (PINLEDGER_VERIFY_TOKEN_HOURS). */
  readonly verifyTokenHours: number
  /** Where the HTTP app is reached from outside, for mailed links (PINLEDGER_PUBLIC_URL). */
  readonly publicUrl: string
  /**
   * Seconds between two notifications of one kind (push, e-mail, tweet, SMS) on one hardware
   * connection (protocol.md §6.2); 0 = no limit.
   */
  readonly notifyIntervalSeconds: number
  /** Frame and JSON sizes; `defaultSizeLimits` when absent. */
  readonly sizes?: SizeLimits | undefined
}

/** What a connection may send at most (protocol.md §6.2), in bytes. */
export interface SizeLimits {
  /** A device frame's body (the u16 length allows 65,535 at most). */
  readonly hardwareBody: number
  /** An app frame's body (7-byte frames and `/dashws` messages). */
  readonly appBody: number
  /** A widget's, device's or tag's JSON (NOT_ALLOWED beyond). */
  readonly widgetJson: number
  /** A dashboard's or its settings' JSON (NOT_ALLOWED beyond). */
  readonly dashboardJson: number
}

export const defaultSizeLimits: SizeLimits = {
  hardwareBody: 65_535,
  appBody: 1024 * 1024,
  widgetJson: 20 * 1024,
  dashboardJson: 256 * 1024
}

/** What the socket-side sessions need from the Effect world, as plain calls. */
export class SessionEnv extends Context.Service<SessionEnv, {
  readonly settings: SessionSettings
  readonly run: <A, E>(
    effect: Effect.Effect<A, E, SessionServices>,
    onExit: (exit: Exit.Exit<A, E>) => void
  ) => void
  readonly log: (level: "info" | "warn", message: string) => void
  readonly sweeper: IdleSweeper
  readonly sessionId: (kind: string) => string
}>()("pinledger/blynk/SessionEnv") {}

export const layer = (settings: SessionSettings): Layer.Layer<SessionEnv, never, SessionServices> =>
  Layer.effect(
    SessionEnv,
    Effect.gen(function*() {
      const context = yield* Effect.context<SessionServices>()
      const runCallback = Effect.runCallbackWith(context)
      const sweeper = new IdleSweeper()
      const timer = yield* Effect.acquireRelease(
        Effect.sync(() => setInterval(() => sweeper.sweep(Date.now()), 1000).unref()),
        (t) => Effect.sync(() => clearInterval(t))
      )
      void timer
      let counter = 0
      return {
        settings,
        run: (effect, onExit) => {
          runCallback(effect, { onExit })
        },
        log: (level, message) => {
          runCallback(level === "info" ? Effect.logInfo(message) : Effect.logWarning(message))
        },
        sweeper,
        sessionId: (kind) => `${kind}-${process.pid}-${++counter}`
      }
    })
  )
