import { Schema } from "effect"

/**
 * Failed logins per remote address (issue 4, protocol.md §8): after `maxFailures` failures within
 * `windowMs`, the address is blocked for `blockMs`. App, share and HTTP logins count together;
 * invalid hardware tokens count apart, so a misconfigured device does not lock its owner's app
 * out. Pure: times come in the commands, in milliseconds.
 */

export const ThrottleKind = Schema.Literals(["login", "hardware"])
export type ThrottleKind = typeof ThrottleKind.Type

export class LoginFailed extends Schema.TaggedClass<LoginFailed>()("LoginFailed", {
  kind: ThrottleKind,
  address: Schema.String,
  /** What was tried: the e-mail for a login, the first characters of a token. */
  identity: Schema.String,
  at: Schema.Number
}) {}
export class AddressBlocked extends Schema.TaggedClass<AddressBlocked>()("AddressBlocked", {
  kind: ThrottleKind,
  address: Schema.String,
  until: Schema.Number,
  failures: Schema.Number
}) {}

export const ThrottleEvent = Schema.Union([LoginFailed, AddressBlocked])
export type ThrottleEvent = typeof ThrottleEvent.Type

export interface ThrottleSettings {
  readonly maxFailures: number
  readonly windowMs: number
  readonly blockMs: number
}

export interface ThrottleState {
  /** Times of the failures still inside the window, oldest first. */
  readonly failures: ReadonlyArray<number>
  readonly blockedUntil: number
}

export const initial: ThrottleState = { failures: [], blockedUntil: 0 }

export const isBlocked = (state: ThrottleState, now: number) => now < state.blockedUntil

export const decideFailure = (
  state: ThrottleState,
  failure: { readonly kind: ThrottleKind; readonly address: string; readonly identity: string; readonly at: number },
  settings: ThrottleSettings
): ReadonlyArray<ThrottleEvent> => {
  const failed = new LoginFailed(failure)
  if (isBlocked(state, failure.at)) return [failed]
  const recent = state.failures.filter((t) => failure.at - t < settings.windowMs).length + 1
  return recent >= settings.maxFailures
    ? [failed, new AddressBlocked({ kind: failure.kind, address: failure.address, until: failure.at + settings.blockMs, failures: recent })]
    : [failed]
}

export const evolve = (state: ThrottleState, event: ThrottleEvent, settings: ThrottleSettings): ThrottleState => {
  switch (event._tag) {
    case "LoginFailed":
      return { ...state, failures: [...state.failures.filter((t) => event.at - t < settings.windowMs), event.at] }
    case "AddressBlocked":
      // A block starts a fresh count: the failures that caused it are spent.
      return { failures: [], blockedUntil: event.until }
  }
}
