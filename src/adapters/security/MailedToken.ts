import { createHash } from "node:crypto"
import { newToken } from "./Passwords.ts"

/**
 * The digest the log keeps of a mailed token (password reset, address confirmation). The token
 * has 192 random bits, so a fast hash is enough: nobody guesses a preimage, and the log's readers
 * (backups, the audit trail) cannot use what they read.
 */
export const tokenDigest = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex")

/** A fresh token for a mail (32 characters, protocol.md §4.4) and its digest for the log. */
export const mailedToken = (): { readonly token: string; readonly digest: string } => {
  const token = newToken()
  return { token, digest: tokenDigest(token) }
}

/** Whether a text could be one of our tokens at all (32 URL-safe Base64 characters). */
export const looksLikeToken = (text: string): boolean => /^[A-Za-z0-9_-]{32}$/.test(text)
