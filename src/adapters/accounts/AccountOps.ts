import { Effect } from "effect"
import { Directory } from "../../actors/Directory.ts"
import type { ExecuteResult, UserView } from "../../actors/UserActor.ts"
import type { AccountCommand, AccountRejected, AccountState } from "../../domain/Account.ts"
import type { Metadata } from "../../eventstore/Event.ts"

/**
 * Runs commands through an account's user actor (its single writer) when no app session of the
 * account asks: registration, password reset, address confirmation. Fails with the decider's
 * rejection; succeeds once the events are committed.
 */
export const executeOnAccount = (
  stream: string,
  commands: (state: AccountState) => ReadonlyArray<AccountCommand>,
  metadata: Metadata
) =>
  Effect.gen(function*() {
    const actor = yield* (yield* Directory).actor(stream)
    return yield* actor.ref.ask<ExecuteResult, AccountRejected>((reply) => ({
      _tag: "Execute",
      peer: undefined,
      id: 0,
      commands,
      metadata,
      answer: () => undefined,
      reply
    }))
  })

/**
 * An account as its actor holds it; `undefined` if there is none, in which case the actor started
 * for the look-up is stopped again (unless sessions use it), so made-up addresses cost nothing.
 */
export const readAccount = (stream: string) =>
  Effect.gen(function*() {
    const directory = yield* Directory
    const actor = yield* directory.actor(stream)
    const view = yield* actor.ref.ask<UserView, never>((reply) => ({ _tag: "Read", reply }))
    if (view.account === undefined && view.apps === 0 && view.online.size === 0) yield* directory.evict(stream)
    return view.account
  })
