import { Schema } from "effect"
import { COMMAND_LIMIT } from "./Command.ts"

/**
 * One Blynk frame (protocol.md §1.1). RESPONSE (command 0) has no body: its length slot carries
 * the status, so it is its own case rather than a Message with an empty body. `_tag` is the
 * discriminant because `command: 0` alone does not narrow against `command: number`.
 */
export interface Message {
  readonly _tag: "Message"
  /** 1..99; 0 is always a Response. */
  readonly command: number
  /** u16. The sender chooses it; answers and forwards copy it, so wrapping is the caller's job. */
  readonly id: number
  readonly body: Uint8Array
}

export interface Response {
  readonly _tag: "Response"
  readonly command: 0
  readonly id: number
  readonly status: number
}

export type Frame = Message | Response

export const HARDWARE_HEADER = 5
export const APP_HEADER = 7
export const DASHWS_HEADER = 3
/** The hardware length slot is a u16. */
export const HARDWARE_MAX_BODY = 0xffff
/** What the app-side decoder of the legacy server and clients accepts (§1.1). */
export const APP_MAX_BODY = 10_000_000

export type FrameErrorReason =
  | "CommandOutOfRange"
  | "IdOutOfRange"
  | "StatusOutOfRange"
  | "BodyTooLarge"
  | "NegativeLength"
  | "Truncated"

/** A frame that cannot be written, or a byte stream that cannot be read; the connection must close. */
export class FrameError extends Schema.TaggedError<FrameError>()("FrameError", {
  reason: Schema.Literals([
    "CommandOutOfRange",
    "IdOutOfRange",
    "StatusOutOfRange",
    "BodyTooLarge",
    "NegativeLength",
    "Truncated"
  ]),
  detail: Schema.String
}) {
  override get message() {
    return `bad Blynk frame (${this.reason}): ${this.detail}`
  }
}

const EMPTY = new Uint8Array(0)

export const message = (command: number, id: number, body: Uint8Array = EMPTY): Message => ({
  _tag: "Message",
  command,
  id,
  body
})

export const response = (id: number, status: number): Response => ({ _tag: "Response", command: 0, id, status })

const encoder = new TextEncoder()
// fatal:false because the legacy server decodes with Java's replacing decoder: a malformed byte
// becomes U+FFFD and the message is still processed. ignoreBOM keeps a leading U+FEFF as data,
// as Java does, instead of silently dropping it.
const decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true })

/** A message whose body is the UTF-8 of the fields joined by NUL (no trailing NUL). */
export const fromFields = (command: number, id: number, fields: ReadonlyArray<string>): Message =>
  message(command, id, encoder.encode(fields.join("\0")))

/** The body as text; malformed UTF-8 becomes U+FFFD, never an exception. */
export const bodyText = (body: Uint8Array): string => decoder.decode(body)

/** The NUL-separated fields of a body. An empty body has no fields (not one empty field). */
export const bodyFields = (body: Uint8Array): Array<string> => body.length === 0 ? [] : bodyText(body).split("\0")

const isU = (n: number, max: number) => Number.isInteger(n) && n >= 0 && n <= max

const checkHeader = (frame: Frame, statusMax: number, bodyMax: number): FrameError | undefined => {
  if (!isU(frame.id, 0xffff)) return new FrameError({ reason: "IdOutOfRange", detail: `id ${frame.id}` })
  if (frame._tag === "Response") {
    return isU(frame.status, statusMax)
      ? undefined
      : new FrameError({ reason: "StatusOutOfRange", detail: `status ${frame.status}` })
  }
  if (!Number.isInteger(frame.command) || frame.command < 1 || frame.command >= COMMAND_LIMIT) {
    return new FrameError({ reason: "CommandOutOfRange", detail: `command ${frame.command}` })
  }
  return frame.body.length > bodyMax
    ? new FrameError({ reason: "BodyTooLarge", detail: `${frame.body.length} bytes, at most ${bodyMax}` })
    : undefined
}

// One allocation per frame so that header and body go out in a single write: the C++ library
// drops the link when a body is not in the same read as its header (§9.6).
const withHeader = (frame: Frame, headerSize: number, bodySize: number): Buffer => {
  const out = Buffer.allocUnsafe(headerSize + bodySize)
  out[0] = frame.command
  out[1] = frame.id >>> 8
  out[2] = frame.id & 0xff
  return out
}

/** The two framings whose length slot (u16 or u32) holds the body length, or a response's status. */
const encodeLengthPrefixed = (frame: Frame, header: number, maxBody: number): Buffer | FrameError => {
  const error = checkHeader(frame, header === HARDWARE_HEADER ? 0xffff : 0xffffffff, maxBody)
  if (error) return error
  const value = frame._tag === "Response" ? frame.status : frame.body.length
  const out = withHeader(frame, header, frame._tag === "Response" ? 0 : frame.body.length)
  if (header === HARDWARE_HEADER) out.writeUInt16BE(value, 3)
  else out.writeUInt32BE(value, 3)
  if (frame._tag === "Message") out.set(frame.body, header)
  return out
}

export const encodeHardware = (frame: Frame): Buffer | FrameError =>
  encodeLengthPrefixed(frame, HARDWARE_HEADER, HARDWARE_MAX_BODY)

/** Bodies over APP_MAX_BODY are refused here because the receiving app would close the connection. */
export const encodeApp = (frame: Frame): Buffer | FrameError => encodeLengthPrefixed(frame, APP_HEADER, APP_MAX_BODY)

/** `/dashws`: the WebSocket message delimits the frame, so there is no length; a response adds a u32 status. */
export const encodeDashWs = (frame: Frame): Buffer | FrameError => {
  const error = checkHeader(frame, 0xffffffff, APP_MAX_BODY)
  if (error) return error
  if (frame._tag === "Response") {
    const out = withHeader(frame, DASHWS_HEADER, 4)
    out.writeUInt32BE(frame.status, DASHWS_HEADER)
    return out
  }
  const out = withHeader(frame, DASHWS_HEADER, frame.body.length)
  out.set(frame.body, DASHWS_HEADER)
  return out
}
