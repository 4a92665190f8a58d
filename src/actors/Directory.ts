import { Context, Deferred, Effect, Exit, Layer, Scope } from "effect"
import type { SqlClient } from "effect/sql/SqlClient"
import type { EventStore } from "../eventstore/EventStore.ts"
import * as UserActor from "./UserActor.ts"

/**
 * Finds the user actor of an account (DESIGN.md: account → actor), starting it on first use. Each
 * actor lives in its own scope under the directory's, so it can be stopped alone (an account that
 * turned out not to exist) and all stop with the server.
 */
export class Directory extends Context.Service<Directory, {
  readonly actor: (stream: string) => Effect.Effect<UserActor.UserActor>
  /** Stops an account's actor (its sessions must be gone); the next `actor` starts a fresh one. */
  readonly evict: (stream: string) => Effect.Effect<void>
  /** Every running actor (for flushing and tests). */
  readonly all: Effect.Effect<ReadonlyArray<UserActor.UserActor>>
  /** The account's actor if one runs, without starting one. */
  readonly running: (stream: string) => Effect.Effect<UserActor.UserActor | undefined>
}>()("pinledger/actors/Directory") {}

export const layerWith = (options: UserActor.UserActorOptions): Layer.Layer<Directory, never, EventStore | SqlClient> => Layer.effect(
  Directory,
  Effect.gen(function*() {
    const parent = yield* Effect.scope
    const context = yield* Effect.context<EventStore | SqlClient>()
    const actors = new Map<string, { actor: Deferred.Deferred<UserActor.UserActor>; scope: Scope.Closeable }>()

    const actor = (stream: string) =>
      Effect.suspend(() => {
        const running = actors.get(stream)
        if (running) return Deferred.await(running.actor)
        return Effect.uninterruptible(Effect.gen(function*() {
          const deferred = yield* Deferred.make<UserActor.UserActor>()
          const scope = yield* Scope.fork(parent, "sequential")
          actors.set(stream, { actor: deferred, scope })
          const made = yield* UserActor.make(stream, options).pipe(Scope.provide(scope), Effect.provideContext(context))
          yield* Deferred.succeed(deferred, made)
          return made
        }))
      })

    const evict = (stream: string) =>
      Effect.suspend(() => {
        const running = actors.get(stream)
        if (running === undefined) return Effect.void
        actors.delete(stream)
        return Scope.close(running.scope, Exit.void)
      })

    const all = Effect.suspend(() => Effect.forEach([...actors.values()], (a) => Deferred.await(a.actor)))

    const running = (stream: string) =>
      Effect.suspend(() => {
        const found = actors.get(stream)
        return found === undefined ? Effect.succeed(undefined) : Deferred.await(found.actor)
      })

    return { actor, evict, all, running }
  })
)

/** The directory with default actor options. */
export const layer: Layer.Layer<Directory, never, EventStore | SqlClient> = layerWith({})
