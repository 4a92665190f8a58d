import type { WebSocket } from "ws"

/**
 * What one kind of Blynk connection has done, as plain numbers. The sessions bump them on their
 * hot paths (a forwarded pin write costs a property increment: no allocation, no Effect) and
 * `/metrics` reads them when it is scraped (Metrics.ts registers them as metric series).
 */
export interface ConnectionCounters {
  /** Connections open now. */
  open: number
  /** Frames received, counted before the flood quota. */
  received: number
  /** Frames written to the connection. */
  sent: number
  /** Frames not written: the connection was closed, or had too much unsent (Transport.MAX_UNSENT). */
  notSent: number
  /** Frames dropped by the flood quota (PINLEDGER_MESSAGE_QUOTA). */
  overQuota: number
}

const zero = (): ConnectionCounters => ({ open: 0, received: 0, sent: 0, notSent: 0, overQuota: 0 })

/**
 * Process-wide, like effect's default metric registry: servers started in one process (tests)
 * share them. An app connection counts as `app` until a SHARE_LOGIN makes it a `sharedApp`.
 */
export const counters = {
  hardware: zero(),
  app: zero(),
  sharedApp: zero(),
  /** Of the open connections, those over WebSocket (`/websockets` for devices, `/dashws` for apps). */
  webSockets: { hardware: 0, app: 0 }
}

/** Moves an open app connection to the shared-app counters; returns them, for the session to use from now on. */
export const shareLogin = (): ConnectionCounters => {
  counters.app.open--
  counters.sharedApp.open++
  return counters.sharedApp
}

/** Counts a Blynk WebSocket as open until it closes. */
export const trackWebSocket = (ws: WebSocket, kind: "hardware" | "app") => {
  counters.webSockets[kind]++
  ws.once("close", () => counters.webSockets[kind]--)
}
