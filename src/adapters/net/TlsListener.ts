import { Context, type Duration, Effect, Layer } from "effect"
import { HttpServer } from "effect/http"
import type { ServeError } from "effect/http/HttpServerError"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import { CertificateError } from "./Certificates.ts"
import { handToHttp, HttpHandoff, isHttp, layerHttpHandoff, listen, sniffFirstBytes, sniffTimeoutMillis, track } from "./ConnectionRouter.ts"

/** What the first bytes after the TLS handshake say the connection speaks (protocol.md §1.2). */
export type Sniffed = "http" | "hardware" | "app"

/**
 * Needs at least 5 bytes. An HTTP verb means HTTP; a first frame that is a hardware login
 * (command 29 HARDWARE_LOGIN or 2 LOGIN, message id 1, length 32: `1D 00 01 00 20` or
 * `02 00 01 00 20`) means the hardware protocol; anything else is the app protocol.
 */
export const sniff = (first: Uint8Array): Sniffed => {
  if (isHttp(first)) return "http"
  const [command, idHigh, idLow, lengthHigh, lengthLow] = first
  return (command === 29 || command === 2) && idHigh === 0 && idLow === 1 && lengthHigh === 0 && lengthLow === 32
    ? "hardware"
    : "app"
}

export interface TlsListenerOptions {
  readonly port: number
  readonly host: string
  /** PEM certificate (chain) and private key. */
  readonly cert: string
  readonly key: string
  /**
   * A connection that has not finished the TLS handshake, or has then sent fewer than 5 bytes,
   * within this long is closed.
   */
  readonly sniffTimeout?: Duration.Input | undefined
  /** Takes a TLS connection whose first frame is a hardware login, with its first bytes still unread. Default: close. */
  readonly hardware?: ((socket: Tls.TLSSocket) => void) | undefined
  /** Takes a TLS connection that speaks the app protocol, with its first bytes still unread. Default: close. */
  readonly app?: ((socket: Tls.TLSSocket) => void) | undefined
}

/** The TLS port, once it listens. */
export class TlsListener extends Context.Service<TlsListener, {
  /** The port it listens on (useful when asked for port 0). */
  readonly port: number
  /**
   * Uses another certificate (chain) and key, both PEM, for the connections accepted from now on;
   * connections already open keep theirs. A pair TLS cannot use fails and changes nothing.
   */
  readonly setCertificate: (pair: { readonly cert: string; readonly key: string }) => Effect.Effect<void, CertificateError>
}>()("pinledger/net/TlsListener") {}

const listenTls = (options: TlsListenerOptions) =>
  Effect.gen(function*() {
    const { http } = yield* HttpHandoff
    const sniffTimeout = sniffTimeoutMillis(options.sniffTimeout)
    const hardware = options.hardware ?? ((socket: Tls.TLSSocket) => socket.destroy())
    const app = options.app ?? ((socket: Tls.TLSSocket) => socket.destroy())
    const sockets = new Set<Net.Socket>()
    // Given again with every new certificate, so a reload can never widen the protocol versions.
    const versions = { minVersion: "TLSv1.2", maxVersion: "TLSv1.3" } as const
    const listener = Tls.createServer({ cert: options.cert, key: options.key, ...versions, handshakeTimeout: sniffTimeout })
    const setCertificate = (pair: { readonly cert: string; readonly key: string }) =>
      Effect.try({
        try: () => listener.setSecureContext({ cert: pair.cert, key: pair.key, ...versions }),
        catch: (cause) => new CertificateError({ reason: `TLS cannot use the new certificate and key (${cause instanceof Error ? cause.message : String(cause)})` })
      })
    // Keep every accepted TCP connection, handshake done or not, so closing the port ends them all.
    listener.on("connection", (socket: Net.Socket) => track(sockets, socket))
    // A failed handshake (old protocol version, not TLS at all, timeout) has already closed the socket.
    listener.on("tlsClientError", (_error, socket) => socket.destroy())
    listener.on("secureConnection", (socket: Tls.TLSSocket) => {
      track(sockets, socket)
      sniffFirstBytes(socket, 5, sniffTimeout, (first) => {
        switch (sniff(first)) {
          case "http":
            return handToHttp(http, socket)
          case "hardware":
            return hardware(socket)
          case "app":
            return app(socket)
        }
      })
    })
    const address = yield* listen(listener, sockets, options.port, options.host)
    return { address, setCertificate }
  })

/**
 * The TLS port on a shared `HttpHandoff`: a `node:tls` listener (TLS 1.2 and 1.3 only) that looks
 * at each connection's first bytes after the handshake and hands HTTPS (and secure WebSocket
 * upgrades) to the handoff's `http.Server`, a hardware login to `hardware`, anything else to `app`.
 * The HTTP app is whatever is served on the handoff (e.g. through the plain port's `HttpServer`).
 */
export const layerWith = (options: TlsListenerOptions): Layer.Layer<TlsListener, ServeError, HttpHandoff> =>
  Layer.effect(
    TlsListener,
    listenTls(options).pipe(
      Effect.tap(({ address }) => Effect.logInfo(`TLS port listening on ${options.host}:${address.port} (HTTPS, Blynk app and hardware over TLS)`)),
      Effect.map(({ address, setCertificate }) => ({ port: address.port, setCertificate }))
    )
  )

/** The TLS port on its own `http.Server`; its `HttpServer` serves routes over HTTPS only. */
export const layer = (options: TlsListenerOptions): Layer.Layer<TlsListener | HttpServer.HttpServer, ServeError> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const { serve } = yield* HttpHandoff
      const { address, setCertificate } = yield* listenTls(options)
      return Context.make(TlsListener, { port: address.port, setCertificate }).pipe(
        Context.add(HttpServer.HttpServer, HttpServer.make({ address, serve }))
      )
    })
  ).pipe(Layer.provide(layerHttpHandoff))
