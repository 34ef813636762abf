import { EntryTooLargeError, SerializeError } from './errors.js'

/** Turns values into bytes for a remote store and back. Used only where bytes are needed (Redis, Keyv). */
export interface Serializer {
  encode (value: unknown): string | Buffer
  decode (data: string | Buffer): unknown
}

/**
 * JSON, refusing what JSON would silently change: functions and symbols (dropped), BigInt (throws late), Map and
 * Set (become `{}`), circular objects. What it keeps changes shape in known ways: a `Date` comes back as its ISO
 * string, `undefined` inside an object disappears, `NaN` and `Infinity` become `null`. Use a serializer such as
 * msgpackr's `pack`/`unpack` to keep Dates and binary data.
 */
export const jsonSerializer: Serializer = {
  encode (value: unknown): string {
    return JSON.stringify(value, refuseLossy)
  },
  decode (data: string | Buffer): unknown {
    return JSON.parse(typeof data === 'string' ? data : data.toString('utf8'))
  }
}

function refuseLossy (this: unknown, _key: string, value: unknown): unknown {
  const type = typeof value
  if (type === 'function' || type === 'symbol' || type === 'bigint') throw new Error(`JSON cannot keep a ${type}`)
  if (value instanceof Map || value instanceof Set) throw new Error(`JSON cannot keep a ${value.constructor.name}`)
  return value
}

/** The largest serialized entry a shared store takes by default: 1 MiB. */
export const MAX_ENTRY_BYTES = 1024 * 1024

/**
 * Encodes `value` for `key`, turning any serializer failure (circular objects included) into a SerializeError, and
 * refusing an encoding longer than `maxBytes` with an EntryTooLargeError.
 */
export function encodeFor (serializer: Serializer, key: string, value: unknown, maxBytes = Infinity): string | Buffer {
  let data: string | Buffer
  try {
    data = serializer.encode(value)
  } catch (error) {
    throw new SerializeError(key, error instanceof Error ? error.message : String(error))
  }
  // A string's UTF-8 length is at most three bytes per UTF-16 unit: only a long one is measured.
  const bytes = typeof data === 'string' ? (data.length * 3 > maxBytes ? Buffer.byteLength(data) : 0) : data.length
  if (bytes > maxBytes) throw new EntryTooLargeError(key, bytes, maxBytes)
  return data
}
