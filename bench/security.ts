/**
 * `npm run bench:security`: what the security work of issue 4 costs, on the in-process server
 * (the same layers as `src/main.ts`, on a fresh embedded database, free ports of 127.0.0.1):
 *   - app logins over TLS, one new connection each (the salted scrypt check of the password);
 *   - refused app logins, a wrong password and an e-mail with no account (the same scrypt each);
 *   - share logins over TLS (the permissions projection, then the owner's actor);
 *   - revocation: REFRESH_SHARE_TOKEN with `--shared` (100) shared sessions open on the dashboard,
 *     time until the owner has the new token and until every shared session is closed;
 *   - bridged writes between two devices of one account, one in flight at a time (the target's
 *     forward is awaited), and the same writes without a bridge, for comparison.
 * Flags: --logins N (100), --shared N (100), --rounds N (5), --writes N (5000).
 * Prints a table, then `metric <name> <value>` lines. Times are wall clock on a shared machine.
 */
import { performance } from "node:perf_hooks"
import { Command, Status } from "../src/adapters/blynk/Command.ts"
import { BlynkClient, isMessage } from "../test/support/BlynkClient.ts"
import { connectDevice, createDash, createDevice, newAccount, nextId } from "../test/support/blynkFixtures.ts"
import { startOnFreshStorage } from "../test/support/blynkServer.ts"

const flag = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`)
  const value = at < 0 ? fallback : Number(process.argv[at + 1])
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} wants a whole number, got ${process.argv[at + 1]}`)
  return value
}
const logins = flag("logins", 100)
const sharedCount = flag("shared", 100)
const rounds = flag("rounds", 5)
const writes = flag("writes", 5000)

const percentile = (sorted: ReadonlyArray<number>, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!
const summary = (samples: Array<number>) => {
  const sorted = [...samples].sort((a, b) => a - b)
  const total = samples.reduce((a, b) => a + b, 0)
  return { perSecond: (samples.length * 1000) / total, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99) }
}
const ms = (n: number) => n.toFixed(1)

// No idle timeouts: the devices sit silent through the login rounds.
const server = await startOnFreshStorage({ messageQuota: 1_000_000, registration: "open", hardwareIdleSeconds: 0, appIdleSeconds: 0 })
const rows: Array<[string, string, string, string]> = []
const metrics: Array<[string, number]> = []
try {
  const { app: owner, email, hash } = await newAccount(server)
  await createDash(owner)
  const tokenA = await createDevice(owner, 1, 0)
  const tokenB = await createDevice(owner, 1, 1)
  const a = await connectDevice(server, tokenA)
  const b = await connectDevice(server, tokenB)
  if (await owner.request(Command.ACTIVATE_DASHBOARD, nextId(), ["1"]) !== Status.OK) throw new Error("activate failed")
  if (await owner.request(Command.SHARING, nextId(), ["1", "on"]) !== Status.OK) throw new Error("sharing on failed")
  let shareToken = (await owner.ask(Command.GET_SHARE_TOKEN, nextId(), ["1"])).fields[0]!

  const timedLogins = async (command: number, fields: () => ReadonlyArray<string>, expected: number = Status.OK, count = logins) => {
    const samples: Array<number> = []
    for (let i = 0; i < count; i++) {
      const started = performance.now()
      const client = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
      const status = await client.request(command, 1, fields())
      samples.push(performance.now() - started)
      if (status !== expected) throw new Error(`login answered ${status}, not ${expected}`)
      await client.close()
    }
    return summary(samples)
  }
  const app = await timedLogins(Command.LOGIN, () => [email, hash, "Android", "2.27.0", "Blynk"])
  rows.push(["app login (TLS connect + scrypt)", ms(app.perSecond), ms(app.p50), ms(app.p99)])
  // Refused logins (a tenth as many, under the throttle's limit): an e-mail with no account
  // costs the same password derivation as a wrong password, so the time does not tell them apart.
  const few = Math.max(1, Math.floor(logins / 10))
  const wrong = await timedLogins(Command.LOGIN, () => [email, "x".repeat(44), "Android", "2.27.0", "Blynk"], Status.USER_NOT_AUTHENTICATED, few)
  const unknown = await timedLogins(Command.LOGIN, () => ["nobody@example.com", hash, "Android", "2.27.0", "Blynk"], Status.USER_NOT_REGISTERED, few)
  rows.push(["app login refused: wrong password", ms(wrong.perSecond), ms(wrong.p50), ms(wrong.p99)])
  rows.push(["app login refused: no such account", ms(unknown.perSecond), ms(unknown.p50), ms(unknown.p99)])
  metrics.push(["security_login_wrong_password_p50_ms", wrong.p50], ["security_login_unknown_account_p50_ms", unknown.p50])
  const share = await timedLogins(Command.SHARE_LOGIN, () => [email, shareToken, "Android", "2.27.0"])
  rows.push(["share login (TLS connect + projection + actor)", ms(share.perSecond), ms(share.p50), ms(share.p99)])
  metrics.push(["security_app_login_p50_ms", app.p50], ["security_share_login_p50_ms", share.p50])

  const answered: Array<number> = []
  const allClosed: Array<number> = []
  for (let round = 0; round < rounds; round++) {
    const sessions: Array<BlynkClient> = []
    for (let i = 0; i < sharedCount; i++) {
      const client = await BlynkClient.connect({ port: server.tlsPort, framing: "app", tls: true })
      if (await client.request(Command.SHARE_LOGIN, 1, [email, shareToken, "Android", "2.27.0"]) !== Status.OK) {
        throw new Error("share login failed")
      }
      sessions.push(client)
    }
    const started = performance.now()
    const closed = Promise.all(sessions.map((s) => s.closed))
    const answer = await owner.ask(Command.REFRESH_SHARE_TOKEN, nextId(), ["1"])
    answered.push(performance.now() - started)
    await closed
    allClosed.push(performance.now() - started)
    shareToken = answer.fields[0]!
  }
  const answeredSorted = [...answered].sort((x, y) => x - y)
  const closedSorted = [...allClosed].sort((x, y) => x - y)
  rows.push([`revocation, ${sharedCount} shared sessions: new token answered`, "", ms(percentile(answeredSorted, 0.5)), ms(answeredSorted.at(-1)!)])
  rows.push([`revocation, ${sharedCount} shared sessions: all closed`, "", ms(percentile(closedSorted, 0.5)), ms(closedSorted.at(-1)!)])
  metrics.push(["security_revocation_all_closed_ms", percentile(closedSorted, 0.5)])

  if (await a.request(Command.BRIDGE, 2, ["64", "i", tokenB]) !== Status.OK) throw new Error("bridge init failed")
  const oneByOne = async (send: (i: number) => void, arrived: () => Promise<unknown>) => {
    const started = performance.now()
    for (let i = 0; i < writes; i++) {
      const next = arrived()
      send(i)
      await next
    }
    return (writes * 1000) / (performance.now() - started)
  }
  const bridged = await oneByOne((i) => a.send(Command.BRIDGE, 3, ["64", "vw", "1", String(i)]), () => b.next(isMessage(Command.BRIDGE)))
  const direct = await oneByOne((i) => a.send(Command.HARDWARE, 4, ["vw", "1", String(i)]), () => owner.next(isMessage(Command.HARDWARE)))
  rows.push(["bridged writes A → B, one in flight", ms(bridged), "", ""])
  rows.push(["device writes A → app, one in flight (comparison)", ms(direct), "", ""])
  metrics.push(["security_bridge_writes_per_s", bridged])
  await Promise.all([a.close(), b.close(), owner.close()])
} finally {
  await server.close()
}

const widths = [52, 10, 10, 10]
const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ")
console.log(`\nSecurity costs (in-process server, embedded database, ${logins} logins, ${sharedCount} shared sessions x ${rounds}, ${writes} writes)`)
console.log(line(["what", "per s", "p50 ms", "p99/max ms"]))
for (const row of rows) console.log(line(row))
console.log("")
for (const [name, value] of metrics) console.log(`metric ${name} ${value.toFixed(1)}`)
process.exit(0)
