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

/** A JSON store with grouped fields that expire together, as a Redis hash does. */
export class GroupedStore extends JsonStore {
  readonly hashes = new Map<string, { fields: Map<string, string>, expires: number }>()
  /** Every group operation, in order, for asserting what a write touched. */
  readonly calls: Array<{ op: 'read' | 'write' | 'remove', key: string, fields: string[] }> = []

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
      // A null-prototype object, as a careful Redis client returns: `__proto__` is then a field like any other.
      const fields: Record<string, unknown> = Object.create(null)
      for (const [name, json] of hash.fields) fields[name] = JSON.parse(json)
      return fields
    },
    write: async (key, fields, ttl) => {
      this.calls.push({ op: 'write', key, fields: Object.keys(fields) })
      const hash = this.live(key) ?? { fields: new Map<string, string>(), expires: 0 }
      for (const [name, value] of Object.entries(fields)) hash.fields.set(name, JSON.stringify(value))
      hash.expires = expiry(ttl)
      this.hashes.set(key, hash)
    },
    remove: async (key, fields, ttl) => {
      this.calls.push({ op: 'remove', key, fields: [...fields] })
      const hash = this.live(key)
      if (hash === undefined) return
      for (const name of fields) hash.fields.delete(name)
      hash.expires = expiry(ttl)
    }
  }

  private live (key: string): { fields: Map<string, string>, expires: number } | undefined {
    const hash = this.hashes.get(key)
    if (hash !== undefined && hash.expires !== 0 && hash.expires <= Date.now()) {
      this.hashes.delete(key)
      return undefined
    }
    return hash
  }
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
