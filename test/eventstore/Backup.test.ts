import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { gunzipSync, gzipSync } from "node:zlib"
import { DeviceEvent, PinsWritten } from "../../src/domain/Pins.ts"
import { deviceStream } from "../../src/domain/Streams.ts"
import * as Backup from "../../src/eventstore/Backup.ts"
import * as EventCodec from "../../src/eventstore/EventCodec.ts"
import { migrate } from "../../src/eventstore/Migrations.ts"
import { inlineProjections } from "../../src/eventstore/projections/Inline.ts"
import { PinHistory } from "../../src/eventstore/projections/PinHistory.ts"
import { type Backend, backends, type Storage, storeLayer } from "../support/backends.ts"
import { aliceStream, eventRows, projectionTables, writeWorkload } from "../support/opsWorkload.ts"

const devices = EventCodec.typed(EventCodec.make(DeviceEvent))

const tempDir = Effect.acquireRelease(
  Effect.promise(() => mkdtemp(join(tmpdir(), "pinledger-backup-"))),
  (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
)

/** The pin history projection's tables, rebuilt from the log (as its subscriber would catch up). */
const history = Effect.gen(function*() {
  const sql = yield* SqlClient
  yield* PinHistory.rebuild()
  const out: Record<string, ReadonlyArray<string>> = {}
  for (const table of PinHistory.tables) {
    out[table] = (yield* sql.unsafe<{ r: string }>(`SELECT to_jsonb(t)::text AS r FROM ${table} t ORDER BY 1`)).map((r) => r.r)
  }
  return out
})

/** Everything a restore must reproduce. */
const everything = Effect.gen(function*() {
  return { events: yield* eventRows, projections: yield* projectionTables, history: yield* history }
})

const onStorage = (storage: Storage) => <A, E>(effect: Effect.Effect<A, E, SqlClient>) =>
  Effect.andThen(migrate, effect).pipe(Effect.provide(storage.layer))

const eventCount = Effect.gen(function*() {
  const sql = yield* SqlClient
  return Number((yield* sql<{ n: unknown }>`SELECT count(*) AS n FROM pl_events`)[0]!.n)
})

const pairs: ReadonlyArray<readonly [Backend, Backend]> = backends.flatMap((from) => backends.map((to) => [from, to] as const))

describe("backup and restore", () => {
  for (const [from, to] of pairs) {
    it.live(`a backup from ${from.name} restored into a fresh ${to.name} gives the same log and the same projections`, () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const file = join(dir, "pinledger.backup.gz")
        const source = yield* from.storage
        const target = yield* to.storage
        const header = yield* Effect.gen(function*() {
          yield* writeWorkload
          return yield* Backup.backup(file)
        }).pipe(Effect.provide(storeLayer(source, { inline: inlineProjections })))
        const original = yield* onStorage(source)(everything)
        expect(header).toMatchObject({ format: "pinledger-backup", version: 1, count: original.events.length })
        expect(header.head).toBe(Number(original.events.at(-1)!["position"]))
        expect(header.checksum).toMatch(/^sha256:[0-9a-f]{64}$/)
        // Owner-only: it holds password hashes and tokens.
        expect((yield* Effect.promise(() => stat(file))).mode & 0o777).toBe(0o600)
        // A header line, then one line per event.
        const text = gunzipSync(yield* Effect.promise(() => readFile(file))).toString("utf8")
        expect(text.split("\n")).toHaveLength(original.events.length + 2)

        const restored = yield* onStorage(target)(Backup.restore(file))
        expect(restored.header).toEqual(header)
        expect(restored.rebuilt).toEqual(inlineProjections.map((p) => p.name))
        const copy = yield* onStorage(target)(everything)
        expect(copy.events).toEqual(original.events)
        expect(copy.projections).toEqual(original.projections)
        expect(copy.projections["pl_device_tokens"]).toHaveLength(3)
        expect(copy.history).toEqual(original.history)
        expect(copy.history["pl_history_series"]!.length).toBeGreaterThan(0)

        // The restored log goes on from where it ended.
        const next = yield* devices.append(deviceStream(aliceStream, 1, 0), "any", [
          new PinsWritten({ dashId: 1, deviceId: 0, source: "hardware", writes: [["v", 1, "22"]] })
        ], { time: "2026-03-02T00:00:00.000Z" }).pipe(Effect.provide(storeLayer(target, { inline: inlineProjections })))
        expect(next.positions).toEqual([header.head + 1])
      }))
  }

  for (const backend of backends) {
    it.live(`on ${backend.name}: damaged files and databases that are not empty are refused, and nothing changes`, () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const file = join(dir, "good.gz")
        const source = yield* backend.storage
        const target = yield* backend.storage
        const header = yield* Effect.andThen(writeWorkload, Backup.backup(file)).pipe(
          Effect.provide(storeLayer(source, { inline: inlineProjections }))
        )
        const bytes = yield* Effect.promise(() => readFile(file))
        const [headerLine, ...lines] = gunzipSync(bytes).toString("utf8").split("\n").slice(0, -1)
        const variant = (name: string, content: Uint8Array) =>
          Effect.promise(async () => {
            const path = join(dir, name)
            await writeFile(path, content)
            return path
          })
        const refusal = (path: string) =>
          onStorage(target)(Effect.flip(Backup.restore(path))).pipe(Effect.map((e) => (e as Backup.RestoreRefused).reason))

        const cut = yield* variant("cut.gz", bytes.subarray(0, Math.floor(bytes.length * 0.6)))
        expect(yield* refusal(cut)).toContain("is damaged")
        const flipped = Uint8Array.from(bytes)
        flipped[Math.floor(flipped.length * 0.7)]! ^= 0xff
        expect(yield* refusal(yield* variant("flipped.gz", flipped))).toContain("is damaged")
        // Valid gzip, one event changed (a pin value): only the checksum tells.
        const tampered = lines.map((l) => l.replace("\"21.5\"", "\"99.9\""))
        expect(tampered).not.toEqual(lines)
        const tamperedFile = yield* variant("tampered.gz", gzipSync([headerLine, ...tampered, ""].join("\n")))
        expect(yield* refusal(tamperedFile)).toContain("do not match the header's checksum")
        // The last event missing, at a line boundary.
        const short = yield* variant("short.gz", gzipSync([headerLine, ...lines.slice(0, -1), ""].join("\n")))
        expect(yield* refusal(short)).toContain(`it holds ${header.count - 1} events, its header says ${header.count}`)
        const plain = yield* variant("plain.txt", new TextEncoder().encode("hello\n"))
        expect(yield* refusal(plain)).toContain("is damaged or is not a Pinledger backup")
        const other = yield* variant("other.gz", gzipSync(`${JSON.stringify({ format: "pinledger-backup", version: 2 })}\n`))
        expect(yield* refusal(other)).toContain("format version 2")
        expect(yield* refusal(join(dir, "absent.gz"))).toContain("cannot read")
        expect(yield* onStorage(target)(eventCount)).toBe(0)

        // A database with a log already: refused before the file is read, and left as it was.
        const before = yield* onStorage(source)(eventRows)
        const notEmpty = yield* onStorage(source)(Effect.flip(Backup.restore(file)))
        expect((notEmpty as Backup.RestoreRefused).reason).toContain(`restore needs an empty database, and this one is not: it holds ${header.count} events`)
        expect(yield* onStorage(source)(eventRows)).toEqual(before)

        // After all that, the target is still empty and takes the good file.
        const restored = yield* onStorage(target)(Backup.restore(file))
        expect(restored.header.count).toBe(header.count)
        expect(yield* onStorage(target)(eventCount)).toBe(header.count)
      }))
  }
})
