import { Effect, Option, Schema } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { DeviceCreated } from "../../domain/Account.ts"
import type { InlineProjection } from "../SqlEventStore.ts"

/** Where a device token leads: the account's stream and the device in it. */
export interface TokenOwner {
  readonly accountStream: string
  readonly dashId: number
  readonly deviceId: number
}

const decodeDeviceCreated = Schema.decodeUnknownOption(Schema.toCodecJson(DeviceCreated))

/**
 * token → device, kept in the transaction of the events that change it, so a hardware login
 * finds a device the moment its creation is acknowledged (and, with the events that retire
 * tokens, stops finding an old one at once). A token already taken makes the append fail.
 */
export const DeviceTokens: InlineProjection = {
  name: "device-tokens",
  types: new Set(["DeviceCreated"]),
  apply: (events) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      const rows = events.flatMap((e) =>
        Option.match(decodeDeviceCreated(e.data), {
          onNone: () => [],
          onSome: (d) => [[d.token, e.streamId, d.dashId, d.deviceId]]
        })
      )
      if (rows.length === 0) return
      yield* sql`INSERT INTO pl_device_tokens (token, account_stream, dash_id, device_id)
        SELECT r->>0, r->>1, (r->>2)::int, (r->>3)::int FROM json_array_elements(${JSON.stringify(rows)}::json) AS t(r)`
    })
}

/** The device a token belongs to, if any. */
export const findByToken = (token: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ account_stream: string; dash_id: unknown; device_id: unknown }>`
      SELECT account_stream, dash_id, device_id FROM pl_device_tokens WHERE token = ${token}`
    const row = rows[0]
    return row === undefined
      ? Option.none<TokenOwner>()
      : Option.some<TokenOwner>({ accountStream: row.account_stream, dashId: Number(row.dash_id), deviceId: Number(row.device_id) })
  })
