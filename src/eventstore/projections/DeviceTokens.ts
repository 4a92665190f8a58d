import { Effect, Option } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import { DashboardDeleted, DeviceCreated, DeviceDeleted, DeviceTokenRefreshed } from "../../domain/Account.ts"
import type { InlineProjection } from "../SqlEventStore.ts"
import { decoder } from "./Decode.ts"

/** Where a device token leads: the account's stream and the device in it. */
export interface TokenOwner {
  readonly accountStream: string
  readonly dashId: number
  readonly deviceId: number
}

const decodeCreated = decoder(DeviceCreated)
const decodeRefreshed = decoder(DeviceTokenRefreshed)
const decodeDeviceDeleted = decoder(DeviceDeleted)
const decodeDashboardDeleted = decoder(DashboardDeleted)

/**
 * token → device, kept in the transaction of the events that change it, so a hardware login
 * finds a device the moment its creation is acknowledged and stops finding a deleted or
 * reprovisioned one's old token at once. A token already taken makes the append fail. Events are applied in log order.
 */
export const DeviceTokens: InlineProjection = {
  name: "device-tokens",
  types: new Set(["DeviceCreated", "DeviceTokenRefreshed", "DeviceDeleted", "DashboardDeleted"]),
  tables: ["pl_device_tokens"],
  apply: (events) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      for (const e of events) {
        if (e.type === "DeviceCreated") {
          const d = decodeCreated(e.data)
          if (d === undefined) continue
          yield* sql`INSERT INTO pl_device_tokens (token, account_stream, dash_id, device_id)
            VALUES (${d.token}, ${e.streamId}, ${d.dashId}, ${d.deviceId})`
        } else if (e.type === "DeviceTokenRefreshed") {
          const d = decodeRefreshed(e.data)
          if (d === undefined) continue
          yield* sql`DELETE FROM pl_device_tokens
            WHERE account_stream = ${e.streamId} AND dash_id = ${d.dashId} AND device_id = ${d.deviceId}`
          yield* sql`INSERT INTO pl_device_tokens (token, account_stream, dash_id, device_id)
            VALUES (${d.token}, ${e.streamId}, ${d.dashId}, ${d.deviceId})`
        } else if (e.type === "DeviceDeleted") {
          const d = decodeDeviceDeleted(e.data)
          if (d === undefined) continue
          yield* sql`DELETE FROM pl_device_tokens
            WHERE account_stream = ${e.streamId} AND dash_id = ${d.dashId} AND device_id = ${d.deviceId}`
        } else if (e.type === "DashboardDeleted") {
          const d = decodeDashboardDeleted(e.data)
          if (d === undefined) continue
          yield* sql`DELETE FROM pl_device_tokens WHERE account_stream = ${e.streamId} AND dash_id = ${d.dashId}`
        }
      }
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
