/**
 * Pin history end to end (issue 5 §5): values a real device writes (npm `blynk-library` over
 * plain TCP) reach the `pin_history` projection, which follows the log apart from the write path,
 * and come back out of it two ways: to the owner's app as a Superchart's LIVE data
 * (GET_ENHANCED_GRAPH_DATA, protocol.md §7.3) and as the legacy CSV export (`GET /{token}/data/{pin}`,
 * a 301 to a gzip file of `value,timestampMs,deviceId` minute averages, §5 and §7.4).
 *
 * The history lags the writes by a commit and a projection batch, so the test reads the CSV
 * export again after each answer until both writes are in it (HTTP has no flood quota, and each
 * request awaits its answer; nothing sleeps). Then the chart must show them too: the projection
 * writes a write's raw sample and its rollups in one transaction.
 */
import { describe, expect, it } from "vitest"
import { gunzipSync } from "node:zlib"
import { Command, Status } from "../../src/adapters/blynk/Command.ts"
import { decodeGraphData, type GraphPoint } from "../../src/adapters/blynk/GraphData.ts"
import type { AppClient } from "./support/appClient.ts"
import { connectDevice } from "./support/blynkLibrary.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "history@e2e.test", password: "history-secret" }

const { server, devices, opened, activeApp } = e2eSuite({
  provision: ({ provision }) => provision(account, { sensor: "history-sensor" })
})

const CHART_ID = 41

/** A Superchart with one data stream on the device's V5, as the legacy app sends it. */
const chart = (deviceId: number) => ({
  id: CHART_ID,
  type: "ENHANCED_GRAPH",
  x: 0,
  y: 0,
  width: 8,
  height: 4,
  dataStreams: [{
    id: 1,
    title: "V5",
    graphType: "LINE",
    targetId: deviceId,
    dataStream: { pinType: "VIRTUAL", pin: 5, min: 0, max: 100 },
    functionType: "AVG"
  }]
})

/** GET_ENHANCED_GRAPH_DATA `dashId, chart, LIVE`: the chart's points, or the status it answered (NO_DATA before the history has any). */
const liveGraph = async (app: AppClient, dashId: number): Promise<ReadonlyArray<GraphPoint> | number> => {
  const id = app.send(Command.GET_ENHANCED_GRAPH_DATA, [String(dashId), String(CHART_ID), "LIVE"])
  const answer = await app.waitFor((f) => f.id === id && (f._tag === "Response" || f.command === Command.GET_ENHANCED_GRAPH_DATA))
  if (answer._tag === "Response") return answer.status
  const graph = decodeGraphData(answer.body)
  expect(graph.dashId).toBe(dashId)
  return graph.streams[0] ?? []
}

describe("pin history of a real device", () => {
  it("values a blynk-library device writes appear in its app's chart and in the CSV export", async () => {
    const srv = server()
    const { sensor } = devices()
    const device = opened.device(await connectDevice(sensor.token, { kind: "tcp", port: srv.httpPort }))
    const app = await activeApp(account, sensor.dashId)
    expect(await app.statusOf(app.send(Command.CREATE_WIDGET, [String(sensor.dashId), JSON.stringify(chart(sensor.deviceId))]))).toBe(Status.OK)

    const before = Date.now()
    device.blynk.virtualWrite(5, 10)
    device.blynk.virtualWrite(5, 30)

    // The CSV export: a 301 to a gzip file of the pin's minute averages.
    const csv = async () => {
      const redirect = await fetch(`http://127.0.0.1:${srv.httpPort}/${sensor.token}/data/V5`, { redirect: "manual" })
      if (redirect.status === 400) {
        expect(await redirect.text()).toBe("No data.")
        return []
      }
      expect(redirect.status).toBe(301)
      const location = redirect.headers.get("location") ?? ""
      expect(location).toMatch(new RegExp(`^/history@e2e\\.test_${sensor.dashId}_${sensor.deviceId}_v5_\\d+\\.csv\\.gz$`))
      const file = await fetch(`http://127.0.0.1:${srv.httpPort}${location}`)
      expect(file.status).toBe(200)
      return gunzipSync(Buffer.from(await file.arrayBuffer())).toString("utf8").trim().split("\n").map((line) => line.split(","))
    }
    const seen: Array<string> = []
    opened.note(() => `CSV exports seen (last 5): ${seen.slice(-5).join(" | ")}`)
    // Both writes in one minute average 20; across a minute's turn they are a minute each.
    const complete = (values: ReadonlyArray<string>) => values.join() === "20.0" || [...values].sort().join() === "10.0,30.0"
    let rows: Array<Array<string>> = []
    while (!complete(rows.map(([value]) => value!))) {
      rows = await csv()
      seen.push(JSON.stringify(rows))
    }
    for (const [, ts, deviceId] of rows) {
      expect(Number(ts) % 60_000).toBe(0)
      expect(Number(ts)).toBeGreaterThanOrEqual(before - 60_000)
      expect(deviceId).toBe(String(sensor.deviceId))
    }

    // The chart's LIVE period: the raw samples in write order, each at the time the server recorded it.
    const live = await liveGraph(app, sensor.dashId)
    expect(typeof live === "number" ? `status ${live}` : live.map((p) => p.value)).toEqual([10, 30])
    for (const p of typeof live === "number" ? [] : live) {
      expect(p.ts).toBeGreaterThanOrEqual(before - 1_000)
      expect(p.ts).toBeLessThanOrEqual(Date.now())
    }
  })
})
