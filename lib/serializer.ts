import { EntryTooLargeError, SerializeError, messageOf } from './errors.js'

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
    // A replacer is called from the engine for every value, and made an encode of plain data take twice as long; the
    // walk finds in one pass whether JSON keeps the value as it is, and then the engine's plain call does the rest.
    return keptAsIs(value, 0) ? JSON.stringify(value) : JSON.stringify(value, refuseLossy)
  },
  decode (data: string | Buffer): unknown {
    return JSON.parse(typeof data === 'string' ? data : data.toString('utf8'))
  }
}

/** Nesting deeper than this is left to the replacer, which also reports a cycle as JSON does. */
const WALKED_DEPTH = 64
/**
 * Arrays longer than this are left to the replacer: the walk visits every index, and a sparse array (`a[2 ** 32 - 2] =
 * 1`) that JSON refuses at once as too long a string would otherwise hold the walk for minutes.
 */
const WALKED_LENGTH = 2 ** 20

/**
 * True when the replacer would refuse nothing in `value` nor see anything `toJSON` made: primitives JSON keeps,
 * arrays and plain objects of them. Anything else (a `toJSON`, a Date, a class instance, a Map, an array whose
 * prototype was changed) is left to `refuseLossy`, which decides as before. An accessor property is read here and again
 * by JSON: one that answers differently the second time is written as it answers then.
 */
function keptAsIs (value: unknown, depth: number): boolean {
  const type = typeof value
  if (type !== 'object') return type !== 'function' && type !== 'symbol' && type !== 'bigint'
  if (value === null) return true
  if (depth === WALKED_DEPTH || (value as { toJSON?: unknown }).toJSON !== undefined) return false
  const prototype = Object.getPrototypeOf(value)
  if (Array.isArray(value)) {
    if ((prototype !== Array.prototype && prototype !== null) || value.length > WALKED_LENGTH) return false
    for (let i = 0; i < value.length; i++) if (!keptAsIs(value[i], depth + 1)) return false
    return true
  }
  if (prototype !== Object.prototype && prototype !== null) return false
  // The keys JSON writes: own and enumerable; what an object inherits is never read.
  const fields = value as Record<string, unknown>
  for (const key of Object.keys(fields)) if (!keptAsIs(fields[key], depth + 1)) return false
  return true
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
    throw new SerializeError(key, messageOf(error))
  }
  return checkedSize(key, data, maxBytes)
}

/**
 * `encodeFor` with `jsonSerializer`, and the value as its encoding decodes, made by walking the value instead of
 * parsing the text: a store that keeps what it wrote in front of it (a session's group after a write) needs both, and
 * the parse was an eighth of the package's own CPU on a session write. Undefined for anything but plain data (see
 * `keptAsIs`), which goes through `encodeFor` and a decode as before. The text is the copy's, so that the two agree
 * even where reading the value twice would not (an accessor).
 */
export function encodeJsonCopy (key: string, value: unknown, maxBytes = Infinity): { data: string, copy: unknown } | undefined {
  const copy = plainCopy(value, 0)
  if (copy === NOT_PLAIN) return undefined
  return { data: checkedSize(key, JSON.stringify(copy), maxBytes), copy }
}

/**
 * `value` as a store that encodes it with `serializer` gives it back, with the same refusals as `encodeFor`: what a
 * memory tier keeps in front of the store, so that it serves what another instance would read from the store.
 */
export function storedAs (serializer: Serializer, key: string, value: unknown, maxBytes = Infinity): unknown {
  const copied = serializer === jsonSerializer ? encodeJsonCopy(key, value, maxBytes) : undefined
  return copied === undefined ? serializer.decode(encodeFor(serializer, key, value, maxBytes)) : copied.copy
}

function checkedSize<D extends string | Buffer> (key: string, data: D, maxBytes: number): D {
  // A string's UTF-8 length is at most three bytes per UTF-16 unit: only a long one is measured.
  const bytes = typeof data === 'string' ? (data.length * 3 > maxBytes ? Buffer.byteLength(data) : 0) : data.length
  if (bytes > maxBytes) throw new EntryTooLargeError(key, bytes, maxBytes)
  return data
}

const NOT_PLAIN = Symbol('not plain data')

/**
 * `value` as JSON gives it back (`NaN` and `Infinity` as `null`, `-0` as `0`, `undefined` left out of an object and
 * `null` in an array), for what `keptAsIs` takes; `NOT_PLAIN` for anything else, and at the top for `undefined`, which
 * JSON does not encode.
 */
function plainCopy (value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value
    case 'number':
      return Number.isFinite(value) ? (value as number) + 0 : null
    case 'object':
      break
    default:
      return NOT_PLAIN
  }
  if (value === null) return null
  if (depth === WALKED_DEPTH || (value as { toJSON?: unknown }).toJSON !== undefined) return NOT_PLAIN
  const prototype = Object.getPrototypeOf(value)
  if (Array.isArray(value)) {
    if ((prototype !== Array.prototype && prototype !== null) || value.length > WALKED_LENGTH) return NOT_PLAIN
    const copy: unknown[] = []
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      const kept = item === undefined ? null : plainCopy(item, depth + 1)
      if (kept === NOT_PLAIN) return NOT_PLAIN
      copy.push(kept)
    }
    return copy
  }
  if (prototype !== Object.prototype && prototype !== null) return NOT_PLAIN
  const fields = value as Record<string, unknown>
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(fields)) {
    const field = fields[key]
    if (field === undefined) continue
    const kept = plainCopy(field, depth + 1)
    if (kept === NOT_PLAIN) return NOT_PLAIN
    // As JSON.parse makes it: an own field, never the prototype.
    if (key === '__proto__') Object.defineProperty(copy, key, { value: kept, writable: true, enumerable: true, configurable: true })
    else copy[key] = kept
  }
  return copy
}
