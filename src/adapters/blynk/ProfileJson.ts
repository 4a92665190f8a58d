import type { Account, Dashboard, Device } from "../../domain/Account.ts"
import { type PinValues, pinKey } from "../../domain/Pins.ts"
import { type Json, type JsonObject, type Widget, widgetPins } from "../../domain/Widgets.ts"

/**
 * The JSON views of the data model the apps read (protocol.md §4.1): the owner's private view
 * with tokens and status. Values live in the pin state, not in the widgets; they are put back
 * into the widgets here, as the legacy profile carries them.
 */

export interface Live {
  readonly pins: PinValues
  /** `dashId-deviceId` of the devices online. */
  readonly online: ReadonlySet<string>
}

export const deviceJson = (dash: Dashboard, device: Device, live: Live): JsonObject => ({
  ...device.extra,
  id: device.id,
  name: device.name,
  boardType: device.boardType,
  token: device.token,
  status: live.online.has(`${dash.id}-${device.id}`) ? "ONLINE" : "OFFLINE"
})

/** A widget with its current value put back (from the pin state). */
export const widgetJson = (dashId: number, widget: Widget, live: Live): Widget => {
  const [own] = widgetPins(widget)
  if (own === undefined || typeof widget["pin"] !== "number") return widget
  const values = live.pins.get(pinKey(dashId, own.deviceId, own.pinType, own.pin))
  return values === undefined ? widget : { ...widget, value: values.join("\0") }
}

export const dashJson = (dash: Dashboard, live: Live): JsonObject => ({
  ...dash.settings,
  id: dash.id,
  name: dash.name,
  isActive: dash.isActive,
  widgets: dash.widgets.map((w) => widgetJson(dash.id, w, live)),
  devices: dash.devices.map((d) => deviceJson(dash, d, live)),
  tags: dash.tags.map((t) => ({ id: t.id, name: t.name, deviceIds: [...t.deviceIds] }))
})

export const profileJson = (account: Account, live: Live): JsonObject => ({
  dashBoards: account.dashboards.map((d) => dashJson(d, live))
})

/** Fields of a dashboard's JSON the server keeps apart from its settings. */
const structural = new Set(["id", "name", "widgets", "devices", "tags", "isActive", "sharedToken", "createdAt", "updatedAt"])

export const settingsOf = (json: JsonObject): JsonObject => {
  const settings: Record<string, Json> = {}
  for (const [key, value] of Object.entries(json)) if (!structural.has(key)) settings[key] = value
  return settings
}

/** What UPDATE_PROJECT_SETTINGS may change (protocol.md §2.1, command 38). */
export const projectSettingKeys = [
  "isShared", "theme", "keepScreenOn", "isAppConnectedOn", "isNotificationsOff", "widgetBackgroundOn", "color", "isDefaultColor"
]

