import { Option, Schema } from "effect"

/**
 * A projection's reader of one event type's stored data: the event, or undefined for data that
 * does not decode (a projection skips what it cannot read rather than fail the append).
 */
export const decoder = <S extends Schema.Top>(schema: S) => {
  const decode = Schema.decodeUnknownOption(Schema.toCodecJson(schema as never))
  return (data: unknown) => Option.getOrUndefined(decode(data)) as S["Type"] | undefined
}
