import type { GroupOperations, Store } from '../../lib/store.js'

interface Held {
  json: string
  /** Epoch ms after which the entry is gone; 0 for none. */
  expires: number
}

const expiry = (ttl: number | undefined): number => ttl === undefined || ttl === 0 ? 0 : Date.now() + ttl

/**
 * A store that keeps nothing by reference: every value goes through JSON, as it would through Redis. It counts its
 * writes so that tests can tell a read that restarts an expiry from one that does not.
 */
export class JsonStore implements Store {
  readonly data = new Map<string, Held>()
  writes = 0

  get size (): number {
    return this.data.size
  }

  async get (key: string): Promise<unknown> {
    const held = this.data.get(key)
    if (held === undefined) return undefined
    if (held.expires !== 0 && held.expires <= Date.now()) {
      this.data.delete(key)
      return undefined
    }
    return JSON.parse(held.json)
  }

  async set (key: string, value: unknown, ttl?: number): Promise<void> {
    this.writes++
    this.data.set(key, { json: JSON.stringify(value), expires: expiry(ttl) })
  }

  async delete (key: string): Promise<void> {
    this.data.delete(key)
  }

  async clear (): Promise<void> {
    this.data.clear()
  }
}

/** A JSON store with grouped fields under a fence that expire together, as a Redis hash does. */
export class GroupedStore extends JsonStore {
  readonly hashes = new Map<string, { fence: string, fields: Map<string, string>, expires: number }>()
  /** Every group operation, in order, for asserting what a write touched. */
  readonly calls: Array<{ op: 'read' | 'create' | 'update' | 'end', key: string, fields: string[] }> = []

  override get size (): number {
    return this.hashes.size
  }

  override async delete (key: string): Promise<void> {
    this.hashes.delete(key)
  }

  readonly groups: GroupOperations = {
    read: async (key, ttl) => {
      this.calls.push({ op: 'read', key, fields: [] })
      const hash = this.live(key)
      if (hash === undefined) return undefined
      hash.expires = expiry(ttl)
      return { fence: hash.fence, fields: decoded(hash.fields) }
    },
    create: async (key, group, ttl) => {
      this.calls.push({ op: 'create', key, fields: Object.keys(group.fields) })
      if (this.live(key) !== undefined) return false
      this.hashes.set(key, { fence: group.fence, fields: encoded(group.fields), expires: expiry(ttl) })
      return true
    },
    update: async (key, fence, change, ttl) => {
      this.calls.push({ op: 'update', key, fields: [...(change.clear === true ? ['*'] : []), ...(change.remove ?? []).map((name) => '-' + name), ...Object.keys(change.set ?? {})] })
      const hash = this.live(key)
      if (hash?.fence !== fence) return false
      if (change.clear === true) for (const name of [...hash.fields.keys()]) if (!name.startsWith(change.keep ?? '\0')) hash.fields.delete(name)
      for (const name of change.remove ?? []) hash.fields.delete(name)
      for (const [name, json] of encoded(change.set ?? {})) {
        hash.fields.delete(name)
        hash.fields.set(name, json)
      }
      const cap = change.cap
      if (cap !== undefined) {
        const kind = [...hash.fields.keys()].filter((name) => name.startsWith(cap.prefix))
        for (const name of kind.slice(0, Math.max(0, kind.length - cap.max))) hash.fields.delete(name)
      }
      hash.expires = expiry(ttl)
      return true
    },
    end: async (key, fence) => {
      this.calls.push({ op: 'end', key, fields: [] })
      const hash = this.live(key)
      if (hash?.fence !== fence) return undefined
      this.hashes.delete(key)
      return { fence, fields: decoded(hash.fields) }
    }
  }

  private live (key: string): { fence: string, fields: Map<string, string>, expires: number } | undefined {
    const hash = this.hashes.get(key)
    if (hash !== undefined && hash.expires !== 0 && hash.expires <= Date.now()) {
      this.hashes.delete(key)
      return undefined
    }
    return hash
  }
}

function encoded (fields: Readonly<Record<string, unknown>>): Map<string, string> {
  return new Map(Object.entries(fields).map(([name, value]) => [name, JSON.stringify(value)]))
}

/** A null-prototype object, as a careful Redis client returns: `__proto__` is then a field like any other. */
function decoded (fields: Map<string, string>): Record<string, unknown> {
  const result: Record<string, unknown> = Object.create(null)
  for (const [name, json] of fields) result[name] = JSON.parse(json)
  return result
}

/** Wraps a store so that every operation fails while `down` is true, as a Redis that went away would. */
export function failing (store: Store): Store & { down: boolean } {
  const wrapper = {
    down: false,
    get: async (key: string) => { check('get'); return await store.get(key) },
    set: async (key: string, value: unknown, ttl?: number) => { check('set'); await store.set(key, value, ttl) },
    delete: async (key: string) => { check('delete'); await store.delete(key) },
    clear: async () => { check('clear'); await store.clear() }
  }
  function check (operation: string): void {
    if (wrapper.down) throw new Error(`store down (${operation})`)
  }
  return wrapper
}
