import { Effect, Metric } from "effect"

/**
 * The event store's metrics (exposed by `/metrics`). Updated once per group-commit batch, never
 * per append: the append path stays as cheap as it was.
 */
export const commitSeconds = Metric.histogram("pinledger_eventstore_commit_seconds", {
  description: "Time of each group-commit transaction, from taking its batch off the queue to its commit (or failure), in seconds",
  boundaries: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
})

export const batchAppends = Metric.histogram("pinledger_eventstore_batch_appends", {
  description: "Appends committed together in one group-commit transaction",
  boundaries: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000]
})

/** Records one batch: `appends` taken off the queue, `startedAt` a `performance.now()` reading. */
export const recordCommit = (appends: number, startedAt: number) =>
  Effect.andThen(
    Metric.update(commitSeconds, (performance.now() - startedAt) / 1000),
    Metric.update(batchAppends, appends)
  )

/** Every series, so that an idle server reports them at zero. */
export const all: ReadonlyArray<Metric.Metric<never, unknown>> = [commitSeconds, batchAppends]
