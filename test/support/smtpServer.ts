import type { AddressInfo } from "node:net"
import { SMTPServer } from "smtp-server"

/** A message as the SMTP server received it. */
export interface ReceivedMail {
  readonly user: string | undefined
  readonly from: string
  readonly to: ReadonlyArray<string>
  readonly subject: string
  readonly text: string
  readonly raw: string
}

/**
 * What the server does with the next MAIL FROM: take the message, refuse it (550), or keep the
 * sender waiting for an answer until `setMode` releases it.
 */
export type SmtpMode = "accept" | "reject" | "hold"

const decodeQuotedPrintable = (s: string) =>
  Buffer.from(s.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8")

const parse = (raw: string) => {
  const split = raw.indexOf("\r\n\r\n")
  const head = raw.slice(0, split).replace(/\r\n[ \t]+/g, " ")
  const body = raw.slice(split + 4)
  const header = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "im").exec(head)?.[1]?.trim() ?? ""
  const encoding = header("Content-Transfer-Encoding").toLowerCase()
  const text = encoding === "quoted-printable"
    ? decodeQuotedPrintable(body)
    : encoding === "base64"
    ? Buffer.from(body, "base64").toString("utf8")
    : body
  return { subject: header("Subject"), text: text.replace(/\r\n$/, "") }
}

/**
 * A real SMTP server on a free port of 127.0.0.1 for tests: it requires the credentials given
 * (plain AUTH without TLS, as on a test bench), keeps what it receives, and lets a test await
 * a message or a delivery attempt instead of sleeping.
 */
export const startSmtpServer = async (credentials: { readonly user: string; readonly pass: string }) => {
  const received: Array<ReceivedMail> = []
  let attempts = 0
  let mode: SmtpMode = "accept"
  let held: Array<(err?: Error | null) => void> = []
  let waiters: Array<() => void> = []
  const changed = () => {
    const w = waiters
    waiters = []
    for (const resolve of w) resolve()
  }
  const until = <A>(look: () => A | undefined): Promise<A> =>
    new Promise((resolve) => {
      const check = () => {
        const found = look()
        if (found !== undefined) resolve(found)
        else waiters.push(check)
      }
      check()
    })
  const refusal = () => Object.assign(new Error("mailbox unavailable"), { responseCode: 550 })

  const server = new SMTPServer({
    logger: false,
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (auth.username === credentials.user && auth.password === credentials.pass) return callback(null, { user: auth.username })
      callback(new Error("invalid credentials"))
    },
    onMailFrom(_address, _session, callback) {
      attempts++
      changed()
      if (mode === "accept") return callback()
      if (mode === "reject") return callback(refusal())
      held.push(callback)
    },
    onData(stream, session, callback) {
      const chunks: Array<Buffer> = []
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8")
        const from = session.envelope.mailFrom
        received.push({
          user: typeof session.user === "string" ? session.user : undefined,
          from: from === false ? "" : from.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          ...parse(raw),
          raw
        })
        callback()
        changed()
      })
    }
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()))
  const port = (server.server.address() as AddressInfo).port

  return {
    port,
    url: `smtp://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.pass)}@127.0.0.1:${port}`,
    received,
    get attempts() {
      return attempts
    },
    /** Changes what the server does from now on; held senders get the new answer (held ones stay held). */
    setMode(next: SmtpMode) {
      mode = next
      if (next === "hold") return
      const release = held
      held = []
      for (const callback of release) callback(next === "reject" ? refusal() : null)
    },
    /** Resolves once the server has seen at least `n` MAIL FROM commands. */
    awaitAttempts: (n: number) => until(() => (attempts >= n ? attempts : undefined)),
    /** Resolves with the first received message that matches. */
    awaitMail: (match: (mail: ReceivedMail) => boolean) => until(() => received.find(match)),
    close: () => new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

export type SmtpTestServer = Awaited<ReturnType<typeof startSmtpServer>>
