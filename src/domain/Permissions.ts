import { type AccountState, type Dashboard, findDashboard, findDevice, isShared } from "./Account.ts"

/**
 * Who may do what with an account's dashboards and devices (DESIGN.md: the permission rules).
 * The user actor enforces them live; the `permissions` projection answers the same questions for
 * everything outside an actor, and the property tests hold both to these functions.
 */

export type Principal =
  /** The account's owner, logged in with its password. */
  | { readonly kind: "owner" }
  /** An app logged in with a dashboard's share token. */
  | { readonly kind: "shared"; readonly dashId: number; readonly token: string }

/** The dashboard a share token opens: it must be the dashboard's current token, with sharing on. */
export const sharedDashboard = (state: AccountState, token: string): Dashboard | undefined =>
  state?.dashboards.find((d) => d.shareToken === token && isShared(d))

/** The device a device token belongs to now (a device acts as itself; a bridge needs the target's token). */
export const deviceOfToken = (state: AccountState, token: string) => {
  for (const dash of state?.dashboards ?? []) {
    const device = dash.devices.find((d) => d.token === token)
    if (device !== undefined) return { dashId: dash.id, deviceId: device.id }
  }
  return undefined
}

/**
 * May this principal write pins of `deviceId` in `dashId`? The owner: any device of its
 * dashboards. A shared app: devices of the one dashboard it was shared, while its token is the
 * current one and sharing is on.
 */
export const mayControl = (state: AccountState, principal: Principal, dashId: number, deviceId: number): boolean => {
  const dash = findDashboard(state, dashId)
  if (findDevice(dash, deviceId) === undefined) return false
  switch (principal.kind) {
    case "owner":
      return state !== undefined
    case "shared":
      return principal.dashId === dashId && sharedDashboard(state, principal.token)?.id === dashId
  }
}

/** May this principal see the dashboard (its layout, values, device status)? */
export const mayView = (state: AccountState, principal: Principal, dashId: number): boolean => {
  const dash = findDashboard(state, dashId)
  if (dash === undefined) return false
  switch (principal.kind) {
    case "owner":
      return true
    case "shared":
      return principal.dashId === dashId && dash.shareToken === principal.token
  }
}

/** Layout and account commands (dashboards, widgets, devices, tags, tokens, sharing, clones): the owner only. */
export const mayChangeLayout = (principal: Principal): boolean => principal.kind === "owner"
