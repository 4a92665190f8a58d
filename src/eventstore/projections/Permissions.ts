import { Effect, Option } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import {
  CloneCodeIssued,
  DashboardCreated,
  DashboardDeleted,
  DashboardUpdated,
  ProjectSettingsUpdated,
  ShareGranted,
  ShareRevoked,
  SharingSwitched
} from "../../domain/Account.ts"
import { isJsonObject, type JsonObject } from "../../domain/Widgets.ts"
import type { InlineProjection } from "../SqlEventStore.ts"
import { decoder } from "./Decode.ts"

const created = decoder(DashboardCreated)
const updated = decoder(DashboardUpdated)
const settings = decoder(ProjectSettingsUpdated)
const deleted = decoder(DashboardDeleted)
const granted = decoder(ShareGranted)
const revoked = decoder(ShareRevoked)
const switched = decoder(SharingSwitched)
const cloned = decoder(CloneCodeIssued)

const sharedIn = (s: { readonly [key: string]: unknown } | undefined) => s?.["isShared"] === true

/**
 * The `permissions` projection (DESIGN.md): per dashboard, its share token and whether sharing is
 * on, written in the transaction of the events that change them, so a revocation is in force the
 * moment it is acknowledged and stays so after a restart. Share logins ask it (`findShare`).
 * The clone codes ride along: a code must be found from any account.
 */
export const Permissions: InlineProjection = {
  name: "permissions",
  types: new Set([
    "DashboardCreated",
    "DashboardUpdated",
    "ProjectSettingsUpdated",
    "DashboardDeleted",
    "ShareGranted",
    "ShareRevoked",
    "SharingSwitched",
    "CloneCodeIssued"
  ]),
  tables: ["pl_permissions", "pl_clone_codes"],
  apply: (events) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient
      for (const e of events) {
        const stream = e.streamId
        switch (e.type) {
          case "DashboardCreated": {
            const d = created(e.data)
            if (d === undefined) break
            yield* sql`INSERT INTO pl_permissions (account_stream, dash_id, share_token, shared)
              VALUES (${stream}, ${d.dashId}, NULL, ${sharedIn(d.settings)})`
            break
          }
          case "DashboardUpdated":
          case "ProjectSettingsUpdated": {
            const d = e.type === "DashboardUpdated" ? updated(e.data) : settings(e.data)
            if (d === undefined) break
            yield* sql`UPDATE pl_permissions SET shared = ${sharedIn(d.settings)}
              WHERE account_stream = ${stream} AND dash_id = ${d.dashId}`
            break
          }
          case "SharingSwitched": {
            const d = switched(e.data)
            if (d === undefined) break
            yield* sql`UPDATE pl_permissions SET shared = ${d.on} WHERE account_stream = ${stream} AND dash_id = ${d.dashId}`
            break
          }
          case "ShareGranted": {
            const d = granted(e.data)
            if (d === undefined) break
            yield* sql`UPDATE pl_permissions SET share_token = ${d.token} WHERE account_stream = ${stream} AND dash_id = ${d.dashId}`
            break
          }
          case "ShareRevoked": {
            const d = revoked(e.data)
            if (d === undefined) break
            yield* sql`UPDATE pl_permissions SET share_token = NULL WHERE account_stream = ${stream} AND dash_id = ${d.dashId}`
            break
          }
          case "DashboardDeleted": {
            const d = deleted(e.data)
            if (d === undefined) break
            yield* sql`DELETE FROM pl_permissions WHERE account_stream = ${stream} AND dash_id = ${d.dashId}`
            break
          }
          case "CloneCodeIssued": {
            const d = cloned(e.data)
            if (d === undefined) break
            yield* sql`INSERT INTO pl_clone_codes (code, account_stream, dash_id, layout)
              VALUES (${d.code}, ${stream}, ${d.dashId}, ${JSON.stringify(d.layout)}::jsonb)`
            break
          }
        }
      }
    })
}

/** What a share token opens, if anything: the dashboard, and whether sharing is on. */
export interface ShareGrant {
  readonly accountStream: string
  readonly dashId: number
  readonly shared: boolean
}

export const findShare = (token: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ account_stream: string; dash_id: unknown; shared: unknown }>`
      SELECT account_stream, dash_id, shared FROM pl_permissions WHERE share_token = ${token}`
    const row = rows[0]
    return row === undefined
      ? Option.none<ShareGrant>()
      : Option.some<ShareGrant>({ accountStream: row.account_stream, dashId: Number(row.dash_id), shared: row.shared === true })
  })

/** A clone code's layout (protocol.md §4.3) with the id the dashboard had, if the code exists. */
export const findClone = (code: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient
    const rows = yield* sql<{ layout: unknown; dash_id: unknown }>`SELECT layout, dash_id FROM pl_clone_codes WHERE code = ${code}`
    const row = rows[0]
    const parsed: unknown = typeof row?.layout === "string" ? JSON.parse(row.layout) : row?.layout
    return row !== undefined && isJsonObject(parsed) ? Option.some<JsonObject>({ ...parsed, id: Number(row.dash_id) }) : Option.none<JsonObject>()
  })
