/**
 * The CSV exports of `GET /{token}/data/{pin}`, kept for `GET /<file name>` after the redirect
 * (the legacy server wrote them to a temporary folder for 45 days). Here they stay in memory for
 * a short while only: the redirect is followed at once, and a file name holds the account's address.
 */
export class CsvExports {
  readonly #files = new Map<string, { readonly bytes: Uint8Array; readonly until: number }>()
  readonly #ttlMs: number
  readonly #maxFiles: number

  constructor(options: { readonly ttlMs?: number; readonly maxFiles?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? 10 * 60_000
    this.#maxFiles = options.maxFiles ?? 100
  }

  put(name: string, bytes: Uint8Array, now: number) {
    this.#expire(now)
    this.#files.delete(name)
    this.#files.set(name, { bytes, until: now + this.#ttlMs })
    // The oldest go first (a Map keeps insertion order).
    for (const key of this.#files.keys()) {
      if (this.#files.size <= this.#maxFiles) break
      this.#files.delete(key)
    }
  }

  get(name: string, now: number): Uint8Array | undefined {
    this.#expire(now)
    return this.#files.get(name)?.bytes
  }

  #expire(now: number) {
    for (const [key, file] of this.#files) if (file.until <= now) this.#files.delete(key)
  }
}
