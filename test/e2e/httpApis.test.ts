/**
 * The HTTP APIs of issue 5 §2 end to end, against a real server process and an npm
 * `blynk-library` device over plain TCP:
 * - the Blynk IoT device API: `GET /external/api/batch/update?token=T&V1=…&V2=…` writes both pins
 *   in one commit and reaches the device (as HARDWARE `vw` frames with id 111, which the library
 *   hands to the pins' `write` handlers); a timestamped `POST /external/api/batch/update` reaches it
 *   with its latest point;
 * - the owner API (`/api/v1`): a login, a write of several pins in one commit reaching the device,
 *   and the device's own writes read back from the pin history.
 * The history follows the log by a batch, so the test asks again after each answer until the write
 * is there (each request awaits its answer; nothing sleeps).
 */
import { describe, expect, it } from "vitest"
import { connectDevice } from "./support/blynkLibrary.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "http@e2e.test", password: "http-secret" }

const { server, devices, opened } = e2eSuite({
  provision: ({ provision }) => provision(account, { iot: "iot-device", owned: "owned-device" })
})

const url = (path: string) => `http://127.0.0.1:${server().httpPort}${path}`

describe("the HTTP APIs with a real device", () => {
  it("a batch update over the Blynk IoT API reaches a blynk-library device, pin by pin", async () => {
    const { iot } = devices()
    const device = opened.device(await connectDevice(iot.token, { kind: "tcp", port: server().httpPort }))

    const writes = Promise.all([device.nextWrite(1), device.nextWrite(2)])
    const batch = await fetch(url(`/external/api/batch/update?token=${iot.token}&V1=10&V2=hello%20world`))
    expect(batch.status).toBe(200)
    expect(await batch.text()).toBe("OK")
    expect(await writes).toEqual([["10"], ["hello world"]])

    // A timestamped batch: every point goes to the history, the latest one to the device.
    const now = Date.now()
    const latest = device.nextWrite(3)
    const timed = await fetch(url(`/external/api/batch/update?token=${iot.token}&pin=V3`), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([[now - 2_000, 1.5], [now - 1_000, 2.5]])
    })
    expect(timed.status).toBe(200)
    expect(await latest).toEqual(["2.5"])

    // What the device now has, as the same API reads it.
    const got = await fetch(url(`/external/api/get?token=${iot.token}&v1&v2&v3`))
    expect(await got.json()).toEqual({ v1: 10, v2: "hello world", v3: 2.5 })
  })

  it("the owner API writes several pins of the device in one request, and reads back the device's writes from the history", async () => {
    const { owned } = devices()
    const device = opened.device(await connectDevice(owned.token, { kind: "tcp", port: server().httpPort }))

    const login = await fetch(url("/api/v1/login"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: account.email, password: account.password })
    })
    expect(login.status).toBe(200)
    const { token } = (await login.json()) as { token: string }
    const auth = { authorization: `Bearer ${token}` }
    const base = `/api/v1/dashboards/${owned.dashId}/devices/${owned.deviceId}`

    const both = Promise.all([device.nextWrite(4), device.nextWrite(5)])
    const written = await fetch(url(`${base}/pins`), {
      method: "POST",
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ writes: [{ pin: "V4", values: [1] }, { pin: "V5", values: ["on", "blue"] }] })
    })
    expect(written.status).toBe(200)
    expect(await both).toEqual([["1"], ["on", "blue"]])

    const since = Date.now() - 1_000
    device.blynk.virtualWrite(6, 21.5)
    const answers: Array<string> = []
    opened.note(() => `history answers (last 3): ${answers.slice(-3).join(" | ")}`)
    let points: Array<{ values: Array<string>; number: number | null; ts: number }> = []
    while (points.length === 0) {
      const history = await fetch(url(`${base}/pins/V6/history?rollup=raw&from=${since}`), { headers: auth })
      const text = await history.text()
      answers.push(`${history.status} ${text}`)
      expect(history.status).toBe(200)
      points = (JSON.parse(text) as { points: typeof points }).points
    }
    expect(points).toHaveLength(1)
    expect(points[0]).toMatchObject({ values: ["21.5"], number: 21.5 })
    expect(points[0]!.ts).toBeGreaterThanOrEqual(since)
  })
})
