/**
 * Redis Cluster's key space: 16,384 hash slots, a key's slot being CRC16 (XMODEM) of the key, or of its hash tag (the
 * text between the first `{` and the next `}`, when not empty). Computed here rather than taken from ioredis'
 * `cluster-key-slot`, which is not ours to import: 30 lines against a dependency.
 */
export const SLOTS = 16384

const TABLE = new Uint16Array(256)
for (let byte = 0; byte < 256; byte++) {
  let crc = byte << 8
  for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  TABLE[byte] = crc
}

function crc16 (bytes: Uint8Array, from: number, to: number): number {
  let crc = 0
  for (let i = from; i < to; i++) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ (bytes[i] as number)) & 0xff] as number)
  return crc
}

/** The hash slot of `key`, as Redis Cluster computes it (on the key's UTF-8 bytes). */
export function slotOf (key: string): number {
  const bytes = Buffer.from(key)
  const open = bytes.indexOf(0x7b)
  if (open !== -1) {
    const close = bytes.indexOf(0x7d, open + 1)
    if (close > open + 1) return crc16(bytes, open + 1, close) % SLOTS
  }
  return crc16(bytes, 0, bytes.length) % SLOTS
}

let tags: string[] | undefined

/**
 * A hash tag (`{…}`, braces included) that puts a key in `slot`: written before a name, it makes that name live beside
 * every key of the slot, whatever the name holds. Found once per process for every slot (about 170,000 CRCs, some 20
 * milliseconds), when the first cluster store asks.
 */
export function tagOf (slot: number): string {
  if (tags === undefined) {
    const found = new Array<string>(SLOTS)
    let left = SLOTS
    for (let i = 0; left > 0; i++) {
      const tag = i.toString(36)
      // Base-36 digits are ASCII: one byte each, read straight from the string.
      let crc = 0
      for (let c = 0; c < tag.length; c++) crc = ((crc << 8) & 0xffff) ^ (TABLE[((crc >> 8) ^ tag.charCodeAt(c)) & 0xff] as number)
      const at = crc % SLOTS
      if (found[at] === undefined) {
        found[at] = `{${tag}}`
        left--
      }
    }
    tags = found
  }
  return tags[slot] as string
}

/** `items` grouped by the slot of the key each maps to, keeping each item's index in `items`. */
export function bySlot<T> (items: readonly T[], keyOf: (item: T) => string): Array<Array<{ item: T, index: number }>> {
  const groups = new Map<number, Array<{ item: T, index: number }>>()
  items.forEach((item, index) => {
    const slot = slotOf(keyOf(item))
    const group = groups.get(slot)
    if (group === undefined) groups.set(slot, [{ item, index }])
    else group.push({ item, index })
  })
  return [...groups.values()]
}
