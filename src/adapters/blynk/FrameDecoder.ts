import { COMMAND_LIMIT } from "./Command.ts"
import {
  APP_HEADER,
  APP_MAX_BODY,
  DASHWS_HEADER,
  type Frame,
  FrameError,
  HARDWARE_HEADER,
  HARDWARE_MAX_BODY,
  message,
  response
} from "./Frame.ts"

/** Frames completed by one chunk; `error` is set once and from then on every push returns it. */
export interface DecodeResult {
  readonly frames: ReadonlyArray<Frame>
  readonly error?: FrameError
}

export interface DecoderOptions {
  /** Largest accepted body in bytes; a header announcing more fails before its body is read. */
  readonly maxBody?: number
}

const EMPTY = new Uint8Array(0)
// An idle connection should not pin the memory of one large frame it once received.
const RETAINED_CAPACITY = 64 * 1024

const copyOf = (bytes: Uint8Array, from: number, to: number): Uint8Array => {
  // A fresh array, so a frame never aliases a socket chunk or this decoder's buffer.
  const out = new Uint8Array(to - from)
  out.set(bytes.subarray(from, to))
  return out
}

/**
 * Streaming decoder for the two length-prefixed framings (§1.1). Bytes that do not yet form a
 * whole frame wait in one growable buffer: each byte is copied into it at most once and moved
 * at most once more, so many tiny chunks cost linear, not quadratic, time. Never throws.
 */
export class FrameDecoder {
  readonly #headerSize: number
  readonly #maxBody: number
  #buf: Uint8Array = EMPTY
  #start = 0
  #end = 0
  #error: FrameError | undefined = undefined

  constructor(headerSize: typeof HARDWARE_HEADER | typeof APP_HEADER, maxBody: number) {
    this.#headerSize = headerSize
    this.#maxBody = maxBody
  }

  /** The failure that stopped this decoder, if any. */
  get error(): FrameError | undefined {
    return this.#error
  }

  /** Bytes received that are not yet part of a complete frame. */
  get buffered(): number {
    return this.#end - this.#start
  }

  push(chunk: Uint8Array): DecodeResult {
    if (this.#error) return { frames: [], error: this.#error }
    const frames: Array<Frame> = []
    // Common case: nothing pending, so whole frames are read straight from the chunk.
    const direct = this.#start === this.#end
    if (!direct) this.#append(chunk)
    const data = direct ? chunk : this.#buf
    let pos = direct ? 0 : this.#start
    const end = direct ? chunk.length : this.#end
    const header = this.#headerSize
    while (end - pos >= header) {
      const command = data[pos]!
      const id = (data[pos + 1]! << 8) | data[pos + 2]!
      const length = header === APP_HEADER
        ? (data[pos + 3]! * 0x1000000) + ((data[pos + 4]! << 16) | (data[pos + 5]! << 8) | data[pos + 6]!)
        : (data[pos + 3]! << 8) | data[pos + 4]!
      if (command >= COMMAND_LIMIT) {
        return this.#fail(frames, "CommandOutOfRange", `command ${command} (id ${id})`)
      }
      if (command === 0) {
        frames.push(response(id, length))
        pos += header
        continue
      }
      // The legacy decoders read the app length as a signed int.
      if (length > 0x7fffffff) return this.#fail(frames, "NegativeLength", `length ${length - 0x100000000}`)
      if (length > this.#maxBody) {
        return this.#fail(frames, "BodyTooLarge", `command ${command} announces ${length} bytes, at most ${this.#maxBody}`)
      }
      if (end - pos - header < length) break
      frames.push(message(command, id, copyOf(data, pos + header, pos + header + length)))
      pos += header + length
    }
    if (direct) {
      if (pos < end) this.#append(chunk.subarray(pos))
    } else {
      this.#start = pos
      if (pos === this.#end) this.#clear()
    }
    return { frames }
  }

  /** At end of stream: a Truncated error if a frame was cut off, else the earlier error if any. */
  end(): FrameError | undefined {
    if (this.#error || this.buffered === 0) return this.#error
    return this.#fail([], "Truncated", `${this.buffered} bytes of an incomplete frame`).error
  }

  #fail(frames: Array<Frame>, reason: FrameError["reason"], detail: string): DecodeResult & { error: FrameError } {
    const error = new FrameError({ reason, detail })
    this.#error = error
    this.#buf = EMPTY
    this.#start = this.#end = 0
    return { frames, error }
  }

  #clear() {
    this.#start = this.#end = 0
    if (this.#buf.length > RETAINED_CAPACITY) this.#buf = EMPTY
  }

  #append(bytes: Uint8Array) {
    const unread = this.#end - this.#start
    const capacity = this.#buf.length
    if (this.#end + bytes.length > capacity) {
      // Only the one incomplete frame is ever unread, and once moved to the front it stays there
      // until it completes, so compaction moves each byte at most once.
      if (unread + bytes.length <= capacity) {
        this.#buf.copyWithin(0, this.#start, this.#end)
      } else {
        const grown = new Uint8Array(Math.max(unread + bytes.length, capacity * 2, 256))
        grown.set(this.#buf.subarray(this.#start, this.#end))
        this.#buf = grown
      }
      this.#start = 0
      this.#end = unread
    }
    this.#buf.set(bytes, this.#end)
    this.#end += bytes.length
  }
}

/** Devices: 5-byte header, u16 length. `maxBody` is capped at 65535, what a u16 can announce. */
export const hardwareDecoder = (options: DecoderOptions = {}): FrameDecoder =>
  new FrameDecoder(HARDWARE_HEADER, Math.min(options.maxBody ?? HARDWARE_MAX_BODY, HARDWARE_MAX_BODY))

/** Apps: 7-byte header, u32 length; 10 000 000 bytes at most unless configured otherwise. */
export const appDecoder = (options: DecoderOptions = {}): FrameDecoder =>
  new FrameDecoder(APP_HEADER, options.maxBody ?? APP_MAX_BODY)

/**
 * `/dashws`: one binary WebSocket message is one frame, so there is nothing to reassemble.
 * Bytes after a response's u32 status are ignored, as a length-delimited reader would.
 */
export const decodeDashWs = (bytes: Uint8Array, options: DecoderOptions = {}): Frame | FrameError => {
  if (bytes.length < DASHWS_HEADER) {
    return new FrameError({ reason: "Truncated", detail: `${bytes.length}-byte message, header is ${DASHWS_HEADER}` })
  }
  const command = bytes[0]!
  const id = (bytes[1]! << 8) | bytes[2]!
  if (command >= COMMAND_LIMIT) return new FrameError({ reason: "CommandOutOfRange", detail: `command ${command} (id ${id})` })
  if (command === 0) {
    if (bytes.length < DASHWS_HEADER + 4) {
      return new FrameError({ reason: "Truncated", detail: `response of ${bytes.length} bytes has no u32 status` })
    }
    return response(id, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readUInt32BE(DASHWS_HEADER))
  }
  const maxBody = options.maxBody ?? APP_MAX_BODY
  if (bytes.length - DASHWS_HEADER > maxBody) {
    return new FrameError({ reason: "BodyTooLarge", detail: `${bytes.length - DASHWS_HEADER} bytes, at most ${maxBody}` })
  }
  return message(command, id, copyOf(bytes, DASHWS_HEADER, bytes.length))
}
