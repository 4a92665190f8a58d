import { createHash } from "node:crypto"
import { normalizeEmail } from "./Account.ts"

/**
 * The stream of an account: derived from its identity (e-mail + app name), so finding an account
 * needs no index. A digest, because e-mail addresses may hold characters stream ids do not.
 */
export const accountStream = (email: string, appName: string): string =>
  `user-${createHash("sha256").update(`${normalizeEmail(email)}\u0000${appName}`).digest("hex").slice(0, 40)}`

/** A device's stream: its account's digest, its dashboard and its id (ids are per dashboard). */
export const deviceStream = (accountStreamId: string, dashId: number, deviceId: number): string =>
  `device-${accountStreamId.slice("user-".length)}-${dashId}-${deviceId}`

/** The account a device stream belongs to: `device-<digest>-<dash>-<device>` → `user-<digest>`. */
export const accountOfDevice = (deviceStreamId: string): string => `user-${deviceStreamId.slice("device-".length).split("-")[0]}`

/** Security events of an account's shared sessions (domain/Access.ts). */
export const accessStream = (accountStreamId: string): string => `access-${accountStreamId.slice("user-".length)}`

/** An account's notifications: requested by its devices, then sent or failed (domain/Notifications.ts). */
export const outboxStream = (accountStreamId: string): string => `outbox-${accountStreamId.slice("user-".length)}`
