import { type Duration, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import type { ServeError } from "effect/http/HttpServerError"
import * as Net from "node:net"
import { handToHttp, HttpHandoff, isHttp, layerHttpHandoff, listen, sniffFirstBytes, sniffTimeoutMillis, track } from "./ConnectionRouter.ts"

/** What a connection's first bytes say it speaks (protocol.md §1.2). */
export type Sniffed = "http" | "hardware"

/** Needs at least 4 bytes; an HTTP verb means HTTP, anything else the hardware protocol. */
export const sniff = (first: Uint8Array): Sniffed => (isHttp(first) ? "http" : "hardware")

export interface PlainListenerOptions {
  readonly port: number
  readonly host: string
  /** A connection that sends nothing (or fewer than 4 bytes) for this long is closed. */
  readonly sniffTimeout?: Duration.Input | undefined
  /**
   * Takes a connection that speaks the hardware protocol, with its first bytes still unread.
   * Until the protocol is served, the default closes it.
   */
  readonly hardware?: ((socket: Net.Socket) => void) | undefined
}

/**
 * The plain port on a shared `HttpHandoff`: one `node:net` listener that looks at each
 * connection's first bytes and hands HTTP (and WebSocket upgrades) to the handoff's `http.Server`,
 * and everything else to the hardware protocol. Provides effect's `HttpServer` (with this port's
 * address), so routes are served as usual, on every listener sharing the handoff.
 */
export const layerWith = (options: PlainListenerOptions): Layer.Layer<HttpServer.HttpServer, ServeError, HttpHandoff> =>
  Layer.effect(
    HttpServer.HttpServer,
    Effect.gen(function*() {
      const { http, serve } = yield* HttpHandoff
      const sniffTimeout = sniffTimeoutMillis(options.sniffTimeout)
      const hardware = options.hardware ?? ((socket: Net.Socket) => socket.destroy())
      const sockets = new Set<Net.Socket>()
      const listener = Net.createServer((socket) => {
        track(sockets, socket)
        sniffFirstBytes(socket, 4, sniffTimeout, (first) => {
          if (sniff(first) === "http") handToHttp(http, socket)
          else hardware(socket)
        })
      })
      const address = yield* listen(listener, sockets, options.port, options.host)
      return HttpServer.make({ address, serve })
    })
  )

/** The plain port on its own `http.Server` (see `layerWith`). */
export const layer = (options: PlainListenerOptions): Layer.Layer<HttpServer.HttpServer, ServeError> =>
  layerWith(options).pipe(Layer.provide(layerHttpHandoff))
