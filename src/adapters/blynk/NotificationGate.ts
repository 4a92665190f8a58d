import type { DevicePeer } from "../../actors/Peer.ts"
import type { DeviceNotify } from "../../actors/Notify.ts"
import type { NotificationKind } from "../../domain/Notifications.ts"
import { Command } from "./Command.ts"
import { bodyText, type Message } from "./Frame.ts"

const kinds: Readonly<Record<number, NotificationKind>> = {
  [Command.PUSH_NOTIFICATION]: "push",
  [Command.EMAIL]: "email",
  [Command.TWEET]: "tweet",
  [Command.SMS]: "sms"
}

/**
 * The per-connection notification interval (protocol.md §6.2): at most one message of each kind
 * per `intervalSeconds` on one hardware connection. A request takes its kind's slot when handed
 * to the user actor and gives it back if the actor refuses it, so, as in the legacy server, only
 * accepted messages count.
 */
export class NotificationGate {
  readonly #last = new Map<NotificationKind, number>()

  /** The message for the user actor, or undefined when the interval forbids it (QUOTA_LIMIT). */
  request(frame: Message, peer: DevicePeer, now: number, intervalSeconds: number): DeviceNotify | undefined {
    const kind = kinds[frame.command]!
    const last = this.#last.get(kind)
    if (intervalSeconds > 0 && last !== undefined && now - last < intervalSeconds * 1000) return undefined
    this.#last.set(kind, now)
    return {
      _tag: "DeviceNotify",
      peer,
      id: frame.id,
      kind,
      body: bodyText(frame.body),
      refused: () => {
        if (this.#last.get(kind) !== now) return
        if (last === undefined) this.#last.delete(kind)
        else this.#last.set(kind, last)
      }
    }
  }
}
