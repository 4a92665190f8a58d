import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { fromFields, message, response } from "../../../src/adapters/blynk/Frame.ts"

/** Shared by the encoder and decoder tests (not a test file itself, so nothing runs twice). */
export const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ""), "hex")
export const token = "abcdefghijklmnopqrstuvwxyz012345"

/** Every row of protocol.md §1.5: framing, frame, exact bytes. */
export const workedExamples = [
  ["hardware", "device logs in", fromFields(Command.HARDWARE_LOGIN, 1, [token]), Buffer.concat([hex("1D 00 01 00 20"), Buffer.from(token)])],
  ["hardware", "server OK to the device", response(1, Status.OK), hex("00 00 01 00 C8")],
  ["hardware", "device writes V1 = 100", fromFields(Command.HARDWARE, 2, ["vw", "1", "100"]), hex("14 00 02 00 08 76 77 00 31 00 31 30 30")],
  [
    "app",
    "app receives the write",
    fromFields(Command.HARDWARE, 2, ["1-0", "vw", "1", "100"]),
    hex("14 00 02 00 00 00 0C 31 2D 30 00 76 77 00 31 00 31 30 30")
  ],
  ["app", "server OK to the app", response(5, Status.OK), hex("00 00 05 00 00 00 C8")],
  ["app", "DEVICE_OFFLINE to the app", fromFields(Command.DEVICE_OFFLINE, 0, ["1-0"]), hex("47 00 00 00 00 00 03 31 2D 30")],
  ["hardware", "device PING", message(Command.PING, 7), hex("06 00 07 00 00")],
  ["hardware", "PING answer", response(7, Status.OK), hex("00 00 07 00 C8")]
] as const
