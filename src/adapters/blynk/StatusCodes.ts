import type { Status as StatusMeaning } from "../../actors/Peer.ts"
import { Status } from "./Command.ts"

const codes: Record<StatusMeaning, number> = {
  ok: Status.OK,
  quotaLimit: Status.QUOTA_LIMIT,
  illegalCommand: Status.ILLEGAL_COMMAND,
  notRegistered: Status.USER_NOT_REGISTERED,
  alreadyRegistered: Status.USER_ALREADY_REGISTERED,
  notAuthenticated: Status.USER_NOT_AUTHENTICATED,
  notAllowed: Status.NOT_ALLOWED,
  deviceNotInNetwork: Status.DEVICE_NOT_IN_NETWORK,
  noActiveDashboard: Status.NO_ACTIVE_DASHBOARD,
  invalidToken: Status.INVALID_TOKEN,
  illegalCommandBody: Status.ILLEGAL_COMMAND_BODY,
  noData: Status.NO_DATA,
  serverError: Status.SERVER_ERROR,
  notificationInvalidBody: Status.NOTIFICATION_INVALID_BODY,
  notificationNotAuthorized: Status.NOTIFICATION_NOT_AUTHORIZED
}

/** The wire code of a status meaning (protocol.md §1.3). */
export const statusCode = (status: StatusMeaning): number => codes[status]
