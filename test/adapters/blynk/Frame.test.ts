import { describe, expect, it } from "@effect/vitest"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import {
  bodyFields,
  bodyText,
  encodeApp,
  encodeDashWs,
  encodeHardware,
  FrameError,
  fromFields,
  message,
  response
} from "../../../src/adapters/blynk/Frame.ts"
import { hex, workedExamples } from "./workedExamples.ts"

const reasonOf = (result: Buffer | FrameError) => result instanceof FrameError ? result.reason : "encoded"

describe("frame encoding", () => {
  it.each(workedExamples)("%s: %s (protocol.md §1.5)", (framing, _, frame, bytes) => {
    const encoded = framing === "hardware" ? encodeHardware(frame) : encodeApp(frame)
    expect(Buffer.isBuffer(encoded)).toBe(true)
    expect((encoded as Buffer).toString("hex")).toBe(bytes.toString("hex"))
  })

  it("/dashws: 3-byte header, body to the end, a response carries a u32 status", () => {
    expect(encodeDashWs(fromFields(Command.HARDWARE, 2, ["1-0", "vw", "1", "100"]))).toEqual(
      hex("14 00 02 31 2D 30 00 76 77 00 31 00 31 30 30")
    )
    expect(encodeDashWs(response(5, Status.OK))).toEqual(hex("00 00 05 00 00 00 C8"))
    expect(encodeDashWs(message(Command.PING, 0x1234))).toEqual(hex("06 12 34"))
  })

  it("a hardware body over 65535 bytes is an error value, the largest that fits is encoded", () => {
    const tooLarge = encodeHardware(message(Command.HARDWARE, 1, new Uint8Array(65536)))
    expect(tooLarge).toBeInstanceOf(FrameError)
    expect(reasonOf(tooLarge)).toBe("BodyTooLarge")
    const largest = encodeHardware(message(Command.HARDWARE, 1, new Uint8Array(65535).fill(7)))
    expect((largest as Buffer).subarray(0, 5)).toEqual(hex("14 00 01 FF FF"))
    expect((largest as Buffer).length).toBe(65540)
  })

  it("an app body the app would refuse (over 10 000 000 bytes) is an error value", () => {
    expect(reasonOf(encodeApp(message(Command.LOAD_PROFILE_GZIPPED, 1, new Uint8Array(10_000_001))))).toBe("BodyTooLarge")
    expect(reasonOf(encodeApp(message(Command.LOAD_PROFILE_GZIPPED, 1, new Uint8Array(10_000_000))))).toBe("encoded")
  })

  it("headers that cannot be represented are error values, never throws", () => {
    for (const encode of [encodeHardware, encodeApp, encodeDashWs]) {
      expect(reasonOf(encode(message(0, 1, new Uint8Array(1))))).toBe("CommandOutOfRange")
      expect(reasonOf(encode(message(100, 1)))).toBe("CommandOutOfRange")
      expect(reasonOf(encode(message(1.5, 1)))).toBe("CommandOutOfRange")
      expect(reasonOf(encode(message(Command.PING, 65536)))).toBe("IdOutOfRange")
      expect(reasonOf(encode(response(-1, Status.OK)))).toBe("IdOutOfRange")
      expect(reasonOf(encode(response(1, -1)))).toBe("StatusOutOfRange")
    }
    expect(reasonOf(encodeHardware(response(1, 65536)))).toBe("StatusOutOfRange")
    expect(encodeApp(response(1, 65536))).toEqual(hex("00 00 01 00 01 00 00"))
  })
})

describe("body fields", () => {
  it("are joined and split on NUL, UTF-8 encoded", () => {
    const frame = fromFields(Command.HARDWARE, 1, ["vw", "1", "héllo ✓"])
    expect(bodyFields(frame.body)).toEqual(["vw", "1", "héllo ✓"])
    expect(bodyFields(fromFields(Command.HARDWARE, 1, ["a", "", "b"]).body)).toEqual(["a", "", "b"])
  })

  it("an empty body has no fields", () => {
    expect(bodyFields(new Uint8Array(0))).toEqual([])
    expect(bodyFields(fromFields(Command.PING, 1, []).body)).toEqual([])
  })

  it("malformed UTF-8 becomes U+FFFD instead of throwing; a leading BOM is kept as data", () => {
    expect(bodyText(hex("76 77 00 31 00 FF C3"))).toBe("vw\u00001\u0000\uFFFD\uFFFD")
    expect(bodyText(hex("EF BB BF 61"))).toBe("\uFEFFa")
  })
})
