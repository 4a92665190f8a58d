import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import {
  encodeApp,
  encodeDashWs,
  encodeHardware,
  type Frame,
  FrameError,
  fromFields,
  message,
  response
} from "../../../src/adapters/blynk/Frame.ts"
import { appDecoder, decodeDashWs, type FrameDecoder, hardwareDecoder } from "../../../src/adapters/blynk/FrameDecoder.ts"
import { hex, workedExamples } from "./workedExamples.ts"

const framings = {
  hardware: { decoder: hardwareDecoder, encode: encodeHardware, maxBody: 0xffff, maxStatus: 0xffff },
  app: { decoder: appDecoder, encode: encodeApp, maxBody: 10_000_000, maxStatus: 0xffffffff }
} as const
type Framing = keyof typeof framings

const encodeAll = (framing: Framing, frames: ReadonlyArray<Frame>): Buffer =>
  Buffer.concat(frames.map((frame) => {
    const bytes = framings[framing].encode(frame)
    if (bytes instanceof FrameError) throw bytes
    return bytes
  }))

/** Cuts bytes into chunks whose sizes cycle through `sizes`. */
const chunked = (bytes: Uint8Array, sizes: ReadonlyArray<number>): Array<Uint8Array> => {
  const chunks: Array<Uint8Array> = []
  for (let pos = 0, i = 0; pos < bytes.length; i++) {
    const size = sizes[i % sizes.length]!
    chunks.push(bytes.subarray(pos, pos + size))
    pos += size
  }
  return chunks
}

interface Outcome {
  readonly frames: Array<Frame>
  readonly errors: Array<FrameError>
}

const feed = (decoder: FrameDecoder, chunks: ReadonlyArray<Uint8Array>): Outcome => {
  const frames: Array<Frame> = []
  const errors: Array<FrameError> = []
  for (const chunk of chunks) {
    const result = decoder.push(chunk)
    frames.push(...result.frames)
    if (result.error) errors.push(result.error)
  }
  return { frames, errors }
}

// Properties compare with this instead of expect().toEqual: vitest renders a diff of every failing
// candidate, which makes shrinking a 60 KB body take minutes.
const sameFrame = (a: Frame | undefined, b: Frame | undefined): boolean =>
  a !== undefined && b !== undefined && a._tag === b._tag && a.command === b.command && a.id === b.id &&
  (a._tag === "Response" ? a.status === (b as typeof a).status : Buffer.compare(a.body, (b as typeof a).body) === 0)
const sameFrames = (a: ReadonlyArray<Frame>, b: ReadonlyArray<Frame>): boolean =>
  a.length === b.length && a.every((frame, i) => sameFrame(frame, b[i]))

describe("frame decoding: worked examples (protocol.md §1.5)", () => {
  it.each(workedExamples)("%s: %s", (framing, _, frame, bytes) => {
    const result = framings[framing].decoder().push(bytes)
    expect(result.error).toBeUndefined()
    expect(result.frames).toEqual([{ ...frame, ...(frame._tag === "Message" ? { body: new Uint8Array(frame.body) } : {}) }])
  })

  for (const framing of ["hardware", "app"] as const) {
    const examples = workedExamples.filter(([f]) => f === framing)
    const stream = Buffer.concat(examples.map(([, , , bytes]) => bytes))
    const expected = examples.map(([, , frame]) => frame)

    it(`${framing}: all examples coalesced in one chunk, then split at every byte boundary, then one byte at a time`, () => {
      expect(feed(framings[framing].decoder(), [stream])).toEqual({ frames: expected, errors: [] })
      for (let cut = 0; cut <= stream.length; cut++) {
        const decoder = framings[framing].decoder()
        expect(feed(decoder, [stream.subarray(0, cut), stream.subarray(cut)])).toEqual({ frames: expected, errors: [] })
        expect(decoder.buffered).toBe(0)
      }
      expect(feed(framings[framing].decoder(), chunked(stream, [1]))).toEqual({ frames: expected, errors: [] })
    })
  }

  it("/dashws: one message, one frame", () => {
    expect(decodeDashWs(hex("14 00 02 31 2D 30 00 76 77 00 31 00 31 30 30"))).toEqual(
      fromFields(Command.HARDWARE, 2, ["1-0", "vw", "1", "100"])
    )
    expect(decodeDashWs(hex("00 00 05 00 00 00 C8"))).toEqual(response(5, Status.OK))
    expect(decodeDashWs(hex("06 00 09"))).toEqual(message(Command.PING, 9, new Uint8Array(0)))
  })
})

describe("frame decoding: failures", () => {
  const reason = (result: { readonly error?: FrameError } | Frame | FrameError) =>
    result instanceof FrameError ? result.reason : "error" in result ? result.error?.reason : undefined

  it("a command code of 100 or more fails, after the frames before it, and the decoder then refuses input", () => {
    const decoder = hardwareDecoder()
    const result = decoder.push(Buffer.concat([hex("06 00 01 00 00"), hex("64 00 02 00 00"), hex("06 00 03 00 00")]))
    expect(result.frames).toEqual([message(Command.PING, 1, new Uint8Array(0))])
    expect(reason(result)).toBe("CommandOutOfRange")
    const after = decoder.push(hex("06 00 04 00 00"))
    expect(after).toEqual({ frames: [], error: result.error })
    expect(decoder.error).toBe(result.error)
  })

  it("a length over the limit fails as soon as the header is complete, before any body arrives", () => {
    expect(reason(hardwareDecoder({ maxBody: 256 }).push(hex("14 00 01 01 01")))).toBe("BodyTooLarge")
    expect(reason(hardwareDecoder({ maxBody: 256 }).push(hex("14 00 01 01 00")))).toBeUndefined()
    expect(reason(appDecoder().push(hex("18 00 01 00 98 96 81")))).toBe("BodyTooLarge")
    expect(reason(appDecoder().push(hex("18 00 01 00 98 96 80")))).toBeUndefined()
    expect(reason(appDecoder().push(hex("18 00 01 80 00 00 00")))).toBe("NegativeLength")
    expect(reason(appDecoder().push(hex("18 00 01 FF FF FF FF")))).toBe("NegativeLength")
    // The length slot of a response is a status, not a length.
    expect(appDecoder().push(hex("00 00 01 FF FF FF FF"))).toEqual({ frames: [response(1, 0xffffffff)] })
  })

  it("hardware maxBody cannot exceed what a u16 can announce", () => {
    const decoder = hardwareDecoder({ maxBody: 1_000_000 })
    const body = new Uint8Array(0xffff).fill(1)
    expect(decoder.push(encodeAll("hardware", [message(Command.HARDWARE, 1, body)])).frames).toHaveLength(1)
  })

  it("end of stream inside a frame is Truncated; at a frame boundary it is fine", () => {
    const decoder = appDecoder()
    decoder.push(hex("14 00 02 00 00 00 0C 31"))
    expect(decoder.buffered).toBe(8)
    expect(decoder.end()?.reason).toBe("Truncated")
    const clean = appDecoder()
    clean.push(hex("00 00 05 00 00 00 C8"))
    expect(clean.end()).toBeUndefined()
  })

  it("/dashws: short messages and codes of 100 or more are errors", () => {
    expect(reason(decodeDashWs(hex("14 00")))).toBe("Truncated")
    expect(reason(decodeDashWs(hex("00 00 05 00 00 C8")))).toBe("Truncated")
    expect(reason(decodeDashWs(hex("64 00 01 31")))).toBe("CommandOutOfRange")
    expect(reason(decodeDashWs(hex("14 00 01 31 32"), { maxBody: 1 }))).toBe("BodyTooLarge")
  })

  it("a large body arriving one byte at a time is reassembled", () => {
    const body = new Uint8Array(200_000).map((_, i) => i % 251)
    const bytes = encodeAll("app", [message(Command.LOAD_PROFILE_GZIPPED, 3, body), response(3, Status.OK)])
    const outcome = feed(appDecoder(), chunked(bytes, [1]))
    expect(outcome.errors).toEqual([])
    expect(outcome.frames).toEqual([message(Command.LOAD_PROFILE_GZIPPED, 3, body), response(3, Status.OK)])
  })
})

const chunkSizes = fc.oneof(
  fc.constant([1]),
  fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 12 }),
  fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 4 })
)

const filled = (length: number, seed: number): Uint8Array => {
  const bytes = new Uint8Array(length)
  for (let i = 0, x = seed; i < length; i++) bytes[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24
  return bytes
}

const frameArbitrary = (framing: Framing): fc.Arbitrary<Frame> => {
  const id = fc.integer({ min: 0, max: 0xffff })
  const body = fc.oneof(
    { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 20 },
    { arbitrary: fc.uint8Array({ maxLength: 2000 }), weight: 4 },
    // Near the u16 limit. Filled from a seed so that shrinking touches two numbers, not 60 000 bytes.
    {
      arbitrary: fc.tuple(fc.integer({ min: 60_000, max: Math.min(70_000, framings[framing].maxBody) }), fc.integer({ min: 1 }))
        .map(([length, seed]) => filled(length, seed)),
      weight: 1
    }
  )
  return fc.oneof(
    { arbitrary: fc.tuple(fc.integer({ min: 1, max: 99 }), id, body).map(([c, i, b]) => message(c, i, b)), weight: 4 },
    { arbitrary: fc.tuple(id, fc.integer({ min: 0, max: framings[framing].maxStatus })).map(([i, s]) => response(i, s)), weight: 1 }
  )
}

describe.each(["hardware", "app"] as const)("frame decoding properties, %s framing", (framing) => {
  it("encoded frames come back exactly, however the stream is chunked", () => {
    fc.assert(
      fc.property(fc.array(frameArbitrary(framing), { maxLength: 20 }), chunkSizes, (frames, sizes) => {
        const decoder = framings[framing].decoder()
        const outcome = feed(decoder, chunked(encodeAll(framing, frames), sizes))
        return outcome.errors.length === 0 && sameFrames(outcome.frames, frames) && decoder.buffered === 0
      }),
      { numRuns: 150 }
    )
  })

  it("garbage never throws, yields at most one error, and chunking does not change the outcome", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), chunkSizes, (bytes, sizes) => {
        const whole = feed(framings[framing].decoder({ maxBody: 300 }), [bytes])
        const split = feed(framings[framing].decoder({ maxBody: 300 }), chunked(bytes, sizes))
        return whole.errors.length <= 1 && sameFrames(split.frames, whole.frames) &&
          new Set(split.errors).size === whole.errors.length && split.errors[0]?.reason === whole.errors[0]?.reason
      }),
      { numRuns: 300 }
    )
  })

  it("a header announcing more than maxBody fails, even with no body sent", () => {
    const limit = framing === "hardware" ? 0xfffe : 10_000_000
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: limit }).chain((maxBody) =>
          fc.tuple(
            fc.constant(maxBody),
            fc.integer({ min: maxBody + 1, max: framing === "hardware" ? 0xffff : 0x7fffffff }),
            fc.integer({ min: 1, max: 99 })
          )
        ),
        chunkSizes,
        ([maxBody, length, command], sizes) => {
          const header = framing === "hardware" ? Buffer.alloc(5) : Buffer.alloc(7)
          header[0] = command
          if (framing === "hardware") header.writeUInt16BE(length, 3)
          else header.writeUInt32BE(length, 3)
          const outcome = feed(framings[framing].decoder({ maxBody }), chunked(header, sizes))
          expect(outcome.frames).toEqual([])
          expect(outcome.errors.map((e) => e.reason)).toEqual(["BodyTooLarge"])
        }
      ),
      { numRuns: 200 }
    )
  })
})

describe("/dashws properties", () => {
  it("a message round-trips through encodeDashWs and decodeDashWs; garbage never throws", () => {
    fc.assert(
      fc.property(frameArbitrary("app"), (frame) => {
        const bytes = encodeDashWs(frame)
        return Buffer.isBuffer(bytes) && sameFrame(decodeDashWs(bytes) as Frame, frame)
      })
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const result = decodeDashWs(bytes)
        expect(result instanceof FrameError || result._tag === "Message" || result._tag === "Response").toBe(true)
      })
    )
  })
})
