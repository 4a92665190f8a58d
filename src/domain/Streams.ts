import { createHash } from "node:crypto"
import { normalizeEmail } from "./Account.ts"

/**
 * The stream of an account: derived from its identity (e-mail + app name), so finding an account
 * needs no index. A digest, because e-mail addresses may hold characters stream ids do not.
 */
export const accountStream = (email: string, appName: string): string =>
  `user-${createHash("sha256").update(`${normalizeEmail(email)}\u0000${appName}`).digest("hex").slice(0, 40)}`
