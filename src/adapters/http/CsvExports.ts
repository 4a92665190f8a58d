import { Context, Layer } from "effect"

/**
 * Export files kept for a later `GET /<file name>`: the legacy CSV of `GET /{token}/data/{pin}`
 * (after its redirect) and the Blynk IoT ZIP of `GET /external/api/data/get` (its `link`). The
 * legacy server wrote them to a temporary folder for 45 days; here they stay in memory for a
 * short while only: a link is followed at once, and a legacy file name holds the account's address.
 */
export class CsvExports {
  readonly #files = new Map<string, { readonly bytes: Uint8Array; readonly contentType: string; readonly until: number }>()
  readonly #ttlMs: number
  readonly #maxFiles: number

  constructor(options: { readonly ttlMs?: number; readonly maxFiles?: number } = {}) {
    this.#ttlMs = options.ttlMs ?? 10 * 60_000
    this.#maxFiles = options.maxFiles ?? 100
  }

  put(name: string, bytes: Uint8Array, now: number, contentType = "application/gzip") {
    this.#expire(now)
    this.#files.delete(name)
    this.#files.set(name, { bytes, contentType, until: now + this.#ttlMs })
    // The oldest go first (a Map keeps insertion order).
    for (const key of this.#files.keys()) {
      if (this.#files.size <= this.#maxFiles) break
      this.#files.delete(key)
    }
  }

  get(name: string, now: number): Uint8Array | undefined {
    return this.file(name, now)?.bytes
  }

  /** The file and its content type. */
  file(name: string, now: number): { readonly bytes: Uint8Array; readonly contentType: string } | undefined {
    this.#expire(now)
    return this.#files.get(name)
  }

  #expire(now: number) {
    for (const [key, file] of this.#files) if (file.until <= now) this.#files.delete(key)
  }
}

/** The server's one export cache, shared by the legacy and the Blynk IoT API (`GET /{file}` serves both). */
export class ExportFiles extends Context.Service<ExportFiles, CsvExports>()("pinledger/adapters/http/ExportFiles") {}

export const layer: Layer.Layer<ExportFiles> = Layer.sync(ExportFiles)(() => new CsvExports())
