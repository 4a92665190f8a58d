import { Effect } from "effect"
import { SqlClient } from "effect/sql/SqlClient"
import type { SqlError } from "effect/sql/SqlError"

/**
 * Versioned migrations, applied in order in one transaction together with the rows that record
 * them, under an advisory lock so that two processes starting at once do not race. Append new
 * ones at the end; never edit one that has shipped. The SQL must run on PostgreSQL 15+ and PGlite.
 */
export interface Migration {
  readonly version: number
  readonly name: string
  /** One statement each: the extended query protocol takes a single statement at a time. */
  readonly statements: ReadonlyArray<string>
}

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "event log",
    statements: [
      `CREATE TABLE pl_events (
        position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tx_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
        stream_id text NOT NULL,
        stream_version bigint NOT NULL CHECK (stream_version > 0),
        event_type text NOT NULL,
        schema_version integer NOT NULL CHECK (schema_version > 0),
        data jsonb NOT NULL,
        metadata jsonb NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pl_events_stream_version UNIQUE (stream_id, stream_version)
      )`,
      // Subscriptions read in (tx_id, position) order below the oldest running transaction.
      `CREATE INDEX pl_events_tx_position ON pl_events (tx_id, position)`,
      `CREATE TABLE pl_checkpoints (
        subscriber text PRIMARY KEY,
        tx_id xid8 NOT NULL,
        position bigint NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`
    ]
  },
  {
    version: 2,
    name: "device tokens",
    statements: [
      // Written in the append's transaction (projections/DeviceTokens.ts): a token is valid exactly
      // when the log says so.
      `CREATE TABLE pl_device_tokens (
        token text PRIMARY KEY,
        account_stream text NOT NULL,
        dash_id integer NOT NULL,
        device_id integer NOT NULL
      )`,
      `CREATE INDEX pl_device_tokens_device ON pl_device_tokens (account_stream, dash_id, device_id)`
    ]
  },
  {
    version: 3,
    name: "pin state",
    statements: [
      // Written in the append's transaction (projections/PinState.ts): after a restart, kill -9
      // included, a user actor starts from here with every acknowledged write.
      `CREATE TABLE pl_pin_state (
        account_stream text NOT NULL,
        pin_key text NOT NULL,
        vals jsonb NOT NULL,
        position bigint NOT NULL,
        PRIMARY KEY (account_stream, pin_key)
      )`
    ]
  },
  {
    version: 4,
    name: "permissions and clone codes",
    statements: [
      // Written in the append's transaction (projections/Permissions.ts): one row per dashboard,
      // with its share token and whether sharing is on; a revoked token is gone when the
      // revocation is acknowledged.
      `CREATE TABLE pl_permissions (
        account_stream text NOT NULL,
        dash_id integer NOT NULL,
        share_token text UNIQUE,
        shared boolean NOT NULL,
        PRIMARY KEY (account_stream, dash_id)
      )`,
      `CREATE TABLE pl_clone_codes (
        code text PRIMARY KEY,
        account_stream text NOT NULL,
        dash_id integer NOT NULL,
        layout jsonb NOT NULL
      )`
    ]
  },
  {
    version: 5,
    name: "account tokens",
    statements: [
      // Written in the append's transaction (projections/AccountTokens.ts): the digests (never the
      // tokens) of the password-reset and address-confirmation tokens still pending, per account.
      `CREATE TABLE pl_account_tokens (
        token_digest text PRIMARY KEY,
        account_stream text NOT NULL,
        purpose text NOT NULL,
        expires_at bigint NOT NULL
      )`,
      `CREATE INDEX pl_account_tokens_account ON pl_account_tokens (account_stream, purpose)`
    ]
  }
]

const lockKey = 0x706c6d67 // "plmg": only one process migrates at a time

/** Applies the migrations this database lacks; on an up-to-date database it changes nothing. */
export const migrate: Effect.Effect<ReadonlyArray<Migration>, SqlError, SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient
  return yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`SELECT pg_advisory_xact_lock(${lockKey})`
    yield* sql`CREATE TABLE IF NOT EXISTS pl_schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`
    const rows = yield* sql<{ version: number }>`SELECT version FROM pl_schema_migrations`
    const applied = new Set(rows.map((r) => Number(r.version)))
    const pending = migrations.filter((m) => !applied.has(m.version))
    for (const m of pending) {
      for (const statement of m.statements) yield* sql.unsafe(statement)
      yield* sql`INSERT INTO pl_schema_migrations (version, name) VALUES (${m.version}, ${m.name})`
    }
    return pending
  }))
}).pipe(Effect.withSpan("Migrations.migrate"))
