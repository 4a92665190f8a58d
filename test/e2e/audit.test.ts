/**
 * The audit trail end to end (issue 5 §3 and §5): an owner revokes a dashboard's share from an app
 * connected from one address (127.0.0.7; any 127.x.y.z reaches the loopback listener, and the
 * server records the connection's remote address in each event's metadata), and
 * `npx pinledger audit --email E --since … --type ShareRevoked` finds that revocation with that
 * address, as a user would ask after the fact; so does the owner API's `GET /api/v1/audit` while
 * the server runs, and a second revocation made through the owner API from another address
 * (127.0.0.9) is found with that one. The embedded database belongs to one process at a time, so
 * the CLI asks once the server has stopped.
 */
import { describe, expect, it } from "vitest"
import { Command } from "../../src/adapters/blynk/Command.ts"
import { bodyFields } from "../../src/adapters/blynk/Frame.ts"
import { AppClient } from "./support/appClient.ts"
import { call } from "../support/httpClient.ts"
import { runCli } from "./support/server.ts"
import { e2eSuite } from "./support/suite.ts"

const account = { email: "audit@e2e.test", password: "audit-secret" }
const OWNER_ADDRESS = "127.0.0.7"
const API_ADDRESS = "127.0.0.9"

const { server, devices, opened, dataDir } = e2eSuite({
  provision: ({ provision }) => provision(account, { lamp: "audit-lamp" })
})

/** Sends an owner request and resolves with the fields of the reply of the same command and id. */
const ask = async (app: AppClient, command: number, fields: ReadonlyArray<string>) => {
  const id = app.send(command, fields)
  const answer = await app.waitFor((f) => f.id === id && (f._tag === "Response" || f.command === command))
  if (answer._tag === "Response") throw new Error(`command ${command} answered status ${answer.status}`)
  return bodyFields(answer.body)
}

interface AuditLine {
  readonly type?: string
  readonly stream?: string
  readonly actor?: string
  readonly remoteAddress?: string
  readonly data?: { readonly dashId?: number }
  readonly next?: number | null
}

const audit = async (args: ReadonlyArray<string>): Promise<Array<AuditLine>> => {
  const output = await runCli(dataDir(), ["audit", "--email", account.email, ...args, "--json"])
  // Standard output carries only the answer: one JSON object a line.
  return output.trim().split("\n").filter((line) => line.startsWith("{")).map((line) => JSON.parse(line) as AuditLine)
}

describe("audit of a share revocation", () => {
  it("`pinledger audit --type ShareRevoked` finds the revocation with the address it came from", async () => {
    const srv = server()
    const { lamp } = devices()
    const since = new Date(Date.now() - 60_000).toISOString()
    const owner = opened.app(await AppClient.connect(srv.httpsPort, srv.ca, OWNER_ADDRESS), "owner")
    expect(await owner.login(account.email, account.password)).toBe(200)

    const [first] = await ask(owner, Command.GET_SHARE_TOKEN, [String(lamp.dashId)])
    const [second] = await ask(owner, Command.REFRESH_SHARE_TOKEN, [String(lamp.dashId)])
    expect(second).not.toBe(first)
    await owner.close()

    // The owner API, with HTTP Basic from another address: a second revocation, then the audit.
    const basic = { authorization: `Basic ${Buffer.from(`${account.email}:${account.password}`).toString("base64")}` }
    const api = (path: string, method = "GET") =>
      call({ port: srv.httpPort, path, method, localAddress: API_ADDRESS, headers: basic })
    expect((await api(`/api/v1/dashboards/${lamp.dashId}/share/revoke`, "POST")).status).toBe(200)
    const page = await api(`/api/v1/audit?type=ShareRevoked&since=${encodeURIComponent(since)}`)
    expect(page.status).toBe(200)
    const { entries, next } = JSON.parse(page.text) as { entries: Array<AuditLine>; next: number | null }
    expect(entries.map((e) => [e.type, e.actor, e.remoteAddress?.replace(/:\d+$/, "")])).toEqual([
      ["ShareRevoked", `app:${account.email}`, OWNER_ADDRESS],
      ["ShareRevoked", `api:${account.email}`, API_ADDRESS]
    ])
    expect(next).toBeNull()
    expect((await srv.stop()).code).toBe(0)

    const found = await audit(["--since", since, "--type", "ShareRevoked"])
    const events = found.filter((line) => line.type !== undefined)
    expect(events).toHaveLength(2)
    expect(events[0]).toMatchObject({ type: "ShareRevoked", data: { dashId: lamp.dashId }, actor: `app:${account.email}` })
    expect(events[0]!.remoteAddress).toMatch(new RegExp(`^${OWNER_ADDRESS.replaceAll(".", "\\.")}:\\d+$`))
    expect(events[1]).toMatchObject({ type: "ShareRevoked", data: { dashId: lamp.dashId }, actor: `api:${account.email}` })
    expect(found.at(-1)).toEqual({ next: null })

    // By address: the revocation and the grant came from there; nothing came from another address.
    const fromOwner = await audit(["--since", since, "--address", OWNER_ADDRESS, "--type", "ShareRevoked,ShareGranted"])
    expect(fromOwner.filter((line) => line.type !== undefined).map((line) => line.type)).toEqual(["ShareGranted", "ShareRevoked", "ShareGranted"])
    const fromApi = await audit(["--since", since, "--address", API_ADDRESS, "--type", "ShareRevoked"])
    expect(fromApi.filter((line) => line.type !== undefined).map((line) => line.actor)).toEqual([`api:${account.email}`])
    expect((await audit(["--address", "127.0.0.8"])).filter((line) => line.type !== undefined)).toEqual([])
  })
})
