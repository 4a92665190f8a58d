import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Layer } from "effect"
import { HttpRouter, HttpServer, HttpServerResponse } from "effect/http"
import { NodeHttpServer } from "@effect/platform-node"
import fc from "fast-check"
import * as Net from "node:net"
import * as PlainListener from "../../../src/adapters/net/PlainListener.ts"

const Hello = HttpRouter.add("GET", "/hello", HttpServerResponse.text("hello"))

/** A listener on a free port with one route; hardware connections are handed to `hardware`. */
const serve = (hardware?: (socket: Net.Socket) => void) =>
  Effect.gen(function*() {
    const context = yield* Layer.build(
      HttpRouter.serve(Hello, { disableLogger: true, disableListenLog: true }).pipe(
        Layer.provideMerge(PlainListener.layer({ port: 0, host: "127.0.0.1", sniffTimeout: "300 millis", hardware })),
        Layer.provide(NodeHttpServer.layerHttpServices)
      )
    )
    const server = yield* HttpServer.HttpServer.pipe(Effect.provideContext(context))
    const address = server.address
    if (address._tag === "UnixPathAddress") throw new Error("expected a TCP address")
    return address.port
  })

/** Writes `chunks` one by one on a new connection and resolves with everything the peer sent. */
const exchange = (port: number, chunks: ReadonlyArray<Uint8Array>) =>
  Effect.callback<string>((resume) => {
    const socket = Net.connect(port, "127.0.0.1")
    let received = ""
    socket.on("data", (d) => (received += d.toString("latin1")))
    socket.on("close", () => resume(Effect.succeed(received)))
    socket.on("error", () => socket.destroy())
    socket.on("connect", async () => {
      for (const chunk of chunks) {
        await new Promise<void>((done) => socket.write(chunk, () => done()))
      }
    })
  })

const request = Buffer.from("GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "latin1")

describe("plain listener (port unification)", () => {
  it("tells HTTP verbs from the hardware protocol by the first four bytes", () => {
    for (const verb of ["GET ", "POST", "PUT ", "HEAD", "OPTI", "PATC", "DELE", "TRAC", "CONN"]) {
      expect(PlainListener.sniff(Buffer.from(`${verb}/x`))).toBe("http")
    }
    expect(PlainListener.sniff(Buffer.from([0x1d, 0x00, 0x01, 0x00, 0x20]))).toBe("hardware")
    expect(PlainListener.sniff(Buffer.from("get /"))).toBe("hardware")
    fc.assert(fc.property(fc.uint8Array({ minLength: 4, maxLength: 16 }), (bytes) => {
      const sniffed = PlainListener.sniff(bytes)
      expect(sniffed === "http" || sniffed === "hardware").toBe(true)
    }))
  })

  it.live("serves HTTP on the plain port, however the request is split", () =>
    Effect.gen(function*() {
      const port = yield* serve()
      const whole = yield* exchange(port, [request])
      expect(whole).toContain("200 OK")
      expect(whole).toContain("hello")
      const trickled = yield* exchange(port, Array.from(request, (b) => Uint8Array.of(b)))
      expect(trickled).toContain("hello")
    }))

  it.live("hands a hardware connection over with its first bytes unread", () =>
    Effect.gen(function*() {
      const got = yield* Deferred.make<Buffer>()
      const port = yield* serve((socket) => {
        const chunks: Array<Buffer> = []
        socket.on("data", (d: Buffer) => {
          chunks.push(d)
          const all = Buffer.concat(chunks)
          if (all.length >= 37) {
            Deferred.doneUnsafe(got, Effect.succeed(all))
            socket.end(Buffer.from([0x00, 0x00, 0x01, 0x00, 0xc8]))
          }
        })
        socket.resume()
      })
      const login = Buffer.concat([Buffer.from([0x1d, 0x00, 0x01, 0x00, 0x20]), Buffer.from("a".repeat(32))])
      // Split inside the sniffed prefix on purpose.
      const reply = yield* exchange(port, [login.subarray(0, 2), login.subarray(2)])
      expect((yield* Deferred.await(got)).equals(login)).toBe(true)
      expect(Buffer.from(reply, "latin1")).toEqual(Buffer.from([0x00, 0x00, 0x01, 0x00, 0xc8]))
    }))

  it.live("closes a connection that says nothing", () =>
    Effect.gen(function*() {
      const port = yield* serve()
      // Resolves only when the server closes the connection.
      expect(yield* exchange(port, [])).toBe("")
      expect(yield* exchange(port, [Buffer.from("GE")])).toBe("")
    }))
})
