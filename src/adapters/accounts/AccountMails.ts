import type { Mail } from "../notify/Mailer.ts"

const duration = (minutes: number) =>
  minutes % 60 === 0 ? `${minutes / 60} hour${minutes === 60 ? "" : "s"}` : `${minutes} minute${minutes === 1 ? "" : "s"}`

/**
 * The password-reset mail (RESET_PASSWORD `start`): the link the Blynk app opens, and the token
 * itself for typing in.
 */
export const passwordResetMail = (
  options: { readonly to: string; readonly appName: string; readonly token: string; readonly minutes: number }
): Mail => ({
  to: options.to,
  subject: `Reset your ${options.appName} password`,
  text: [
    `Someone, hopefully you, asked to reset the password of the ${options.appName} account ${options.to}.`,
    "",
    "Open this link on the phone with the app to choose a new password:",
    `blynk://restore?token=${options.token}&email=${encodeURIComponent(options.to)}`,
    "",
    `or enter this token in the app: ${options.token}`,
    "",
    `The token works once and expires in ${duration(options.minutes)}. If you did not ask for this, ignore this`,
    "mail: your password stays as it is."
  ].join("\n")
})

/** The address-confirmation mail (REGISTER with PINLEDGER_REGISTRATION=verify). */
export const verificationMail = (
  options: { readonly to: string; readonly appName: string; readonly link: string; readonly hours: number }
): Mail => ({
  to: options.to,
  subject: `Confirm your address for ${options.appName}`,
  text: [
    `An account for ${options.to} was registered in ${options.appName}. Open this link to confirm the address;`,
    "until then the account cannot log in:",
    options.link,
    "",
    `The link works once and expires in ${duration(options.hours * 60)}. If you did not register, ignore this mail.`
  ].join("\n")
})
