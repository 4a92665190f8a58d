import { Context, Effect, Layer } from "effect"
import type * as Net from "node:net"
import { HttpHandoff } from "../net/ConnectionRouter.ts"
import { AppSession } from "./AppSession.ts"
import { HardwareSession } from "./HardwareSession.ts"
import { SessionEnv } from "./SessionEnv.ts"
import { fromSocket, fromWebSocket } from "./Transport.ts"
import { trackWebSocket } from "../metrics/Counters.ts"

/** Where the listeners hand Blynk connections: raw sockets after sniffing, and the WebSocket paths. */
export class BlynkEndpoints extends Context.Service<BlynkEndpoints, {
  /** A device connection; `tls` says whether it came over the TLS port. */
  readonly hardware: (socket: Net.Socket) => void
  readonly app: (socket: Net.Socket) => void
}>()("pinledger/blynk/Endpoints") {}

const remoteOf = (address: string | undefined, port: number | undefined) => `${address ?? "unknown"}:${port ?? 0}`

/**
 * Sessions for every Blynk entry point: devices over TCP and TLS, apps over TLS, and on the shared
 * HTTP server `/websockets` (devices; any path starting with `/websocket`, as the legacy server)
 * and `/dashws` (apps, TLS port only).
 */
export const layer: Layer.Layer<BlynkEndpoints, never, SessionEnv | HttpHandoff> = Layer.effect(
  BlynkEndpoints,
  Effect.gen(function*() {
    const env = yield* SessionEnv
    const { webSockets } = yield* HttpHandoff
    webSockets.set("/dashws", (ws, request, secure) => {
      if (!secure) return ws.close(1008, "/dashws is served on the TLS port only")
      trackWebSocket(ws, "app")
      new AppSession(env, "dashws", (events) => fromWebSocket(ws, remoteOf(request.socket.remoteAddress, request.socket.remotePort), () => events))
    })
    webSockets.set("/websocket", (ws, request, secure) => {
      trackWebSocket(ws, "hardware")
      // protocol.md §3.5: over TLS the WebSocket idle timeout has no ×2.3 factor.
      new HardwareSession(
        env,
        (events) => fromWebSocket(ws, remoteOf(request.socket.remoteAddress, request.socket.remotePort), () => events),
        { idleFactor: secure ? 1 : 2.3 }
      )
    })
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        webSockets.delete("/dashws")
        webSockets.delete("/websocket")
      })
    )
    return {
      hardware: (socket) => {
        new HardwareSession(env, (events) => fromSocket(socket, () => events))
      },
      app: (socket) => {
        new AppSession(env, "app", (events) => fromSocket(socket, () => events))
      }
    }
  })
)
