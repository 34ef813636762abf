import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Store } from './store.js'
import { redisCommand, type RedisClient } from './stores/redis.js'

/**
 * One load per key at a time, in this process: callers that ask for a key while its load is running share that
 * load's promise, and with it its value or its error. Nothing is remembered once the load settles.
 */
export class SingleFlight {
  private readonly pending = new Map<string, Promise<unknown>>()

  /** True while a load for `key` is running. */
  has (key: string): boolean {
    return this.pending.has(key)
  }

  loadOnce<T> (key: string, load: () => T | PromiseLike<T>): Promise<T> {
    const running = this.pending.get(key)
    if (running !== undefined) return running as Promise<T>
    const started = run(load).finally(() => { this.pending.delete(key) })
    this.pending.set(key, started)
    return started
  }
}

async function run<T> (load: () => T | PromiseLike<T>): Promise<T> {
  return await load()
}

export interface RedisLockOptions {
  client: RedisClient
  /** Namespace of the lock keys: outside the data's, so that no cache key can name a lock. */
  prefix: string
  /** Namespace of the refresh leases, apart from the locks. */
  leasePrefix: string
  /** Time budget of each lock command, in ms. */
  timeout: number
  /** How long a lock is held at most, in ms, should its holder die. */
  ttl: number
  /** How long another instance waits for the holder's value before loading itself, in ms. */
  wait: number
  /** How often a waiter looks for the value, in ms. Default 25. */
  poll?: number
}

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

/**
 * One load per key across instances: `SET NX PX` with a random token, released only by its holder (compare and
 * delete in one script), expiring by itself if the holder dies. The others wait, within a bound, for the value.
 * Every command has the store's time budget, so a stalled Redis makes each instance load for itself, never hang.
 */
export class RedisLock {
  constructor (private readonly options: RedisLockOptions) {}

  async acquire (key: string): Promise<string | undefined> {
    const token = randomUUID()
    return await this.claim('lock', this.options.prefix + key, token, this.options.ttl) ? token : undefined
  }

  async release (key: string, token: string): Promise<void> {
    const { client, prefix, timeout } = this.options
    await redisCommand(client, 'unlock', timeout, async () => await client.call('EVAL', RELEASE, 1, prefix + key, token))
  }

  async lease (key: string, ms: number): Promise<boolean> {
    return await this.claim('lease', this.options.leasePrefix + key, '1', ms)
  }

  async waitFor (store: Store, key: string): Promise<unknown> {
    const deadline = Date.now() + this.options.wait
    const poll = this.options.poll ?? 25
    while (Date.now() < deadline) {
      await sleep(poll)
      const value = await store.get(key)
      if (value !== undefined) return value
    }
    return undefined
  }

  /** `SET NX PX`: true when `name` was free and is now this caller's for `ms`. */
  private async claim (operation: string, name: string, value: string, ms: number): Promise<boolean> {
    const { client, timeout } = this.options
    return await redisCommand(client, operation, timeout, async () => await client.call('SET', name, value, 'NX', 'PX', ms)) === 'OK'
  }
}
