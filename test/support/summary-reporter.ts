import type { SerializedError } from "vitest"
import type { Reporter, TestModule } from "vitest/node"

/**
 * Ends the run with the plain line `N passed, N failed` that CI reads. A test file that failed to
 * load, and an unhandled error, each count as one failure.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>) {
    let passed = 0
    let failed = unhandledErrors.length
    for (const module of modules) {
      let tests = 0
      for (const test of module.children.allTests()) {
        tests++
        const state = test.result().state
        if (state === "passed") passed++
        else if (state === "failed") failed++
      }
      if (tests === 0 && module.state() === "failed") failed++
    }
    process.stdout.write(`\n${passed} passed, ${failed} failed\n`)
  }
}
