import { Schema } from "effect"

/**
 * Who logged in to the account and what shared sessions did and were refused (protocol.md §8:
 * denials and kicks leave an event): the `access-<account>` stream. Refused logins are throttle
 * events (domain/Throttle.ts).
 */

/** The owner logged in with the account's password: an app's LOGIN, or the owner HTTP API. */
export class OwnerLoggedIn extends Schema.TaggedClass<OwnerLoggedIn>()("OwnerLoggedIn", {
  via: Schema.Literals(["app", "api"]),
  remote: Schema.String
}) {}

export class SharedLogin extends Schema.TaggedClass<SharedLogin>()("SharedLogin", {
  dashId: Schema.Int,
  remote: Schema.String
}) {}
/** A share token that matched the log but no longer opens the dashboard when the actor looked. */
export class SharedLoginRefused extends Schema.TaggedClass<SharedLoginRefused>()("SharedLoginRefused", {
  dashId: Schema.Int,
  remote: Schema.String
}) {}
/** A shared session asked for something its scope does not allow; it got NOT_ALLOWED. */
export class CommandRefused extends Schema.TaggedClass<CommandRefused>()("CommandRefused", {
  dashId: Schema.Int,
  /** The command's name or code, and the dashboard it aimed at when that is not the shared one. */
  command: Schema.String,
  remote: Schema.String
}) {}
/** Shared sessions closed because their token was revoked or their dashboard deleted. */
export class SharedSessionsClosed extends Schema.TaggedClass<SharedSessionsClosed>()("SharedSessionsClosed", {
  dashId: Schema.Int,
  sessions: Schema.Int,
  reason: Schema.String
}) {}

export const AccessEvent = Schema.Union([OwnerLoggedIn, SharedLogin, SharedLoginRefused, CommandRefused, SharedSessionsClosed])
export type AccessEvent = typeof AccessEvent.Type
