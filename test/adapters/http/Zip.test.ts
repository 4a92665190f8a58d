import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { execFileSync } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { zip } from "../../../src/adapters/http/Zip.ts"

/** What Python's zipfile (a real, checking reader: CRCs, sizes, directory) extracts from an archive. */
const extract = (archive: Uint8Array): Record<string, Buffer> => {
  const dir = mkdtempSync(join(tmpdir(), "pinledger-zip-"))
  try {
    writeFileSync(join(dir, "a.zip"), archive)
    execFileSync("python3", ["-m", "zipfile", "-t", join(dir, "a.zip")])
    execFileSync("python3", ["-m", "zipfile", "-e", join(dir, "a.zip"), join(dir, "out")])
    const files: Record<string, Buffer> = {}
    for (const name of readdirSync(join(dir, "out"))) files[name] = readFileSync(join(dir, "out", name))
    return files
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe("ZIP writer (property test against a real unzip)", () => {
  it("a real reader extracts every entry as written: compressible or not, empty, with UTF-8 names", () => {
    const entry = fc.record({
      name: fc.stringMatching(/^[a-zé0-9_]{1,12}$/).map((n) => `${n}.csv`),
      data: fc.oneof(
        fc.uint8Array({ maxLength: 3000 }),
        fc.string({ maxLength: 3000 }).map((s) => Buffer.from(s.repeat(3), "utf8"))
      ),
      modified: fc.date({ min: new Date("1980-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
    })
    fc.assert(fc.property(fc.uniqueArray(entry, { selector: (e) => e.name, minLength: 1, maxLength: 4 }), (entries) => {
      const files = extract(zip(entries))
      expect(Object.keys(files).sort()).toEqual(entries.map((e) => e.name).sort())
      for (const e of entries) expect(Buffer.compare(files[e.name]!, Buffer.from(e.data))).toBe(0)
    }), { numRuns: 15 })
  })

  it("keeps the time to two seconds (MS-DOS), as unzip lists it", () => {
    const archive = zip([{ name: "x.csv", data: Buffer.from("a,b\r\n"), modified: new Date("2024-03-01T16:47:57Z") }])
    const dir = mkdtempSync(join(tmpdir(), "pinledger-zip-"))
    try {
      writeFileSync(join(dir, "a.zip"), archive)
      expect(execFileSync("unzip", ["-Z", "-T", join(dir, "a.zip")]).toString()).toContain("20240301.164756 x.csv")
      expect(execFileSync("unzip", ["-p", join(dir, "a.zip")]).toString()).toBe("a,b\r\n")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
