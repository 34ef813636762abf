import { withBudget } from '../budget.js'
import { StoreError } from '../errors.js'
import { encodeFor, jsonSerializer, type Serializer } from '../serializer.js'
import type { GroupOperations, Store, TimedValue } from '../store.js'

type Argument = string | number | Buffer

/**
 * The part of an ioredis client (5 or 6, or `fastify.redis`) the Redis store and bus use, so that any version fits.
 */
export interface RedisClient {
  readonly status: string
  call (command: string, ...args: Argument[]): Promise<unknown>
  callBuffer (command: string, ...args: Argument[]): Promise<unknown>
  multi (commands: Argument[][]): { exec (): Promise<Array<[Error | null, unknown]> | null> }
  duplicate (override?: Record<string, unknown>): RedisClient
  subscribe (...channels: string[]): Promise<unknown>
  on (event: string, listener: (...args: never[]) => void): unknown
  quit (): Promise<unknown>
  disconnect (): void
}

/**
 * Runs one Redis command within a time budget, failing at once while the client is not connected: ioredis would
 * otherwise queue the command until it reconnects, and every caller would hang with it. The store, the bus and the
 * lock all go through here, so that none of them can hang a request.
 */
export async function redisCommand<T> (client: RedisClient, operation: string, timeout: number, command: () => Promise<T>): Promise<T> {
  if (client.status !== 'ready') throw new StoreError(operation, `Redis is not connected (${client.status})`)
  return await withBudget(operation, timeout, command)
}

export interface RedisStoreOptions {
  client: RedisClient
  /** Namespace of every key, so that several apps and levels share one Redis: e.g. `'fmc:shop:app:'`. */
  prefix: string
  /** Time budget of each operation in ms. Default 100. */
  timeout?: number
  /** Default JSON (see `jsonSerializer`). */
  serializer?: Serializer
}

/**
 * Keys in Redis, with Redis doing the bookkeeping: `SET … PX` for TTLs, `MGET` for batches, one hash per group
 * with `PEXPIRE` in the same transaction, `SCAN` + `UNLINK` by prefix for `clear` (never `KEYS`). While the client
 * is not connected, operations fail at once instead of queueing; every operation has a time budget.
 */
export class RedisStore implements Store {
  readonly groups: GroupOperations
  private readonly client: RedisClient
  private readonly prefix: string
  private readonly timeout: number
  private readonly serializer: Serializer

  constructor (options: RedisStoreOptions) {
    this.client = options.client
    this.prefix = options.prefix
    this.timeout = options.timeout ?? 100
    this.serializer = options.serializer ?? jsonSerializer
    this.groups = {
      read: async (key, ttl) => await this.readGroup(key, ttl),
      write: async (key, fields, ttl) => { await this.writeGroup(key, fields, ttl) },
      remove: async (key, fields, ttl) => { await this.removeFromGroup(key, fields, ttl) }
    }
  }

  async get (key: string): Promise<unknown> {
    const data = await this.run('get', async () => await this.client.callBuffer('GET', this.prefix + key))
    return this.decode(data)
  }

  /** The value and its remaining time to live, in one round trip. */
  async getTimed (key: string): Promise<TimedValue | undefined> {
    const full = this.prefix + key
    const [data, pttl] = await this.transaction('get', [['getBuffer', full], ['pttl', full]])
    const value = this.decode(data)
    // -1: no expiry (0 here). 0 means under a millisecond left, which must not read as "no expiry".
    const remaining = Number(pttl)
    return value === undefined ? undefined : { value, ttl: remaining === -1 ? 0 : Math.max(1, remaining) }
  }

  async getMany (keys: readonly string[]): Promise<unknown[]> {
    if (keys.length === 0) return []
    const data = await this.run('getMany', async () => await this.client.callBuffer('MGET', ...keys.map((key) => this.prefix + key)))
    return (data as unknown[]).map((item) => this.decode(item))
  }

  async set (key: string, value: unknown, ttl?: number): Promise<void> {
    const data = encodeFor(this.serializer, key, value)
    const args: Argument[] = [this.prefix + key, data]
    if (ttl !== undefined && ttl > 0) args.push('PX', ttl)
    await this.run('set', async () => await this.client.call('SET', ...args))
  }

  async delete (key: string): Promise<void> {
    await this.run('delete', async () => await this.client.call('UNLINK', this.prefix + key))
  }

  async deleteMany (keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return
    await this.run('deleteMany', async () => await this.client.call('UNLINK', ...keys.map((key) => this.prefix + key)))
  }

  /** Removes every key under this store's prefix, a batch at a time, each batch within the time budget. */
  async clear (): Promise<void> {
    let cursor = '0'
    do {
      const [next, keys] = await this.run('clear', async () =>
        await this.client.call('SCAN', cursor, 'MATCH', escapeGlob(this.prefix) + '*', 'COUNT', 500)) as [string, string[]]
      if (keys.length > 0) await this.run('clear', async () => await this.client.call('UNLINK', ...keys))
      cursor = next
    } while (cursor !== '0')
  }

  private async readGroup (key: string, ttl: number): Promise<Record<string, unknown> | undefined> {
    const full = this.prefix + key
    const [hash] = await this.transaction('groups.read', [['hgetallBuffer', full], ['pexpire', full, ttl]])
    const fields = Object.entries(hash as Record<string, Buffer>)
    if (fields.length === 0) return undefined
    // No prototype: a field named `__proto__` is a user's key like any other.
    const decoded = Object.create(null) as Record<string, unknown>
    for (const [name, data] of fields) decoded[name] = this.decode(data)
    return decoded
  }

  private async writeGroup (key: string, fields: Readonly<Record<string, unknown>>, ttl: number): Promise<void> {
    const full = this.prefix + key
    const args: Argument[] = []
    for (const [name, value] of Object.entries(fields)) args.push(name, encodeFor(this.serializer, name, value))
    await this.transaction('groups.write', [['hset', full, ...args], ['pexpire', full, ttl]])
  }

  private async removeFromGroup (key: string, fields: readonly string[], ttl: number): Promise<void> {
    const full = this.prefix + key
    await this.transaction('groups.remove', [['hdel', full, ...fields], ['pexpire', full, ttl]])
  }

  private decode (data: unknown): unknown {
    return data === null || data === undefined ? undefined : this.serializer.decode(data as Buffer)
  }

  private async transaction (operation: string, commands: Argument[][]): Promise<unknown[]> {
    const replies = await this.run(operation, async () => await this.client.multi(commands).exec())
    if (replies === null) throw new StoreError(operation, 'the transaction was discarded')
    return replies.map(([error, reply]) => {
      if (error !== null) throw new StoreError(operation, error.message, { cause: error })
      return reply
    })
  }

  private async run<T> (operation: string, command: () => Promise<T>): Promise<T> {
    return await redisCommand(this.client, operation, this.timeout, command)
  }
}

/** Closes a client this package opened: politely when connected, at once otherwise (a QUIT would wait for a reconnect). */
export async function closeClient (client: RedisClient): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect()
    return
  }
  await client.quit().catch(() => { client.disconnect() })
}

/** Escapes the glob characters of a prefix for `SCAN MATCH`. */
function escapeGlob (prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, '\\$&')
}
