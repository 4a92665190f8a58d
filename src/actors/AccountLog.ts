import { Effect, Stream } from "effect"
import { type AccountCommand, AccountEvent, AccountRejected, type AccountState, decideAll, evolve, type Limits } from "../domain/Account.ts"
import { accountStream } from "../domain/Streams.ts"
import type { Metadata } from "../eventstore/Event.ts"
import * as EventCodec from "../eventstore/EventCodec.ts"

const log = EventCodec.typed(EventCodec.make(AccountEvent))

/** An account's state, rebuilt from its stream, and the version it was read at. */
export const load = (stream: string) =>
  log.readStream(stream).pipe(
    Stream.runFold(
      () => ({ state: undefined as AccountState, version: 0 }),
      (acc, { event, recorded }) => ({ state: evolve(acc.state, event), version: recorded.version })
    )
  )

/**
 * Runs commands against an account through its decider and appends what they decide, all or
 * nothing, at the version it read: a concurrent writer makes this fail with WrongExpectedVersion
 * rather than write over it. (The user actor will hold the state instead of reading it each time.)
 */
export const execute = (
  email: string,
  appName: string,
  commands: (state: AccountState) => ReadonlyArray<AccountCommand>,
  metadata: Metadata,
  limits?: Limits
) =>
  Effect.gen(function*() {
    const stream = accountStream(email, appName)
    const { state, version } = yield* load(stream)
    const decided = decideAll(state, commands(state), limits)
    if (decided instanceof AccountRejected) return yield* decided
    if (decided.events.length > 0) yield* log.append(stream, version === 0 ? "noStream" : version, decided.events, metadata)
    return decided
  })
