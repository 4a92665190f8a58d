import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { clientPasswordHash } from "../../../src/adapters/security/Passwords.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import type { Storage } from "../../support/backends.ts"
import { BlynkClient } from "../../support/BlynkClient.ts"
import { createDash, createDevice, newAccount } from "../../support/blynkFixtures.ts"
import { openStorage, type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

const throttle = { maxFailures: 3, windowMs: 600_000, blockMs: 600_000 }
let storage: Storage
let server: RunningServer

let releaseStorage: () => Promise<void> = async () => {}

beforeAll(async () => {
  const opened = await openStorage()
  releaseStorage = opened.release
  storage = opened.storage
  server = await startBlynkServer(storage, {}, throttle)
})
afterAll(async () => {
  await server.close()
  await releaseStorage()
})

const app = (from: string) => BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true, localAddress: from })
const device = (from: string) => BlynkClient.connect({ port: server.plainPort, framing: "hardware", localAddress: from })

const typesIn = (s: RunningServer, stream: string) =>
  s.run(Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readStream(stream))).pipe(Effect.map((events) => Array.from(events, (e) => e.type))))

describe("login throttling (issue 4 §5)", () => {
  it("failed app logins from one address block it, right password or not; another address still logs in; the block is in the log and survives a restart", async () => {
    const { app: owner, email, hash } = await newAccount(server)
    await owner.close()
    const attacker = await app("127.0.0.3")
    for (let i = 0; i < 3; i++) {
      expect(await attacker.request(Command.LOGIN, 10 + i, [email, clientPasswordHash(email, `guess ${i}`)])).toBe(Status.USER_NOT_AUTHENTICATED)
    }
    expect(await attacker.request(Command.LOGIN, 20, [email, hash])).toBe(Status.NOT_ALLOWED)
    const elsewhere = await app("127.0.0.4")
    expect(await elsewhere.request(Command.LOGIN, 1, [email, hash])).toBe(Status.OK)
    expect(await typesIn(server, throttleStream("login", "127.0.0.3"))).toEqual(["LoginFailed", "LoginFailed", "LoginFailed", "AddressBlocked"])
    await attacker.close()
    await elsewhere.close()

    // The server stopped and started again on the same log: still blocked.
    await server.close()
    server = await startBlynkServer(storage, {}, throttle)
    const retry = await app("127.0.0.3")
    expect(await retry.request(Command.LOGIN, 1, [email, hash])).toBe(Status.NOT_ALLOWED)
    await retry.close()
  })

  it("repeated invalid hardware tokens block that address for hardware logins only", async () => {
    const { app: owner, email, hash } = await newAccount(server)
    await createDash(owner)
    const token = await createDevice(owner, 1, 0)
    const prober = await device("127.0.0.5")
    expect(await prober.request(Command.HARDWARE_LOGIN, 1, ["short"])).toBe(Status.INVALID_TOKEN)
    expect(await prober.request(Command.HARDWARE_LOGIN, 1, ["x".repeat(32)])).toBe(Status.INVALID_TOKEN)
    expect(await prober.request(Command.HARDWARE_LOGIN, 1, ["y".repeat(32)])).toBe(Status.INVALID_TOKEN)
    // Blocked now: even the right token is refused from there, and the socket stays open.
    expect(await prober.request(Command.HARDWARE_LOGIN, 1, [token])).toBe(Status.INVALID_TOKEN)
    const other = await device("127.0.0.6")
    expect(await other.request(Command.HARDWARE_LOGIN, 1, [token])).toBe(Status.OK)
    // App logins from the blocked address are a separate count.
    const sameHost = await app("127.0.0.5")
    expect(await sameHost.request(Command.LOGIN, 1, [email, hash])).toBe(Status.OK)
    for (const c of [prober, other, sameHost, owner]) await c.close()
  })
})
