/**
 * npm `node-red-contrib-blynk-ws` 1.0.10 (Node-RED device nodes over WebSocket) against a real
 * server process, loaded outside Node-RED with a stand-in for the runtime object
 * (test/e2e/support/nodeRed.ts); all network traffic is the package's own.
 *
 * What the client does on the wire (node_modules/node-red-contrib-blynk-ws/nodes/blynk-ws-client.js,
 * libs/blynk-lib.js, libs/blynk-enum.js):
 * - Configuration node `blynk-ws-client`: `path` is the full URL, e.g.
 *   `ws://127.0.0.1:<plain port>/websockets` or `wss://…/websockets` (for wss it sets
 *   rejectUnauthorized:false and no CA: it does not verify the certificate); `key` is the token.
 * - Each Blynk frame is one binary WebSocket message with the 5-byte hardware header (several
 *   frames may share one message; it splits them).
 * - On 'open' it sends HARDWARE_LOGIN (its enum calls 29 "LOGIN"), id 1, body = token. It treats
 *   RSP id 1 with 200 or 4 as logged in; then it sends BLYNK_INTERNAL (17), id 2:
 *   `ver\00.6.1\0h-beat\015\0buff-in\032767\0dev\0node-red\0con\0Blynk-ws\0fw\01.0.10\0build\02025-01-19`
 *   and emits 'connected'. Before login it looks only at RSP id 1 (and CONNECT_REDIRECT 41).
 * - A one-second timer sends PING (6) once nothing was sent for 15 s (BLYNK_HEARTBEAT).
 * - The `blynk-ws-out-write` node sends HARDWARE `vw\0pin\0payload` for each input message; the
 *   `blynk-ws-out-sync` node HARDWARE_SYNC (16) `vr\0pin` (or an empty body, "all pins").
 * - Incoming HARDWARE/BRIDGE `vw pin value…` goes to `blynk-ws-in-write` nodes on that pin (pin
 *   compared as a string) as `{ payload: value, pin, arrayOfValues }`; `pm` is skipped, other ops
 *   are answered with RSP 2. Messages longer than 32767 bytes are refused.
 * - On close or error it reconnects after 5 s unless the node is closing.
 */
import { describe, expect, it } from "vitest"
import { once } from "node:events"
import { type BlynkWsClient, closeAll, makeRuntime } from "./support/nodeRed.ts"
import type { ProvisionedDevice } from "./support/server.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "nodered@e2e.test", password: "nodered-secret" }

const { server, devices, opened, activeApp } = e2eSuite({
  provision: ({ provision }) => provision(account, { ws: "nodered-ws", wss: "nodered-wss" })
})

/** A flow: the client config node on `url`, a write-out node on V4, a write-in and a sync node on V5. */
const deployFlow = (url: string, token: string) => {
  const runtime = opened.track(makeRuntime(), {
    close: closeAll,
    describe: (runtime) => [...runtime.instances.values()].map((node) => `node ${node.id}:\n${node.lines.join("\n")}`).join("\n")
  })
  const client = runtime.create("blynk-ws-client", {
    id: "client",
    path: url,
    key: token,
    enabled: true,
    dbg_all: false,
    multi_cmd: false,
    proxy_type: "no"
  }) as BlynkWsClient
  const connected = once(client, "connected")
  const writeOut = runtime.create("blynk-ws-out-write", { id: "out-v4", client: "client", pin: "4", pinmode: 0 })
  const writeIn = runtime.create("blynk-ws-in-write", { id: "in-v5", client: "client", pin: "5", pin_all: false })
  const syncV5 = runtime.create("blynk-ws-out-sync", { id: "sync-v5", client: "client", pin: "5", pinmode: 0 })
  return { client, connected, writeOut, writeIn, syncV5 }
}

const exchange = async (
  flow: ReturnType<typeof deployFlow>,
  provisioned: ProvisionedDevice,
  tag: string
) => {
  await flow.connected
  expect(flow.client.logged).toBe(true)

  const app = await activeApp(account, provisioned.dashId)

  // A message into the write node goes out as HARDWARE vw 4 … and reaches the app.
  flow.writeOut.emit("input", { payload: `from-${tag}-flow` }, () => {})
  const forwarded = await app.nextHardware()
  expect(forwarded.fields).toEqual([`${provisioned.dashId}-${provisioned.deviceId}`, "vw", "4", `from-${tag}-flow`])

  // The app's write to V5 comes out of the write-in node.
  const sent = once(flow.writeIn, "sent")
  app.virtualWrite(provisioned.dashId, provisioned.deviceId, 5, `from-${tag}-app`)
  const [msg] = (await sent) as [Record<string, unknown>]
  expect(msg).toEqual({ payload: `from-${tag}-app`, pin: "5", arrayOfValues: [`from-${tag}-app`] })

  // The server kept the app's write: the sync node's HARDWARE_SYNC `vr 5` brings it back.
  const synced = once(flow.writeIn, "sent")
  flow.syncV5.emit("input", { payload: true }, () => {})
  expect((await synced)[0]).toEqual({ payload: `from-${tag}-app`, pin: "5", arrayOfValues: [`from-${tag}-app`] })

  // The client warns about every error RSP it gets once logged in (e.g. to its INTERNAL, which the
  // server answered before the app's write, on the same connection) and about frames it cannot use.
  expect(flow.client.lines.filter((line) => line.startsWith("warn") || line.startsWith("error"))).toEqual([])
}

describe("node-red-contrib-blynk-ws (npm, device over WebSocket)", () => {
  it("logs in over ws://…/websockets on the plain port and exchanges writes with the app", async () => {
    const srv = server()
    const { ws } = devices()
    await exchange(deployFlow(`ws://127.0.0.1:${srv.httpPort}/websockets`, ws.token), ws, "ws")
  })

  it("logs in over wss://…/websockets on the TLS port and exchanges writes with the app", async () => {
    const srv = server()
    const { wss } = devices()
    await exchange(deployFlow(`wss://127.0.0.1:${srv.httpsPort}/websockets`, wss.token), wss, "wss")
  })
})
