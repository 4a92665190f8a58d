import { Data, Effect } from "effect"
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs"
import { join } from "node:path"

/** The directory is held by another live process. */
export class DirectoryLocked extends Data.TaggedError("DirectoryLocked")<{ readonly dir: string; readonly pid: number }> {
  override get message() {
    return `${this.dir} is in use by process ${this.pid}`
  }
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const holderOf = (file: string): number | undefined => {
  try {
    const pid = Number(readFileSync(file, "utf8").trim())
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

/**
 * An exclusive hold on a directory for this process's lifetime (the scope's): a `pinledger.lock`
 * file created only if absent, holding the pid. The embedded database is one process's alone; a
 * second opener (the CLI while the server runs) would write where the first does not look, and can
 * corrupt its files. A lock left by a process that died (kill -9) is taken over.
 */
export const acquire = (dir: string) =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const file = join(dir, "pinledger.lock")
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          const fd = openSync(file, "wx", 0o600)
          writeSync(fd, `${process.pid}\n`)
          closeSync(fd)
          return Effect.succeed(file)
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EEXIST") return Effect.die(error)
          const pid = holderOf(file)
          if (pid !== undefined && pid !== process.pid && alive(pid)) return Effect.fail(new DirectoryLocked({ dir, pid }))
          // Stale (its process is gone), or half-written: remove it and try again.
          try {
            unlinkSync(file)
          } catch {
            // Another opener removed it first; the next attempt decides.
          }
        }
      }
      return Effect.fail(new DirectoryLocked({ dir, pid: holderOf(file) ?? 0 }))
    }),
    (file) =>
      Effect.sync(() => {
        if (holderOf(file) === process.pid) unlinkSync(file)
      })
  )
