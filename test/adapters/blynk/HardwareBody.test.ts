import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { bodyText, fromFields } from "../../../src/adapters/blynk/Frame.ts"
import {
  formatHardware,
  formatTarget,
  type HardwareBody,
  IllegalCommand,
  parseAppHardware,
  parseHardware,
  parseInternal,
  parseTarget
} from "../../../src/adapters/blynk/HardwareBody.ts"
import { hex } from "./workedExamples.ts"

const text = (fields: ReadonlyArray<string>) => fields.join("\0")
const illegal = (result: unknown) => result instanceof IllegalCommand

describe("HARDWARE body, device side", () => {
  it("parses the worked example write (protocol.md §1.5)", () => {
    const body = bodyText(hex("76 77 00 31 00 31 30 30"))
    expect(parseHardware(body)).toEqual({ _tag: "Write", pinType: "v", pin: 1, values: ["100"] })
  })

  it("keeps every value of a multi-value write, empty ones included", () => {
    expect(parseHardware(text(["vw", "1", "a", "b", "c"]))).toEqual({ _tag: "Write", pinType: "v", pin: 1, values: ["a", "b", "c"] })
    expect(parseHardware(text(["vw", "1", "", "b"]))).toEqual({ _tag: "Write", pinType: "v", pin: 1, values: ["", "b"] })
  })

  it("pin type is case-insensitive, the pin decimal 0-255", () => {
    expect(parseHardware(text(["Vw", "255", "x"]))).toEqual({ _tag: "Write", pinType: "v", pin: 255, values: ["x"] })
    expect(parseHardware(text(["DW", "0", "1"]))).toMatchObject({ _tag: "Other" })
    expect(parseHardware(text(["Dw", "0", "1"]))).toMatchObject({ _tag: "Write", pinType: "d", pin: 0 })
    expect(parseHardware(text(["aw", "007", "1"]))).toMatchObject({ _tag: "Write", pinType: "a", pin: 7 })
    expect(parseHardware(text(["ar", "13"]))).toEqual({ _tag: "Read", pinType: "a", pin: 13 })
  })

  it("parses pin modes and the device selector", () => {
    expect(parseHardware(text(["pm", "1", "out", "2", "in", "30", "pu"]))).toEqual({
      _tag: "PinMode",
      pairs: [[1, "out"], [2, "in"], [30, "pu"]]
    })
    expect(parseHardware(text(["vu", "200000", "3"]))).toEqual({ _tag: "DeviceSelector", selectorId: 200000, deviceId: 3 })
  })

  it("ops the server does not act on are Other, not errors (the legacy server ignores them)", () => {
    expect(parseHardware(text(["vm", "1", "a", "b"]))).toEqual({ _tag: "Other", op: "vm" })
    expect(parseHardware(text(["xr", "1"]))).toEqual({ _tag: "Other", op: "xr" })
    expect(parseHardware(text(["vwx", "1", "2"]))).toEqual({ _tag: "Other", op: "vwx" })
    // Reads and pin modes are not acted on when received, so a malformed one is ignored, not refused.
    expect(parseHardware(text(["vr", "1000"]))).toEqual({ _tag: "Other", op: "vr" })
    expect(parseHardware(text(["pm", "1", "out", "2"]))).toEqual({ _tag: "Other", op: "pm" })
    expect(parseHardware(text(["pm", "1", "sideways"]))).toEqual({ _tag: "Other", op: "pm" })
    expect(parseHardware(text(["pm", "300", "out"]))).toEqual({ _tag: "Other", op: "pm" })
  })

  it.each([
    ["pin over 255", text(["vw", "256", "1"])],
    ["negative pin", text(["vw", "-1", "1"])],
    ["pin not a number", text(["vw", "x1", "1"])],
    ["empty pin", text(["vw", "", "1"])],
    ["signed pin", text(["vw", "+1", "1"])],
    ["pin type other than v/d/a", text(["xw", "1", "1"])],
    ["write with two fields", text(["vw", "12"])],
    ["write with an empty value", text(["vw", "12", ""])],
    ["body shorter than 4 chars", "vw1"],
    ["body shorter than 4 chars with NULs", text(["vw", ""])],
    ["empty body", ""],
    ["selector id not a number", text(["vu", "x", "1"])],
    ["selector without a device", text(["vu", "200000"])],
    ["device id over 2^31-1", text(["vu", "1", "2147483648"])]
  ])("%s is IllegalCommand (status 2)", (_, body) => {
    const result = parseHardware(body)
    expect(result).toBeInstanceOf(IllegalCommand)
    expect((result as IllegalCommand).status).toBe(Status.ILLEGAL_COMMAND)
  })
})

describe("HARDWARE body, app side", () => {
  it("parses the worked example forward (protocol.md §1.5)", () => {
    const body = bodyText(hex("31 2D 30 00 76 77 00 31 00 31 30 30"))
    expect(parseAppHardware(body)).toEqual({
      target: { dashId: 1, targetId: 0 },
      command: { _tag: "Write", pinType: "v", pin: 1, values: ["100"] }
    })
  })

  it("target prefix: dashId alone is device 0, dashId-targetId otherwise", () => {
    expect(parseTarget("7")).toEqual({ dashId: 7, targetId: 0 })
    expect(parseTarget("7-100000")).toEqual({ dashId: 7, targetId: 100000 })
    expect(parseTarget("0-2147483647")).toEqual({ dashId: 0, targetId: 2147483647 })
    expect(parseAppHardware(text(["3", "vu", "200001", "4"]))).toEqual({
      target: { dashId: 3, targetId: 0 },
      command: { _tag: "DeviceSelector", selectorId: 200001, deviceId: 4 }
    })
  })

  it.each(["", "-", "1-", "-1", "a", "1-b", "1-2-3", "1 -2", "2147483648", "1-99999999999", "+1"])(
    "target %j is IllegalCommand",
    (field) => {
      expect(parseTarget(field)).toBeInstanceOf(IllegalCommand)
      expect(parseAppHardware(text([field, "vw", "1", "1"]))).toBeInstanceOf(IllegalCommand)
    }
  )

  it("a body without a prefix, or with a bad command after it, is IllegalCommand", () => {
    expect(parseAppHardware("vw")).toBeInstanceOf(IllegalCommand)
    expect(parseAppHardware(text(["1-0", "vw", "1"]))).toBeInstanceOf(IllegalCommand)
    expect(parseAppHardware(text(["1-0", "vw", "300", "1"]))).toBeInstanceOf(IllegalCommand)
  })
})

describe("BLYNK_INTERNAL body", () => {
  it("reads the hardware info list into a record, with heartbeat and buffer size as numbers", () => {
    const body = text(["ver", "0.3.1", "h-beat", "10", "buff-in", "256", "dev", "Arduino", "cpu", "ATmega328P", "con", "W5100"])
    const parsed = parseInternal(body)
    expect(parsed).toMatchObject({ _tag: "HardwareInfo", heartbeat: 10, buffIn: 256 })
    expect(parsed._tag === "HardwareInfo" && { ...parsed.info }).toEqual({
      ver: "0.3.1",
      "h-beat": "10",
      "buff-in": "256",
      dev: "Arduino",
      cpu: "ATmega328P",
      con: "W5100"
    })
  })

  it("drops a trailing key without a value; non-numeric numbers are undefined", () => {
    const parsed = parseInternal(text(["h-beat", "often", "buff-in"]))
    expect(parsed).toMatchObject({ _tag: "HardwareInfo", heartbeat: undefined, buffIn: undefined })
    expect(parsed._tag === "HardwareInfo" && Object.keys(parsed.info)).toEqual(["h-beat"])
  })

  it("a key named __proto__ is only data", () => {
    const parsed = parseInternal(text(["ver", "1", "__proto__", "x", "constructor", "y"]))
    expect(parsed._tag === "HardwareInfo" && Object.entries(parsed.info)).toEqual([["ver", "1"], ["__proto__", "x"], ["constructor", "y"]])
    expect(parsed._tag === "HardwareInfo" && Object.getPrototypeOf(parsed.info)).toBe(null)
  })

  it("recognises rtc; other first words are Other", () => {
    expect(parseInternal("rtc")).toEqual({ _tag: "Rtc" })
    expect(parseInternal(text(["acon"]))).toEqual({ _tag: "Other", fields: ["acon"] })
    expect(parseInternal(text(["ota", "http://x"]))).toEqual({ _tag: "Other", fields: ["ota", "http://x"] })
    expect(parseInternal("")).toEqual({ _tag: "Other", fields: [""] })
  })
})

// Values cannot contain NUL (it separates fields) and a write cannot be one empty value.
const value = (unit: "binary" | "grapheme") => fc.string({ unit, maxLength: 12 }).filter((s) => !s.includes("\0"))
const pinType = fc.constantFrom("v" as const, "d" as const, "a" as const)
const pin = fc.integer({ min: 0, max: 255 })
const id = fc.integer({ min: 0, max: 2147483647 })
const validBody = (unit: "binary" | "grapheme"): fc.Arbitrary<Exclude<HardwareBody, { _tag: "Other" }>> =>
  fc.oneof(
    fc.record({
      _tag: fc.constant("Write" as const),
      pinType,
      pin,
      values: fc.array(value(unit), { minLength: 1, maxLength: 5 }).filter((v) => !(v.length === 1 && v[0] === ""))
    }),
    fc.record({ _tag: fc.constant("Read" as const), pinType, pin }),
    fc.record({
      _tag: fc.constant("PinMode" as const),
      pairs: fc.array(fc.tuple(pin, fc.constantFrom("in" as const, "out" as const, "pu" as const, "pd" as const)), { minLength: 1, maxLength: 8 })
    }),
    fc.record({ _tag: fc.constant("DeviceSelector" as const), selectorId: id, deviceId: id })
  )

// Random text with plenty of NULs and digits, so that it reaches the deeper branches.
const noisy = fc.array(fc.oneof(fc.string({ unit: "binary", maxLength: 4 }), fc.constantFrom("\0", "vw", "1", "-", "pm", "vu", "256")), {
  maxLength: 12
}).map((parts) => parts.join(""))

describe("HARDWARE body properties", () => {
  it("parse(format(x)) == x for valid bodies, as text and through UTF-8 bytes", () => {
    fc.assert(
      fc.property(validBody("binary"), (body) => {
        expect(parseHardware(text(formatHardware(body)))).toEqual(body)
      })
    )
    fc.assert(
      fc.property(validBody("grapheme"), fc.nat({ max: 2147483647 }), fc.nat({ max: 2147483647 }), (body, dashId, targetId) => {
        const target = { dashId, targetId }
        const frame = fromFields(Command.HARDWARE, 1, [formatTarget(target), ...formatHardware(body)])
        expect(parseAppHardware(bodyText(frame.body))).toEqual({ target, command: body })
      })
    )
  })

  it("random text and random bytes never throw", () => {
    fc.assert(
      fc.property(noisy, (body) => {
        for (const result of [parseHardware(body), parseAppHardware(body), parseTarget(body), parseInternal(body)]) {
          expect(typeof result).toBe("object")
        }
        const parsed = parseHardware(body)
        expect(illegal(parsed) || ["Write", "Read", "PinMode", "DeviceSelector", "Other"].includes(parsed._tag)).toBe(true)
      }),
      { numRuns: 500 }
    )
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => {
        const body = bodyText(bytes)
        parseHardware(body)
        parseAppHardware(body)
        parseInternal(body)
      }),
      { numRuns: 300 }
    )
  })
})
