import { Duration, Effect, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { ServeError } from "effect/http/HttpServerError"
import * as NetAddress from "effect/net/NetAddress"
import { NodeHttpServer, NodeWS } from "@effect/platform-node"
import * as Http from "node:http"
import * as Net from "node:net"

/** What a connection's first bytes say it speaks (protocol.md §1.2). */
export type Sniffed = "http" | "hardware"

const httpVerbs = ["GET ", "POST", "PUT ", "HEAD", "OPTI", "PATC", "DELE", "TRAC", "CONN"]

/** Needs at least 4 bytes; an HTTP verb means HTTP, anything else the hardware protocol. */
export const sniff = (first: Uint8Array): Sniffed =>
  httpVerbs.includes(Buffer.from(first.subarray(0, 4)).toString("latin1")) ? "http" : "hardware"

export interface PlainListenerOptions {
  readonly port: number
  readonly host: string
  /** A connection that sends nothing (or fewer than 4 bytes) for this long is closed. */
  readonly sniffTimeout?: Duration.Input | undefined
  /**
   * Takes a connection that speaks the hardware protocol, with its first bytes still unread.
   * Until the protocol is served, the default closes it with a log line.
   */
  readonly hardware?: ((socket: Net.Socket) => void) | undefined
}

/**
 * The plain port: one `node:net` listener that looks at each connection's first bytes and hands
 * HTTP (and WebSocket upgrades) to an `http.Server` that does not listen itself, and everything
 * else to the hardware protocol. Provides effect's `HttpServer`, so routes are served as usual.
 */
export const layer = (options: PlainListenerOptions): Layer.Layer<HttpServer.HttpServer, ServeError> =>
  Layer.effect(
    HttpServer.HttpServer,
    Effect.gen(function*() {
      const scope = yield* Effect.scope
      const sniffTimeout = Duration.toMillis(Duration.fromInputUnsafe(options.sniffTimeout ?? "10 seconds"))
      const hardware = options.hardware ?? ((socket: Net.Socket) => socket.destroy())
      const http = Http.createServer()
      const sockets = new Set<Net.Socket>()

      const route = (socket: Net.Socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
        socket.on("error", () => socket.destroy())
        const chunks: Array<Buffer> = []
        let received = 0
        const timer = setTimeout(() => socket.destroy(), sniffTimeout)
        const onData = (chunk: Buffer) => {
          chunks.push(chunk)
          received += chunk.length
          if (received < 4) return
          clearTimeout(timer)
          socket.off("data", onData)
          socket.pause()
          const first = Buffer.concat(chunks)
          // Give the bytes back, so whoever takes the socket reads the stream from its start.
          socket.unshift(first)
          if (sniff(first) === "http") {
            http.emit("connection", socket)
            process.nextTick(() => socket.resume())
          } else {
            hardware(socket)
          }
        }
        socket.on("data", onData)
        socket.once("close", () => clearTimeout(timer))
      }

      const listener = Net.createServer(route)
      yield* Effect.callback<void, ServeError>((resume) => {
        const onError = (cause: Error) => resume(Effect.fail(new ServeError({ cause })))
        listener.once("error", onError)
        listener.listen({ port: options.port, host: options.host }, () => {
          listener.off("error", onError)
          resume(Effect.void)
        })
      })
      yield* Scope.addFinalizer(
        scope,
        Effect.callback<void>((resume) => {
          listener.close(() => resume(Effect.void))
          http.closeAllConnections()
          for (const socket of sockets) socket.destroy()
        })
      )

      const bound = listener.address() as Net.AddressInfo
      const address = yield* Effect.fromResult(NetAddress.inetAddressFromIpString(bound.address, bound.port)).pipe(
        Effect.mapError((cause) => new ServeError({ cause }))
      )
      const wss = yield* Effect.acquireRelease(
        Effect.sync(() => new NodeWS.WebSocketServer({ noServer: true })),
        (wss) => Effect.callback<void>((resume) => wss.close(() => resume(Effect.void)))
      )

      return HttpServer.make({
        address,
        serve: (httpApp, middleware) =>
          Effect.gen(function*() {
            const serveScope = yield* Effect.scope
            const handlerScope = yield* Scope.fork(serveScope, "parallel")
            const handler = yield* NodeHttpServer.makeHandler(httpApp, { middleware, scope: handlerScope })
            const upgrade = yield* NodeHttpServer.makeUpgradeHandler(Effect.succeed(wss), httpApp, {
              middleware,
              scope: handlerScope
            })
            http.on("request", handler)
            http.on("upgrade", upgrade)
            yield* Scope.addFinalizer(
              serveScope,
              Effect.sync(() => {
                http.off("request", handler)
                http.off("upgrade", upgrade)
              })
            )
          })
      })
    })
  )
