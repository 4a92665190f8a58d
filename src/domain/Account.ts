import { Schema } from "effect"

/**
 * The account and its configuration: the `user-<id>` stream (DESIGN.md). This first slice knows
 * registration, dashboards and devices with their tokens; widgets, sharing and the rest follow.
 * Pure: hashes, tokens and times are computed outside and come in the commands.
 */

export const Email = Schema.String.check(
  Schema.isMaxLength(254),
  Schema.isPattern(/^[^\s@\u0000]+@[^\s@\u0000]+$/)
)
export const AppName = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_.-]{1,50}$/))
export const DashId = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 2_147_483_647 }))
export const DeviceId = Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 99_999 }))
/** 24 random bytes, URL-safe Base64 (protocol.md §4.4); older 32-hex tokens match too. */
export const Token = Schema.String.check(Schema.isPattern(/^[A-Za-z0-9_-]{32}$/))
/** A salted slow hash of the client's password hash, in the form the adapter writes. */
export const PasswordHash = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(512))
const Name = Schema.String.check(Schema.isMinLength(1), Schema.isMaxLength(50))

export class AccountRegistered extends Schema.TaggedClass<AccountRegistered>()("AccountRegistered", {
  email: Email,
  appName: AppName,
  passwordHash: PasswordHash
}) {}
export class DashboardCreated extends Schema.TaggedClass<DashboardCreated>()("DashboardCreated", {
  dashId: DashId,
  name: Name
}) {}
export class DeviceCreated extends Schema.TaggedClass<DeviceCreated>()("DeviceCreated", {
  dashId: DashId,
  deviceId: DeviceId,
  name: Name,
  boardType: Name,
  token: Token
}) {}

export const AccountEvent = Schema.Union([AccountRegistered, DashboardCreated, DeviceCreated])
export type AccountEvent = typeof AccountEvent.Type

export interface Device {
  readonly id: number
  readonly name: string
  readonly boardType: string
  readonly token: string
}
export interface Dashboard {
  readonly id: number
  readonly name: string
  readonly devices: ReadonlyArray<Device>
}
export interface Account {
  readonly email: string
  readonly appName: string
  readonly passwordHash: string
  readonly dashboards: ReadonlyArray<Dashboard>
}
/** `undefined` until the account is registered. */
export type AccountState = Account | undefined

export type AccountCommand =
  | { readonly _tag: "Register"; readonly email: string; readonly appName: string; readonly passwordHash: string }
  | { readonly _tag: "CreateDashboard"; readonly dashId: number; readonly name: string }
  | {
    readonly _tag: "CreateDevice"
    readonly dashId: number
    readonly deviceId: number
    readonly name: string
    readonly boardType: string
    readonly token: string
  }

/** Why a command was refused, with the Blynk status it maps to on the wire. */
export class AccountRejected extends Schema.TaggedError<AccountRejected>()("AccountRejected", {
  reason: Schema.Literals(["AlreadyRegistered", "NotRegistered", "DuplicateId", "UnknownDashboard", "InvalidInput"]),
  detail: Schema.String
}) {
  override get message() {
    return `${this.reason}: ${this.detail}`
  }
}

const reject = (reason: AccountRejected["reason"], detail: string) => new AccountRejected({ reason, detail })

const valid = <S extends Schema.Top>(schema: S, value: unknown) => Schema.is(schema)(value)

/** Lower-cases the address part that identifies an account, as the reference server does. */
export const normalizeEmail = (email: string) => email.trim().toLowerCase()

export const decide = (state: AccountState, command: AccountCommand): ReadonlyArray<AccountEvent> | AccountRejected => {
  switch (command._tag) {
    case "Register": {
      if (state !== undefined) return reject("AlreadyRegistered", `${state.email} is already registered`)
      const email = normalizeEmail(command.email)
      if (!valid(Email, email)) return reject("InvalidInput", `bad e-mail address ${JSON.stringify(command.email)}`)
      if (!valid(AppName, command.appName)) return reject("InvalidInput", `bad app name ${JSON.stringify(command.appName)}`)
      return [new AccountRegistered({ email, appName: command.appName, passwordHash: command.passwordHash })]
    }
    case "CreateDashboard": {
      if (state === undefined) return reject("NotRegistered", "no such account")
      if (!valid(DashId, command.dashId) || !valid(Name, command.name)) return reject("InvalidInput", "bad dashboard")
      if (state.dashboards.some((d) => d.id === command.dashId)) {
        return reject("DuplicateId", `dashboard ${command.dashId} exists`)
      }
      return [new DashboardCreated({ dashId: command.dashId, name: command.name })]
    }
    case "CreateDevice": {
      if (state === undefined) return reject("NotRegistered", "no such account")
      const dash = state.dashboards.find((d) => d.id === command.dashId)
      if (dash === undefined) return reject("UnknownDashboard", `no dashboard ${command.dashId}`)
      if (
        !valid(DeviceId, command.deviceId) || !valid(Name, command.name) || !valid(Name, command.boardType) ||
        !valid(Token, command.token)
      ) return reject("InvalidInput", "bad device")
      if (dash.devices.some((d) => d.id === command.deviceId)) {
        return reject("DuplicateId", `device ${command.deviceId} exists in dashboard ${command.dashId}`)
      }
      const { _tag, ...device } = command
      return [new DeviceCreated(device)]
    }
  }
}

export const evolve = (state: AccountState, event: AccountEvent): AccountState => {
  switch (event._tag) {
    case "AccountRegistered":
      return { email: event.email, appName: event.appName, passwordHash: event.passwordHash, dashboards: [] }
    case "DashboardCreated":
      return state && { ...state, dashboards: [...state.dashboards, { id: event.dashId, name: event.name, devices: [] }] }
    case "DeviceCreated":
      return state && {
        ...state,
        dashboards: state.dashboards.map((d) =>
          d.id !== event.dashId
            ? d
            : { ...d, devices: [...d.devices, { id: event.deviceId, name: event.name, boardType: event.boardType, token: event.token }] }
        )
      }
  }
}

export const replay = (events: Iterable<AccountEvent>): AccountState => {
  let state: AccountState = undefined
  for (const event of events) state = evolve(state, event)
  return state
}
