import type { Account, Dashboard, Device } from "../../domain/Account.ts"
import { type PinValues, pinKey } from "../../domain/Pins.ts"
import { type Json, type JsonObject, type Widget, widgetPins } from "../../domain/Widgets.ts"

/**
 * The JSON views of the data model the apps read (protocol.md §4.1): the owner's private view
 * with tokens, share token and status, and the restrictive view a shared app gets (no device
 * token, no share token: fixed on purpose, issue 4). Values live in the pin state, not in the widgets; they are put back
 * into the widgets here, as the legacy profile carries them.
 */

export interface Live {
  readonly pins: PinValues
  /** `dashId-deviceId` of the devices online. */
  readonly online: ReadonlySet<string>
}

/** Which view: the owner's, or a shared app's (`restricted`). */
export interface View {
  readonly restricted?: boolean
}

export const deviceJson = (dash: Dashboard, device: Device, live: Live, view: View = {}): JsonObject => ({
  ...device.extra,
  id: device.id,
  name: device.name,
  boardType: device.boardType,
  ...(view.restricted ? {} : { token: device.token }),
  status: live.online.has(`${dash.id}-${device.id}`) ? "ONLINE" : "OFFLINE"
})

/** Widget fields only the owner sees (protocol.md §4.1): Twitter credentials, push tokens. */
const privateWidgetFields = ["token", "secret", "androidTokens", "iOSTokens"]

const restrict = (widget: Widget): Widget => {
  if (!privateWidgetFields.some((k) => k in widget)) return widget
  const copy: Record<string, Json> = { ...widget }
  for (const key of privateWidgetFields) delete copy[key]
  return copy
}

/** A widget with its current value put back (from the pin state). */
export const widgetJson = (dashId: number, widget: Widget, live: Live, view: View = {}): Widget => {
  const shown = view.restricted ? restrict(widget) : widget
  const [own] = widgetPins(shown)
  if (own === undefined || typeof shown["pin"] !== "number") return shown
  const values = live.pins.get(pinKey(dashId, own.deviceId, own.pinType, own.pin))
  return values === undefined ? shown : { ...shown, value: values.join("\0") }
}

export const dashJson = (dash: Dashboard, live: Live, view: View = {}): JsonObject => ({
  ...dash.settings,
  id: dash.id,
  name: dash.name,
  isActive: dash.isActive,
  ...(view.restricted || dash.shareToken === undefined ? {} : { sharedToken: dash.shareToken }),
  widgets: dash.widgets.map((w) => widgetJson(dash.id, w, live, view)),
  devices: dash.devices.map((d) => deviceJson(dash, d, live, view)),
  tags: dash.tags.map((t) => ({ id: t.id, name: t.name, deviceIds: [...t.deviceIds] }))
})

/** The whole profile, or only dashboard `only` (a shared app's). */
export const profileJson = (account: Account, live: Live, view: View = {}, only?: number): JsonObject => ({
  dashBoards: account.dashboards.filter((d) => only === undefined || d.id === only).map((d) => dashJson(d, live, view))
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

