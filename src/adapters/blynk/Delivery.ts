import type { UserMessage } from "../../actors/UserActor.ts"
import type { UserActor } from "../../actors/UserActor.ts"
import { Effect } from "effect"
import type { SessionEnv } from "./SessionEnv.ts"
import type { Transport } from "./Transport.ts"

/**
 * Hands a session's messages to its user actor without losing any: when the actor's mailbox is
 * full, the connection stops reading and the messages wait here, in order, until there is room.
 * So an overloaded server slows its devices down (TCP backpressure) instead of dropping writes.
 */
export class Delivery {
  readonly #env: SessionEnv["Service"]
  readonly #transport: () => Transport | undefined
  #backlog: Array<UserMessage> | undefined

  constructor(env: SessionEnv["Service"], transport: () => Transport | undefined) {
    this.#env = env
    this.#transport = transport
  }

  send(actor: UserActor, message: UserMessage) {
    if (this.#backlog !== undefined) return void this.#backlog.push(message)
    if (actor.ref.offer(message)) return
    const backlog = [message]
    this.#backlog = backlog
    this.#transport()?.pause()
    this.#env.run(
      Effect.gen(function*() {
        // Messages queued meanwhile join the backlog; the loop takes them too, in order.
        for (let i = 0; i < backlog.length; i++) {
          if (!(yield* actor.ref.offerWait(backlog[i]!))) return
        }
      }),
      () => {
        this.#backlog = undefined
        this.#transport()?.resume()
      }
    )
  }
}
