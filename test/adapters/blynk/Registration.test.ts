import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Command, Status } from "../../../src/adapters/blynk/Command.ts"
import { clientPasswordHash } from "../../../src/adapters/security/Passwords.ts"
import { BlynkClient } from "../../support/BlynkClient.ts"
import { type RunningServer, startOnFreshStorage } from "../../support/blynkServer.ts"

let server: RunningServer

beforeAll(async () => {
  server = await startOnFreshStorage({ registration: "closed" })
})
afterAll(() => server.close())

const register = async (email: string) => {
  const app = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
  const status = await app.request(Command.REGISTER, 1, [email, clientPasswordHash(email, "pw"), "Blynk"])
  return { app, status }
}

describe("registration closed (the default)", () => {
  it("lets the very first account register through the protocol and refuses the next ones", async () => {
    const first = await register("first@example.com")
    expect(first.status).toBe(Status.OK)
    expect(await first.app.request(Command.LOGIN, 2, ["first@example.com", clientPasswordHash("first@example.com", "pw")])).toBe(Status.OK)
    const second = await register("second@example.com")
    expect(second.status).toBe(Status.NOT_ALLOWED)
    expect(await second.app.request(Command.LOGIN, 2, ["second@example.com", clientPasswordHash("second@example.com", "pw")]))
      .toBe(Status.USER_NOT_REGISTERED)
    await first.app.close()
    await second.app.close()
  })
})
