/**
 * The npm `blynk` 0.1.0 app client (legacy mobile-app protocol over TLS), loaded as it is
 * (CommonJS). See test/e2e/blynkApp.test.ts for what it sends on the wire.
 */
import { createRequire } from "node:module"
import type { TLSSocket } from "node:tls"

const require = createRequire(import.meta.url)

export const npmBlynk = require("blynk") as typeof import("blynk")
export type BlynkApp = InstanceType<typeof npmBlynk.Blynk>

/** The client's TLS socket, once `connect()` made it. */
export const socketOf = (app: BlynkApp) => (app as unknown as { socket?: TLSSocket }).socket

/** The client's disconnect() waits for a 'close' that never comes again if the socket is already closed. */
export const disconnect = async (app: BlynkApp) => {
  const socket = socketOf(app)
  if (socket === undefined || socket.destroyed) return
  await app.disconnect()
}
