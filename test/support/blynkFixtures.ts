import { Command } from "../../src/adapters/blynk/Command.ts"
import { clientPasswordHash } from "../../src/adapters/security/Passwords.ts"
import { BlynkClient } from "./BlynkClient.ts"
import type { RunningServer } from "./blynkServer.ts"

let accounts = 0

/** A fresh account: registered and logged in over TLS; returns the app and its credentials. */
export const newAccount = async (server: RunningServer, password = "secret") => {
  const email = `user${++accounts}-${process.pid}@example.com`
  const hash = clientPasswordHash(email, password)
  const app = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
  const registered = await app.request(Command.REGISTER, 1, [email, hash, "Blynk"])
  if (registered !== 200) throw new Error(`register answered ${registered}`)
  const login = await app.request(Command.LOGIN, 2, [email, hash, "Android", "2.27.0", "Blynk"])
  if (login !== 200) throw new Error(`login answered ${login}`)
  return { app, email, hash }
}

/** Another app session of the same account. */
export const loginApp = async (server: RunningServer, email: string, hash: string) => {
  const app = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
  const status = await app.request(Command.LOGIN, 1, [email, hash, "iOS", "1.10.4", "Blynk"])
  if (status !== 200) throw new Error(`login answered ${status}`)
  return app
}

let ids = 100

/** Creates a dashboard with the JSON given (id 1 by default). */
export const createDash = async (app: BlynkClient, dash: Record<string, unknown> = {}) => {
  const status = await app.request(Command.CREATE_DASH, ++ids, [JSON.stringify({ id: 1, name: "Home", ...dash })])
  if (status !== 200) throw new Error(`create dash answered ${status}`)
}

/** Creates a device and returns its token. */
export const createDevice = async (app: BlynkClient, dashId: number, deviceId: number, name = `device ${deviceId}`) => {
  const answer = await app.ask(Command.CREATE_DEVICE, ++ids, [String(dashId), JSON.stringify({ id: deviceId, name, boardType: "ESP32" })])
  if (answer._tag !== "Message") throw new Error(`create device answered ${answer._tag === "Response" ? answer.status : "?"}`)
  return JSON.parse(answer.fields[0]!).token as string
}

/** A device connection logged in with `token` (over TLS when asked). */
export const connectDevice = async (server: RunningServer, token: string, tls = false) => {
  const device = await BlynkClient.connect({ port: tls ? server.tlsPort : server.plainPort, framing: "hardware", tls })
  const status = await device.request(Command.HARDWARE_LOGIN, 1, [token])
  if (status !== 200) throw new Error(`hardware login answered ${status}`)
  return device
}

export const nextId = () => ++ids
