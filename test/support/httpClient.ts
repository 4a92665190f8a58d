import * as Http from "node:http"
import * as Https from "node:https"

export interface HttpAnswer {
  readonly status: number
  readonly headers: Http.IncomingHttpHeaders
  readonly body: Buffer
  readonly text: string
}

export interface HttpCall {
  readonly port: number
  readonly path: string
  readonly method?: string
  /** Sent as is; a JSON value is sent with `contentType` (application/json unless given). */
  readonly body?: string | Buffer
  readonly contentType?: string
  /** Over TLS, without checking the certificate (tests of the API, not of TLS). */
  readonly tls?: boolean
  /** The local address to call from (any 127.x.y.z works on loopback): another "remote address". */
  readonly localAddress?: string
  /** Send the body chunked, without a content-length. */
  readonly chunked?: boolean
  /** More request headers (`authorization`…). */
  readonly headers?: Readonly<Record<string, string>>
}

/** One HTTP(S) request on a connection of its own; resolves with the whole answer. */
export const call = (options: HttpCall): Promise<HttpAnswer> =>
  new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { ...options.headers }
    if (options.body !== undefined) {
      headers["content-type"] = options.contentType ?? "application/json"
      if (options.chunked !== true) headers["content-length"] = Buffer.byteLength(options.body)
    } else if (options.contentType !== undefined) {
      headers["content-type"] = options.contentType
    }
    const request = (options.tls ? Https.request : Http.request)({
      host: "127.0.0.1",
      port: options.port,
      path: options.path,
      method: options.method ?? "GET",
      headers,
      agent: false,
      rejectUnauthorized: false,
      ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress })
    }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => {
        const body = Buffer.concat(chunks)
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, text: body.toString("utf8") })
      })
      response.on("error", reject)
    })
    request.on("error", reject)
    if (options.body !== undefined) request.write(options.body)
    request.end()
  })

/** `call` with a JSON body. */
export const callJson = (options: Omit<HttpCall, "body"> & { readonly json: unknown }) =>
  call({ ...options, body: JSON.stringify(options.json) })
