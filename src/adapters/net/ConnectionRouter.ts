import { Context, Duration, Effect, Layer, Scope } from "effect"
import { HttpServer } from "effect/http"
import { ServeError } from "effect/http/HttpServerError"
import * as NetAddress from "effect/net/NetAddress"
import { NodeHttpServer, NodeWS } from "@effect/platform-node"
import * as Http from "node:http"
import * as Net from "node:net"

/** The HTTP verbs that start an HTTP connection (protocol.md §1.2). */
export const httpVerbs = ["GET ", "POST", "PUT ", "HEAD", "OPTI", "PATC", "DELE", "TRAC", "CONN"]

/** Whether the first four bytes are an HTTP verb. */
export const isHttp = (first: Uint8Array): boolean =>
  httpVerbs.includes(Buffer.from(first.subarray(0, 4)).toString("latin1"))

/** What `HttpServer.make` needs to serve an app. */
export type Serve = Parameters<typeof HttpServer.make>[0]["serve"]

/**
 * The HTTP side shared by the listeners: an `http.Server` that does not listen itself. Listeners
 * hand it the connections that speak HTTP; `serve` installs an effect HTTP app on it, so one app
 * answers on every port that hands connections over.
 */
export class HttpHandoff extends Context.Service<HttpHandoff, {
  readonly http: Http.Server
  readonly serve: Serve
  /**
   * WebSocket endpoints served outside the HTTP app (the Blynk `/websockets` and `/dashws`): the
   * first prefix that a request path starts with takes the upgraded socket.
   */
  readonly webSockets: Map<string, WebSocketEndpoint>
}>()("pinledger/net/HttpHandoff") {}

/** Takes an accepted WebSocket; `secure` says whether it came over the TLS port. */
export type WebSocketEndpoint = (ws: NodeWS.WebSocket, request: Http.IncomingMessage, secure: boolean) => void

/**
 * A fresh `http.Server` with request and WebSocket-upgrade handling from `@effect/platform-node`.
 * A WebSocket message longer than `maxWebSocketMessage` bytes closes its connection (1009) before
 * it is buffered whole.
 */
export const layerHttpHandoffWith = (options: { readonly maxWebSocketMessage: number }): Layer.Layer<HttpHandoff> => Layer.effect(
  HttpHandoff,
  Effect.gen(function*() {
    const http = yield* Effect.acquireRelease(
      Effect.sync(() => Http.createServer()),
      (http) => Effect.sync(() => http.closeAllConnections())
    )
    const wss = yield* Effect.acquireRelease(
      Effect.sync(() => new NodeWS.WebSocketServer({ noServer: true, maxPayload: options.maxWebSocketMessage })),
      (wss) => Effect.callback<void>((resume) => wss.close(() => resume(Effect.void)))
    )
    const webSockets = new Map<string, WebSocketEndpoint>()
    let appUpgrade: ((request: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => void) | undefined
    const dispatchUpgrade = (request: Http.IncomingMessage, socket: Net.Socket, head: Buffer) => {
      const path = (request.url ?? "/").split("?")[0]!
      for (const [prefix, endpoint] of webSockets) {
        if (!path.startsWith(prefix)) continue
        const secure = (socket as Net.Socket & { encrypted?: boolean }).encrypted === true
        return wss.handleUpgrade(request, socket, head, (ws) => endpoint(ws, request, secure))
      }
      if (appUpgrade) return appUpgrade(request, socket, head)
      socket.destroy()
    }
    http.on("upgrade", dispatchUpgrade)
    const serve: Serve = (httpApp, middleware) =>
      Effect.gen(function*() {
        const serveScope = yield* Effect.scope
        const handlerScope = yield* Scope.fork(serveScope, "parallel")
        const handler = yield* NodeHttpServer.makeHandler(httpApp, { middleware, scope: handlerScope })
        const upgrade = yield* NodeHttpServer.makeUpgradeHandler(Effect.succeed(wss), httpApp, {
          middleware,
          scope: handlerScope
        })
        http.on("request", handler)
        appUpgrade = upgrade
        yield* Scope.addFinalizer(
          serveScope,
          Effect.sync(() => {
            http.off("request", handler)
            appUpgrade = undefined
          })
        )
      })
    return { http, serve, webSockets }
  })
)

/** The handoff with WebSocket messages up to 1 MiB and a frame header. */
export const layerHttpHandoff: Layer.Layer<HttpHandoff> = layerHttpHandoffWith({ maxWebSocketMessage: 1024 * 1024 + 16 })

/** Hands an HTTP connection, its first bytes given back already, to the shared `http.Server`. */
export const handToHttp = (http: Http.Server, socket: Net.Socket) => {
  http.emit("connection", socket)
  process.nextTick(() => socket.resume())
}

export const sniffTimeoutMillis = (input: Duration.Input | undefined) =>
  Duration.toMillis(Duration.fromInputUnsafe(input ?? "10 seconds"))

/**
 * Waits for a connection's first `need` bytes, gives them back to the socket (so whoever takes it
 * reads the stream from its start), pauses it and calls `route` with them. A connection that
 * sends fewer bytes within `timeoutMs` is closed.
 */
export const sniffFirstBytes = (
  socket: Net.Socket,
  need: number,
  timeoutMs: number,
  route: (first: Buffer) => void
) => {
  socket.on("error", () => socket.destroy())
  const chunks: Array<Buffer> = []
  let received = 0
  const timer = setTimeout(() => socket.destroy(), timeoutMs)
  const onData = (chunk: Buffer) => {
    chunks.push(chunk)
    received += chunk.length
    if (received < need) return
    clearTimeout(timer)
    socket.off("data", onData)
    socket.pause()
    const first = Buffer.concat(chunks)
    socket.unshift(first)
    route(first)
  }
  socket.on("data", onData)
  socket.once("close", () => clearTimeout(timer))
}

/**
 * Starts `server` listening on `port`/`host` for the life of the scope; on close, the
 * connections it accepted (tracked in `sockets`) are destroyed. Returns the bound address.
 */
export const listen = (server: Net.Server, sockets: Set<Net.Socket>, port: number, host: string) =>
  Effect.gen(function*() {
    yield* Effect.callback<void, ServeError>((resume) => {
      const onError = (cause: Error) => resume(Effect.fail(new ServeError({ cause })))
      server.once("error", onError)
      server.listen({ port, host }, () => {
        server.off("error", onError)
        resume(Effect.void)
      })
    })
    yield* Effect.addFinalizer(() =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const socket of sockets) socket.destroy()
      })
    )
    const bound = server.address() as Net.AddressInfo
    return yield* Effect.fromResult(NetAddress.inetAddressFromIpString(bound.address, bound.port)).pipe(
      Effect.mapError((cause) => new ServeError({ cause }))
    )
  })

/** Remembers `socket` in `sockets` until it closes. */
export const track = (sockets: Set<Net.Socket>, socket: Net.Socket) => {
  sockets.add(socket)
  socket.once("close", () => sockets.delete(socket))
}
