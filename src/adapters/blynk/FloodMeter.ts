/**
 * The per-connection flood limit of protocol.md §6.1, as the reference server meters it: every
 * inbound frame counts; the rate is a one-minute exponentially weighted average over one-second
 * ticks (the first completed second sets it); while it is above the limit, frames are dropped
 * whole, and the sender hears QUOTA_LIMIT at most once a minute. The socket stays open.
 *
 * Time comes in as milliseconds, so the meter is deterministic and testable; one meter per socket.
 */
export type FloodDecision = "accept" | "drop" | "dropAndNotify"

/** Weight of the newest second in the one-minute average: 1 − e^(−1/60). */
const alpha = 1 - Math.exp(-1 / 60)
const noticeEveryMs = 60_000

export class FloodMeter {
  readonly limit: number
  #second: number
  #count = 0
  #rate: number | undefined = undefined
  #lastNotice: number | undefined = undefined

  constructor(limit: number, nowMs: number) {
    this.limit = limit
    this.#second = Math.floor(nowMs / 1000)
  }

  /** The averaged rate in frames per second, once a second has completed. */
  get rate(): number | undefined {
    return this.#rate
  }

  /** Meters one inbound frame arriving at `nowMs` and says what to do with it. */
  onFrame(nowMs: number): FloodDecision {
    this.#tick(Math.floor(nowMs / 1000))
    this.#count++
    if (this.#rate === undefined || this.#rate <= this.limit) return "accept"
    if (this.#lastNotice !== undefined && nowMs - this.#lastNotice < noticeEveryMs) return "drop"
    this.#lastNotice = nowMs
    return "dropAndNotify"
  }

  /** Folds the seconds completed before `second` into the average. */
  #tick(second: number) {
    if (second <= this.#second) return
    const completed = this.#count
    this.#rate = this.#rate === undefined ? completed : this.#rate + alpha * (completed - this.#rate)
    // The seconds after it, if any, were silent.
    const silent = second - this.#second - 1
    if (silent > 0) this.#rate *= (1 - alpha) ** silent
    this.#second = second
    this.#count = 0
  }
}
