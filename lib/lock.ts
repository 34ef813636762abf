import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Breaker } from './breaker.js'
import { StoreError } from './errors.js'
import type { Store } from './store.js'
import { redisCommand, type RedisClient } from './stores/redis.js'
import { send } from './stores/send.js'

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
  /** How often a waiter looks for the value and the lock, in ms. Default 25. */
  poll?: number
  /** The store's circuit breaker: while it is open, lock commands fail at once and each instance loads for itself. */
  breaker?: Breaker
}

const RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

/**
 * One load per key across instances: `SET NX PX` with a random token, released only by its holder (compare and
 * delete in one script), expiring by itself if the holder dies. The others wait, within a bound, for the value; a
 * holder that ends without one (its loader failed, gave nothing, or was fenced) frees them at once. Every command
 * has the store's time budget, so a stalled Redis makes each instance load for itself, never hang.
 */
export class RedisLock {
  private closed = false

  constructor (private readonly options: RedisLockOptions) {}

  async acquire (key: string): Promise<string | undefined> {
    const token = randomUUID()
    return await this.claim('lock', this.options.prefix + key, token, this.options.ttl) ? token : undefined
  }

  async release (key: string, token: string): Promise<void> {
    const { client, prefix, timeout, breaker } = this.options
    await redisCommand(client, 'unlock', timeout, () => send(client, 'EVAL', [RELEASE, 1, prefix + key, token]), breaker)
  }

  async lease (key: string, ms: number): Promise<boolean> {
    return await this.claim('lease', this.options.leasePrefix + key, '1', ms)
  }

  /**
   * The value of `key` once the holder of lock `name` put one in `store` that `accept` takes (one that is not the
   * stale value already there); undefined as soon as that lock is free without it, or after `wait`.
   * Rejects once `close()` was called: a closing app starts no load.
   */
  async waitFor (store: Store, key: string, name = key, accept: (value: unknown) => boolean = () => true): Promise<unknown> {
    const { client, prefix, timeout, wait, poll = 25, breaker } = this.options
    const deadline = Date.now() + wait
    while (Date.now() < deadline) {
      await sleep(poll)
      if (this.closed) throw new StoreError('lock', 'the app is closing')
      // The lock first: a holder writes its value before it lets go, so a free lock and no value means none is coming.
      const held = await redisCommand(client, 'lock', timeout, () => send(client, 'EXISTS', [prefix + name]), breaker)
      const value = await store.get(key)
      if (value !== undefined && accept(value)) return value
      if (held === 0) return undefined
    }
    return undefined
  }

  /** Ends every wait: waiters reject instead of loading. */
  close (): void {
    this.closed = true
  }

  /** `SET NX PX`: true when `name` was free and is now this caller's for `ms`. */
  private async claim (operation: string, name: string, value: string, ms: number): Promise<boolean> {
    const { client, timeout, breaker } = this.options
    return await redisCommand(client, operation, timeout, () => send(client, 'SET', [name, value, 'NX', 'PX', ms]), breaker) === 'OK'
  }
}
