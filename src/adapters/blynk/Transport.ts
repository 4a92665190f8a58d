import type * as Net from "node:net"
import type { WebSocket } from "ws"

/**
 * A connection as a session sees it: bytes in, whole frames out (one write per frame), close.
 * The same sessions serve TCP, TLS and WebSocket connections.
 */
export interface Transport {
  readonly remote: string
  /** Writes one encoded frame. Returns false when the peer is too slow and the frame was dropped. */
  readonly write: (bytes: Uint8Array) => boolean
  readonly close: () => void
  /** Stops reading (backpressure) until `resume`. */
  readonly pause: () => void
  readonly resume: () => void
}

/** Past this many unsent bytes a connection drops what it is sent rather than grow without end. */
export const MAX_UNSENT = 4 * 1024 * 1024

export interface TransportEvents {
  readonly data: (chunk: Uint8Array) => void
  readonly closed: () => void
}

const remoteOf = (address: string | undefined, port: number | undefined) =>
  address === undefined ? "unknown" : `${address}:${port ?? 0}`

/** A TCP or TLS socket. Frames go out unbatched (no Nagle delay): each is one write. */
export const fromSocket = (socket: Net.Socket, events: () => TransportEvents): Transport => {
  socket.setNoDelay(true)
  const transport: Transport = {
    remote: remoteOf(socket.remoteAddress, socket.remotePort),
    write: (bytes) => {
      if (socket.destroyed || socket.writableLength > MAX_UNSENT) return false
      socket.write(bytes)
      return true
    },
    close: () => socket.destroy(),
    pause: () => socket.pause(),
    resume: () => socket.resume()
  }
  const handlers = events()
  socket.on("data", handlers.data)
  socket.once("close", handlers.closed)
  socket.on("error", () => socket.destroy())
  socket.resume()
  return transport
}

/** A WebSocket: binary messages in, each outbound frame one binary message. */
export const fromWebSocket = (ws: WebSocket, remote: string, events: () => TransportEvents): Transport => {
  const transport: Transport = {
    remote,
    write: (bytes) => {
      if (ws.readyState !== ws.OPEN || ws.bufferedAmount > MAX_UNSENT) return false
      ws.send(bytes, { binary: true })
      return true
    },
    close: () => ws.terminate(),
    pause: () => ws.pause(),
    resume: () => ws.resume()
  }
  const handlers = events()
  ws.on("message", (data: Buffer | ArrayBuffer | Array<Buffer>) => {
    const chunk = Array.isArray(data) ? Buffer.concat(data) : data instanceof ArrayBuffer ? new Uint8Array(data) : data
    handlers.data(chunk)
  })
  ws.once("close", handlers.closed)
  ws.on("error", () => ws.terminate())
  return transport
}
