import { crc32, deflateRawSync } from "node:zlib"

/**
 * A ZIP archive (PKWARE APPNOTE 6.3: local headers, central directory, end record; no ZIP64, no
 * encryption), for the Blynk IoT history export: `data/get` links to a ZIP with one CSV inside.
 * Each entry is deflated, or stored when deflating would not make it smaller.
 */

export interface ZipEntry {
  /** The file's name in the archive (UTF-8, `/` between folders). */
  readonly name: string
  readonly data: Uint8Array
  /** Its modification time (written as UTC: ZIP keeps a time without a zone). */
  readonly modified: Date
}

const DEFLATE = 8
const STORE = 0
/** General purpose flag bit 11: the name is UTF-8. */
const UTF8 = 0x0800
/** 2.0: deflate. */
const VERSION = 20
const LIMIT = 0xffff_ffff

/** MS-DOS time and date (2-second resolution, years 1980–2107). */
const dosTime = (d: Date) => {
  const year = Math.min(Math.max(d.getUTCFullYear(), 1980), 2107)
  const time = (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | Math.floor(d.getUTCSeconds() / 2)
  const date = ((year - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate()
  return { time, date }
}

/** The archive's bytes. Throws if an entry or the archive would need ZIP64 (4 GiB), which no export comes near. */
export const zip = (entries: ReadonlyArray<ZipEntry>): Uint8Array => {
  const parts: Array<Uint8Array> = []
  const central: Array<Uint8Array> = []
  let offset = 0
  for (const entry of entries) {
    const name = Buffer.from(entry.name, "utf8")
    const deflated = deflateRawSync(entry.data)
    const method = deflated.length < entry.data.length ? DEFLATE : STORE
    const body = method === DEFLATE ? deflated : entry.data
    const crc = crc32(entry.data)
    const { time, date } = dosTime(entry.modified)
    if (entry.data.length > LIMIT || offset > LIMIT || entries.length > 0xffff) throw new Error("zip: too large for a ZIP without ZIP64")

    const local = Buffer.alloc(30 + name.length)
    local.writeUInt32LE(0x04034b50, 0)
    local.writeUInt16LE(VERSION, 4)
    local.writeUInt16LE(UTF8, 6)
    local.writeUInt16LE(method, 8)
    local.writeUInt16LE(time, 10)
    local.writeUInt16LE(date, 12)
    local.writeUInt32LE(crc, 14)
    local.writeUInt32LE(body.length, 18)
    local.writeUInt32LE(entry.data.length, 22)
    local.writeUInt16LE(name.length, 26)
    local.writeUInt16LE(0, 28)
    name.copy(local, 30)

    const header = Buffer.alloc(46 + name.length)
    header.writeUInt32LE(0x02014b50, 0)
    header.writeUInt16LE(VERSION, 4)
    header.writeUInt16LE(VERSION, 6)
    header.writeUInt16LE(UTF8, 8)
    header.writeUInt16LE(method, 10)
    header.writeUInt16LE(time, 12)
    header.writeUInt16LE(date, 14)
    header.writeUInt32LE(crc, 16)
    header.writeUInt32LE(body.length, 20)
    header.writeUInt32LE(entry.data.length, 24)
    header.writeUInt16LE(name.length, 28)
    // Extra field, comment, disk number, internal and external attributes: none.
    header.writeUInt32LE(offset, 42)
    name.copy(header, 46)

    parts.push(local, body)
    central.push(header)
    offset += local.length + body.length
  }
  const directorySize = central.reduce((n, h) => n + h.length, 0)
  if (offset + directorySize > LIMIT) throw new Error("zip: too large for a ZIP without ZIP64")
  const end = Buffer.alloc(22)
  end.writeUInt32LE(0x06054b50, 0)
  end.writeUInt16LE(entries.length, 8)
  end.writeUInt16LE(entries.length, 10)
  end.writeUInt32LE(directorySize, 12)
  end.writeUInt32LE(offset, 16)
  return Buffer.concat([...parts, ...central, end])
}
