import { Effect, Metric } from "effect"
import type { ThrottleKind } from "../domain/Throttle.ts"

/**
 * The login throttle's metrics (exposed by `/metrics`), by kind: `login` (app and share logins,
 * password-reset and confirmation tokens) and `hardware` (invalid device tokens).
 */
const failures = Metric.counter("pinledger_login_failures_total", {
  description: "Failed logins recorded by the throttle (wrong password, unknown account or token, refused share token)",
  incremental: true
})
const blocks = Metric.counter("pinledger_login_blocks_total", {
  description: "Addresses blocked by the throttle (PINLEDGER_LOGIN_MAX_FAILURES reached)",
  incremental: true
})
const refused = Metric.counter("pinledger_login_refused_blocked_total", {
  description: "Logins refused because the address was blocked",
  incremental: true
})

const kinds: ReadonlyArray<ThrottleKind> = ["login", "hardware"]
const byKind = <S>(metric: Metric.Metric<number, S>) =>
  Object.fromEntries(kinds.map((kind) => [kind, Metric.withAttributes(metric, { kind })])) as Record<ThrottleKind, Metric.Metric<number, S>>

const failuresBy = byKind(failures)
const blocksBy = byKind(blocks)
const refusedBy = byKind(refused)

/** A failure recorded; `blocked` when it blocked the address. */
export const recordFailure = (kind: ThrottleKind, blocked: boolean) =>
  blocked
    ? Effect.andThen(Metric.update(failuresBy[kind], 1), Metric.update(blocksBy[kind], 1))
    : Metric.update(failuresBy[kind], 1)

/** A login refused while its address is blocked. */
export const recordRefused = (kind: ThrottleKind) => Metric.update(refusedBy[kind], 1)

/** Every series, so that an idle server reports them at zero. */
export const all: ReadonlyArray<Metric.Metric<never, unknown>> = kinds.flatMap((kind) => [failuresBy[kind], blocksBy[kind], refusedBy[kind]])
