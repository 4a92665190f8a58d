/**
 * Failed SHARE_LOGINs count towards the same per-address login throttle as app logins (issue 4
 * §5, src/domain/Throttle.ts): Throttle.test.ts covers wrong passwords and invalid hardware
 * tokens; this adds share logins. With `maxFailures` 5: four bad share logins from an address
 * leave it open, the fifth blocks it; then even the right share token, and the owner's right
 * password, are answered NOT_ALLOWED from there, while another loopback address logs in with both
 * and hardware logins from the blocked address (a separate count) still work.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Effect, Exit, Scope, Stream } from "effect"
import { throttleStream } from "../../../src/actors/Throttle.ts"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { EventStore } from "../../../src/eventstore/EventStore.ts"
import { type Backend, backends } from "../../support/backends.ts"
import { BlynkClient } from "../../support/BlynkClient.ts"
import { createDash, createDevice, newAccount, nextId } from "../../support/blynkFixtures.ts"
import { type RunningServer, startBlynkServer } from "../../support/blynkServer.ts"

const throttle = { maxFailures: 5, windowMs: 600_000, blockMs: 600_000 }
const attacker = "127.0.0.7"
const elsewhere = "127.0.0.8"

describe.each(backends.map((backend) => [backend.name, backend] as const))("share login throttling on %s", (_name, backend: Backend) => {
  let server: RunningServer
  let release: () => Promise<void> = async () => {}

  beforeAll(async () => {
    const scope = Effect.runSync(Scope.make())
    release = () => Effect.runPromise(Scope.close(scope, Exit.void))
    const storage = await Effect.runPromise(Scope.provide(backend.storage, scope).pipe(Effect.orDie))
    server = await startBlynkServer(storage, {}, throttle)
  })
  afterAll(async () => {
    await server?.close()
    await release()
  })

  const app = (from: string) => BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true, localAddress: from })
  const shareLogin = (client: BlynkClient, email: string, token: string) =>
    client.request(Command.SHARE_LOGIN, nextId(), [email, token, "Android", "2.27.0"])
  const typesIn = (stream: string) =>
    server.run(Effect.flatMap(EventStore, (store) => Stream.runCollect(store.readStream(stream))).pipe(Effect.map((events) => Array.from(events, (e) => e.type))))

  it("five bad SHARE_LOGINs block the address for share and app logins, right token or not; another address still logs in", async () => {
    const { app: owner, email, hash } = await newAccount(server)
    await createDash(owner)
    const deviceToken = await createDevice(owner, 1, 0)
    const got = await owner.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])
    const shareToken = got.fields[0]!
    expect(shareToken).toMatch(/^[A-Za-z0-9_-]{32}$/)
    expect(await owner.request(Command.SHARING, nextId(), ["1", "on"])).toBe(Status.OK)

    const prober = await app(attacker)
    const bad: ReadonlyArray<readonly [string, string]> = [
      [email, "z".repeat(32)], // unknown token
      [`other-${email}`, shareToken], // the right token for another owner
      [email, shareToken.slice(1)], // not a token at all
      [email, deviceToken] // a device token is no share token
    ]
    for (const [who, token] of bad) expect(await shareLogin(prober, who, token), `${who} ${token}`).toBe(Status.NOT_ALLOWED)
    // Four failures do not block yet: the right token still opens the dashboard from there.
    const before = await app(attacker)
    expect(await shareLogin(before, email, shareToken)).toBe(Status.OK)
    await before.close()

    // The fifth does.
    expect(await shareLogin(prober, email, "q".repeat(32))).toBe(Status.NOT_ALLOWED)
    expect(await typesIn(throttleStream("login", attacker))).toEqual([
      "LoginFailed", "LoginFailed", "LoginFailed", "LoginFailed", "LoginFailed", "AddressBlocked"
    ])
    const blocked = await app(attacker)
    expect(await shareLogin(blocked, email, shareToken)).toBe(Status.NOT_ALLOWED)
    // Share and app logins are one count: the owner's right password is refused from there too.
    expect(await blocked.request(Command.LOGIN, nextId(), [email, hash, "Android", "2.27.0", "Blynk"])).toBe(Status.NOT_ALLOWED)
    // Refusals of a blocked address are no new failures.
    expect(await typesIn(throttleStream("login", attacker))).toHaveLength(6)

    // Another address logs in with the same token and the same password.
    const other = await app(elsewhere)
    expect(await shareLogin(other, email, shareToken)).toBe(Status.OK)
    const otherOwner = await app(elsewhere)
    expect(await otherOwner.request(Command.LOGIN, nextId(), [email, hash, "Android", "2.27.0", "Blynk"])).toBe(Status.OK)
    expect(await typesIn(throttleStream("login", elsewhere))).toEqual([])

    // Hardware logins are counted apart: a device at the blocked address still logs in.
    const device = await BlynkClient.connect({ port: server.plainPort, framing: "hardware", localAddress: attacker })
    expect(await device.request(Command.HARDWARE_LOGIN, 1, [deviceToken])).toBe(Status.OK)

    for (const c of [prober, blocked, other, otherOwner, device, owner]) await c.close()
  })
})
