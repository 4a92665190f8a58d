export const DAY_MS = 86_400_000

/**
 * For a test whose steps must fall in one UTC minute, hour or day (a per-day limit, one bucket of
 * a rollup) while the server reads the real clock: when the next boundary of `periodMs` is closer
 * than `marginMs`, waits until it has passed, so the test starts clear of it. There is no event
 * to await here but the time itself; the wait is at most `marginMs`, and only near a boundary.
 */
export const clearOfBoundary = async (periodMs: number, marginMs: number) => {
  const left = periodMs - (Date.now() % periodMs)
  if (left < marginMs) await new Promise((resolve) => setTimeout(resolve, left + 20))
}
