import { Effect } from "effect"
import type { ActorRef } from "../../actors/Actor.ts"
import type { SessionEnv } from "./SessionEnv.ts"
import type { Transport } from "./Transport.ts"

/**
 * Hands a session's messages to its user actor without losing any: when the actor's mailbox is
 * full, the connection stops reading and the messages wait here, in order, until there is room.
 * So an overloaded server slows its devices down (TCP backpressure) instead of dropping writes.
 */
export class Delivery<M> {
  readonly #env: Pick<SessionEnv["Service"], "run">
  readonly #transport: () => Pick<Transport, "pause" | "resume"> | undefined
  #backlog: Array<M> | undefined

  constructor(env: Pick<SessionEnv["Service"], "run">, transport: () => Pick<Transport, "pause" | "resume"> | undefined) {
    this.#env = env
    this.#transport = transport
  }

  send(actor: { readonly ref: ActorRef<M> }, message: M) {
    if (this.#backlog !== undefined) return void this.#backlog.push(message)
    if (actor.ref.offer(message)) return
    const backlog = [message]
    this.#backlog = backlog
    this.#transport()?.pause()
    let delivered = 0
    const drain = () =>
      this.#env.run(
        Effect.gen(function*() {
          // Messages queued meanwhile join the backlog; the loop takes them too, in order.
          while (delivered < backlog.length) {
            if (!(yield* actor.ref.offerWait(backlog[delivered]!))) return false
            delivered++
          }
          return true
        }),
        (exit) => {
          // Whatever joined after the loop's last look goes too, before reading resumes.
          if (exit._tag === "Success" && exit.value && delivered < backlog.length) return drain()
          this.#backlog = undefined
          this.#transport()?.resume()
        }
      )
    drain()
  }
}
