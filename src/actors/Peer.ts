/**
 * What a user actor says to the connections of its account. Sessions (in the adapters) encode
 * these into frames; the actor knows no socket and no command code. `send` never throws and
 * never blocks: a session that cannot write drops or closes on its own.
 */

/** Status of an answer, by meaning; the adapter maps it to the wire code (protocol.md §1.3). */
export type Status =
  | "ok"
  | "quotaLimit"
  | "illegalCommand"
  | "notRegistered"
  | "alreadyRegistered"
  | "notAuthenticated"
  | "notAllowed"
  | "deviceNotInNetwork"
  | "noActiveDashboard"
  | "invalidToken"
  | "illegalCommandBody"
  | "noData"
  | "serverError"
  | "notificationInvalidBody"
  | "notificationNotAuthorized"

export type DeviceNotice =
  /** A write for the device: the hardware body (`vw 1 5`), answered id or the app's id. */
  | { readonly _tag: "Write"; readonly id: number; readonly body: Uint8Array }
  /** Another device's bridge wrote to this one: BRIDGE (15) with the hardware body and the writer's id. */
  | { readonly _tag: "Bridge"; readonly id: number; readonly body: Uint8Array }
  /** `pm` pairs (protocol.md §2.2), sent with id 1. */
  | { readonly _tag: "PinModes"; readonly modes: ReadonlyArray<string> }
  | { readonly _tag: "Status"; readonly id: number; readonly status: Status }
  /** The app side came or went (`acon` / `adis`, protocol.md §2.3), id 7777. */
  | { readonly _tag: "AppPresence"; readonly connected: boolean }
  /** The device asked for the time and its project has an RTC widget (in this time zone, if set). */
  | { readonly _tag: "Rtc"; readonly id: number; readonly timeZone: string | undefined }
  | { readonly _tag: "Close"; readonly reason: string }

export type AppNotice =
  /** A device wrote: HARDWARE `dashId-deviceId` + body, with the device's id. */
  | { readonly _tag: "DeviceWrite"; readonly id: number; readonly dashId: number; readonly deviceId: number; readonly body: Uint8Array }
  /** Another app of the account wrote: APP_SYNC with that app's whole body and id. */
  | { readonly _tag: "AppWrite"; readonly id: number; readonly body: Uint8Array }
  | { readonly _tag: "Connected"; readonly id: number; readonly dashId: number; readonly deviceId: number }
  | { readonly _tag: "Offline"; readonly dashId: number; readonly deviceId: number }
  | { readonly _tag: "Activated"; readonly id: number; readonly dashId: number }
  | { readonly _tag: "Deactivated"; readonly id: number; readonly dashId: number | undefined }
  /** SHARING switched on or off by another app of the account. */
  | { readonly _tag: "Sharing"; readonly id: number; readonly dashId: number; readonly on: boolean }
  /** A stored value, as app sync sends it (id 1111): `dashId-deviceId <t>w pin values...`. */
  | { readonly _tag: "Sync"; readonly id: number; readonly dashId: number; readonly deviceId: number; readonly fields: ReadonlyArray<string> }
  | {
    readonly _tag: "Property"
    readonly id: number
    readonly dashId: number
    readonly deviceId: number
    readonly pin: number
    readonly property: string
    readonly value: string
  }
  | { readonly _tag: "Status"; readonly id: number; readonly status: Status }
  /** An answer the adapter built itself (its command and body); the actor only orders it. */
  | { readonly _tag: "Reply"; readonly command: number; readonly id: number; readonly body: Uint8Array }
  | { readonly _tag: "Close"; readonly reason: string }

export interface DevicePeer {
  readonly dashId: number
  readonly deviceId: number
  readonly remote: string
  readonly session: string
  readonly send: (notice: DeviceNotice) => void
}

export interface AppPeer {
  readonly remote: string
  readonly session: string
  readonly send: (notice: AppNotice) => void
  /**
   * Set for an app logged in with a share token (protocol.md §4.2): the one dashboard it sees
   * and may control, and the token it came with (a refreshed token closes it).
   */
  readonly shared?: { readonly dashId: number; readonly token: string } | undefined
}
