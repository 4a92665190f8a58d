/**
 * Command and status codes of the Blynk wire protocol (protocol.md §2.1 and §1.3).
 * Codes removed from the legacy server (5, 10, 11) keep their names so that a frame carrying
 * them can still be logged by name; the HTTP_* statistics counters (82–94) never appear on the
 * wire and are left out.
 */
export const Command = Object.freeze({
  RESPONSE: 0,
  REGISTER: 1,
  LOGIN: 2,
  REDEEM: 3,
  HARDWARE_CONNECTED: 4,
  GET_TOKEN: 5,
  PING: 6,
  ACTIVATE_DASHBOARD: 7,
  DEACTIVATE_DASHBOARD: 8,
  REFRESH_TOKEN: 9,
  GET_GRAPH_DATA: 10,
  GET_GRAPH_DATA_RESPONSE: 11,
  TWEET: 12,
  EMAIL: 13,
  PUSH_NOTIFICATION: 14,
  BRIDGE: 15,
  HARDWARE_SYNC: 16,
  BLYNK_INTERNAL: 17,
  SMS: 18,
  SET_WIDGET_PROPERTY: 19,
  HARDWARE: 20,
  CREATE_DASH: 21,
  UPDATE_DASH: 22,
  DELETE_DASH: 23,
  LOAD_PROFILE_GZIPPED: 24,
  APP_SYNC: 25,
  SHARING: 26,
  ADD_PUSH_TOKEN: 27,
  EXPORT_GRAPH_DATA: 28,
  HARDWARE_LOGIN: 29,
  GET_SHARE_TOKEN: 30,
  REFRESH_SHARE_TOKEN: 31,
  SHARE_LOGIN: 32,
  CREATE_WIDGET: 33,
  UPDATE_WIDGET: 34,
  DELETE_WIDGET: 35,
  GET_ENERGY: 36,
  ADD_ENERGY: 37,
  UPDATE_PROJECT_SETTINGS: 38,
  ASSIGN_TOKEN: 39,
  GET_SERVER: 40,
  CONNECT_REDIRECT: 41,
  CREATE_DEVICE: 42,
  UPDATE_DEVICE: 43,
  DELETE_DEVICE: 44,
  GET_DEVICES: 45,
  CREATE_TAG: 46,
  UPDATE_TAG: 47,
  DELETE_TAG: 48,
  GET_TAGS: 49,
  MOBILE_GET_DEVICE: 50,
  UPDATE_FACE: 51,
  WEB_SOCKETS: 52,
  EVENTOR: 53,
  WEB_HOOKS: 54,
  // Also the library's DEBUG_PRINT on the hardware side, where the handler ignores it.
  CREATE_APP: 55,
  UPDATE_APP: 56,
  DELETE_APP: 57,
  GET_PROJECT_BY_TOKEN: 58,
  EMAIL_QR: 59,
  GET_ENHANCED_GRAPH_DATA: 60,
  DELETE_ENHANCED_GRAPH_DATA: 61,
  GET_CLONE_CODE: 62,
  GET_PROJECT_BY_CLONE_CODE: 63,
  HARDWARE_LOG_EVENT: 64,
  HARDWARE_RESEND_FROM_BLUETOOTH: 65,
  LOGOUT: 66,
  CREATE_TILE_TEMPLATE: 67,
  UPDATE_TILE_TEMPLATE: 68,
  DELETE_TILE_TEMPLATE: 69,
  GET_WIDGET: 70,
  DEVICE_OFFLINE: 71,
  OUTDATED_APP_NOTIFICATION: 72,
  TRACK_DEVICE: 73,
  GET_PROVISION_TOKEN: 74,
  RESOLVE_EVENT: 75,
  DELETE_DEVICE_DATA: 76,
  CREATE_REPORT: 77,
  UPDATE_REPORT: 78,
  DELETE_REPORT: 79,
  EXPORT_REPORT: 80,
  RESET_PASSWORD: 81
} as const)

export type CommandName = keyof typeof Command
export type CommandCode = (typeof Command)[CommandName]

/** Codes at or above this make the connection close (§1.1); below it, unknown codes are ignored. */
export const COMMAND_LIMIT = 100

/** Code → name, for a table of names → codes. */
const byCode = <K extends string>(table: Readonly<Record<K, number>>): ReadonlyMap<number, K> =>
  new Map((Object.keys(table) as Array<K>).map((name) => [table[name], name]))

const commandNames = byCode(Command)

/** The name of a command code, or undefined for a code this server does not know. */
export const commandName = (code: number): CommandName | undefined => commandNames.get(code)

/** Status codes carried by RESPONSE frames (§1.3). 12, 16, 18, 20, 23 and 24 are library-side only. */
export const Status = Object.freeze({
  OK: 200,
  QUOTA_LIMIT: 1,
  ILLEGAL_COMMAND: 2,
  USER_NOT_REGISTERED: 3,
  USER_ALREADY_REGISTERED: 4,
  USER_NOT_AUTHENTICATED: 5,
  NOT_ALLOWED: 6,
  DEVICE_NOT_IN_NETWORK: 7,
  NO_ACTIVE_DASHBOARD: 8,
  INVALID_TOKEN: 9,
  ILLEGAL_COMMAND_BODY: 11,
  GET_GRAPH_DATA_EXCEPTION: 12,
  NOTIFICATION_INVALID_BODY: 13,
  NOTIFICATION_NOT_AUTHORIZED: 14,
  NOTIFICATION_ERROR: 15,
  TIMEOUT: 16,
  NO_DATA: 17,
  DEVICE_WENT_OFFLINE: 18,
  SERVER_ERROR: 19,
  NOT_SUPPORTED_VERSION: 20,
  ENERGY_LIMIT: 21,
  FACEBOOK_USER_LOGIN_WITH_PASS: 22,
  OPERATION_ACCEPT: 23,
  OPERATION_DECLINE: 24
} as const)

export type StatusName = keyof typeof Status
export type StatusCode = (typeof Status)[StatusName]

const statusNames = byCode(Status)

/** The name of a status code, or undefined for a code outside §1.3. */
export const statusName = (code: number): StatusName | undefined => statusNames.get(code)
