import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { BlynkClient, isMessage } from "../../support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

/** Issue 4 §5: the limits of protocol.md §6.2 are settings; here set small enough to reach. */
const sizes = { hardwareBody: 64, appBody: 2000, widgetJson: 200, dashboardJson: 600 }
const limits = { maxDashboards: 2, maxDevicesPerDashboard: 2 }

let server: RunningServer
let release: () => Promise<void>

beforeAll(async () => {
  const opened = await openStorage()
  release = opened.release
  server = await startBlynkServer(opened.storage, { sizes }, undefined, { limits })
})
afterAll(async () => {
  await server.close()
  await release()
})

const padded = (json: Record<string, unknown>, bytes: number) => JSON.stringify({ ...json, label: "x".repeat(bytes) })

describe("limits (protocol.md §6.2, configurable)", () => {
  it("dashboards per account answer QUOTA_LIMIT, devices per dashboard NOT_ALLOWED, also inside a dashboard's JSON", async () => {
    const { app } = await newAccount(server)
    await createDash(app, { id: 1 })
    await createDash(app, { id: 2 })
    expect(await app.request(Command.CREATE_DASH, nextId(), [JSON.stringify({ id: 3, name: "third" })])).toBe(Status.QUOTA_LIMIT)
    await createDevice(app, 1, 0)
    await createDevice(app, 1, 1)
    expect(await app.request(Command.CREATE_DEVICE, nextId(), ["1", JSON.stringify({ id: 2, name: "x", boardType: "ESP32" })]))
      .toBe(Status.NOT_ALLOWED)
    expect(await app.request(Command.DELETE_DASH, nextId(), ["2"])).toBe(Status.OK)
    const three = [0, 1, 2].map((id) => ({ id, name: `d${id}`, boardType: "ESP32" }))
    expect(await app.request(Command.CREATE_DASH, nextId(), [JSON.stringify({ id: 2, name: "many", devices: three })])).toBe(Status.NOT_ALLOWED)
    // Nothing of the refused commands stayed: one dashboard with two devices, and room for one more dashboard.
    const devices = JSON.parse((await app.ask(Command.GET_DEVICES, nextId(), ["1"])).fields[0]!)
    expect(devices.map((d: { id: number }) => d.id)).toEqual([0, 1])
    await createDash(app, { id: 2 })
    await app.close()
  })

  it("widget and dashboard JSON beyond their sizes answer NOT_ALLOWED", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const widget = { id: 5, type: "BUTTON", x: 0, y: 0, width: 1, height: 1 }
    expect(await app.request(Command.CREATE_WIDGET, nextId(), ["1", padded(widget, 10)])).toBe(Status.OK)
    expect(await app.request(Command.CREATE_WIDGET, nextId(), ["1", padded({ ...widget, id: 6 }, 300)])).toBe(Status.NOT_ALLOWED)
    expect(await app.request(Command.CREATE_DASH, nextId(), [padded({ id: 2, name: "big" }, 700)])).toBe(Status.NOT_ALLOWED)
    expect(await app.request(Command.UPDATE_DASH, nextId(), [padded({ id: 1, name: "big" }, 700)])).toBe(Status.NOT_ALLOWED)
    const widgets = await app.ask(Command.GET_WIDGET, nextId(), ["1", "6"])
    expect(widgets).toMatchObject({ _tag: "Response", status: Status.ILLEGAL_COMMAND })
    await app.close()
  })

  it("a frame announcing more than the body limit closes only its connection", async () => {
    const { app } = await newAccount(server)
    await createDash(app)
    const token = await createDevice(app, 1, 0)
    const big = await connectDevice(server, token)
    const other = await connectDevice(server, token)
    big.send(Command.HARDWARE, 9, ["vw", "1", "y".repeat(100)])
    await big.closed
    expect(await other.request(Command.PING, 3)).toBe(Status.OK)
    // Within the limit the same write goes through to the app once the dashboard is active.
    expect(await app.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"])).toBe(Status.OK)
    const atApp = app.next(isMessage(Command.HARDWARE))
    other.send(Command.HARDWARE, 10, ["vw", "1", "y".repeat(50)])
    expect((await atApp).fields).toEqual(["1-0", "vw", "1", "y".repeat(50)])

    const bigApp = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
    bigApp.send(Command.PING, 1, ["z".repeat(3000)])
    await bigApp.closed
    expect(await app.request(Command.PING, nextId())).toBe(Status.OK)
    await Promise.all([other.close(), app.close()])
  })
})
