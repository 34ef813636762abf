import { randomBytes } from 'node:crypto'
import type { Breaker } from '../breaker.js'
import { Waiting, bytesOf, withBudget } from '../budget.js'
import { StoreError } from '../errors.js'
import { MAX_ENTRY_BYTES, encodeFor, encodeJsonCopy, jsonSerializer, storedAs, type Serializer } from '../serializer.js'
import { emptyRecord, type Announcement, type AnnouncedChange, type FenceOperations, type FencedEntry, type TagEpoch, type TagOperations, type Group, type GroupChange, type GroupOperations, type KeyPage, type KeyQuery, type Store, type TimedValue } from '../store.js'
import { send } from './send.js'
import { changed, countPrefixed } from './memory.js'
import { scriptsOf } from './scripts.js'
import { bySlot, slotOf, SLOTS, tagOf } from './slots.js'

export type Argument = string | number | Buffer

/** What every client the store, the bus and the lock use answers: commands, events, closing. */
export interface RedisCommands {
  readonly status: string
  call (command: string, ...args: Argument[]): Promise<unknown>
  callBuffer (command: string, ...args: Argument[]): Promise<unknown>
  multi (commands: Argument[][]): { exec (): Promise<Array<[Error | null, unknown]> | null> }
  quit (): Promise<unknown>
  disconnect (): void
}

/** One connection to one Redis: an ioredis `Redis` (5 or 6), `fastify.redis`, or a client of Sentinel. */
export interface RedisConnection extends RedisCommands {
  on (event: string, listener: (...args: never[]) => void): unknown
  duplicate (override?: Record<string, unknown>): RedisConnection
  subscribe (...channels: string[]): Promise<unknown>
  /** Sharded pub/sub (Redis 7): the bus subscribes with it on a cluster's node. */
  ssubscribe? (...channels: string[]): Promise<unknown>
}

/**
 * What the store and the bus use of an ioredis `Cluster` (5 or 6): where each slot lives, and a connection to each
 * master. A multi-key command or transaction must stay in one slot there; a command with no key (`SCAN`) goes to one
 * node, so walking the keys means walking every master.
 */
export interface RedisClusterClient extends RedisCommands {
  readonly isCluster: boolean
  /** For each slot, the nodes (`host:port`) that serve it, the master first. */
  readonly slots: ReadonlyArray<readonly string[] | undefined>
  nodes (role: 'master'): RedisConnection[]
  /** Commands sent together, not atomically: every key of them on one master. */
  pipeline (commands: Argument[][]): { exec (): Promise<Array<[Error | null, unknown]> | null> }
  refreshSlotsCache (callback?: (error?: Error | null) => void): void
}

/**
 * The part of an ioredis client (5 or 6, or `fastify.redis`) the Redis store, the bus and the lock use, so that any
 * version fits: one connection, or a cluster.
 */
export type RedisClient = RedisConnection | RedisClusterClient

/** True for an ioredis `Cluster` (5 or 6), whatever was passed as a client. */
export function isCluster (client: RedisClient): client is RedisClusterClient {
  return (client as Partial<RedisClusterClient>).isCluster === true
}

/** `host:port` of a node's connection, as the cluster names its nodes in `slots`. */
export function nodeKey (node: RedisConnection): string {
  const { host, port } = (node as unknown as { options: { host: string, port: number } }).options
  return `${host}:${port}`
}

/**
 * Runs one Redis command within a time budget, failing at once while the client is not connected: ioredis would
 * otherwise queue the command until it reconnects, and every caller would hang with it. The store, the bus and the
 * lock all go through here, so that none of them can hang a request. `failed` is told of Redis's error, as it came.
 */
export function redisCommand<T> (client: RedisCommands, operation: string, timeout: number, command: () => Promise<T>, breaker?: Breaker, bytes = 0, failed?: (error: unknown) => void): Promise<T> {
  if (client.status !== 'ready') return Promise.reject(new StoreError(operation, `Redis is not connected (${client.status})`))
  const waiting = waitingOn(client)
  if (breaker === undefined) return withBudget(operation, timeout, command, waiting, bytes, failed)
  return breaker.run(operation, () => withBudget(operation, timeout, command, waiting, bytes, failed))
}

/** Per connection: the store, the bus and the lock of every level that share one client count together. */
const waitingByClient = new WeakMap<RedisCommands, Waiting>()

function waitingOn (client: RedisCommands): Waiting {
  let waiting = waitingByClient.get(client)
  if (waiting === undefined) {
    waiting = new Waiting()
    waitingByClient.set(client, waiting)
  }
  return waiting
}

export interface RedisStoreOptions {
  client: RedisClient
  /** Namespace of every key, so that several apps and levels share one Redis: e.g. `'fmc:shop:app:'`. */
  prefix: string
  /** Time budget of each operation in ms. Default 100. */
  timeout?: number
  /** Default JSON (see `jsonSerializer`). */
  serializer?: Serializer
  /** Largest value taken once serialized, in bytes. Default 1 MiB. */
  maxEntryBytes?: number
  /**
   * Keep fences and tag versions shared by every instance (`Store.fences`, `Store.tags`): one more key written per
   * change. Default false.
   */
  fenced?: boolean
}

/**
 * Keys in Redis, with Redis doing the bookkeeping: `SET … PX` for TTLs, `MGET` for batches, one hash per group
 * with `PEXPIRE` in the same transaction, `SCAN` + `UNLINK` by prefix for `clear` (never `KEYS`). While the client
 * is not connected, operations fail at once instead of queueing; every operation has a time budget.
 */
export class RedisStore implements Store {
  readonly groups: GroupOperations
  readonly fences?: FenceOperations
  readonly tags?: TagOperations
  private readonly client: RedisClient
  private readonly prefix: string
  private readonly timeout: number
  private readonly serializer: Serializer
  private readonly maxEntryBytes: number
  /** The client, when it is a cluster's: keys that must move together are then kept in one slot, and scans walk every master. */
  private readonly cluster: RedisClusterClient | undefined
  /** The scripts the connection sends by SHA-1; undefined on a cluster, whose nodes each hold their own. */
  private readonly scripts: ReturnType<typeof scriptsOf> | undefined

  constructor (options: RedisStoreOptions) {
    this.client = options.client
    this.cluster = isCluster(options.client) ? options.client : undefined
    this.scripts = isCluster(options.client) ? undefined : scriptsOf(options.client)
    this.prefix = options.prefix
    this.timeout = options.timeout ?? 100
    this.serializer = options.serializer ?? jsonSerializer
    this.maxEntryBytes = options.maxEntryBytes ?? MAX_ENTRY_BYTES
    this.groups = {
      // Each passes on the method's own promise: a session write goes through these, and an async wrapper is one more
      // promise and turn of the microtask queue per command.
      read: (key, ttl, known) => known?.version === undefined ? this.readGroup(key, ttl) : this.checkGroup(key, ttl, known),
      create: (key, group, ttl) => this.createGroup(key, group, ttl),
      update: (key, fence, change, ttl, base) => this.updateGroup(key, fence, change, ttl, base).then(({ changed }) => changed),
      // On a cluster a script may reach one slot only, and the bus's channel is in a slot of its own.
      ...(this.cluster === undefined ? { updateAnnounced: (key: string, fence: string, change: GroupChange, ttl: number, base: Group | undefined, announcement: Announcement) => this.updateGroup(key, fence, change, ttl, base, announcement) } : {}),
      end: (key, fence) => this.endGroup(key, fence),
      exists: async (keys) => keys.length === 0
        ? []
        : (await this.slotwise(keys, async (group) => await this.transaction('groups.exists', group.map((key) => ['exists', this.prefix + key])))).map((found) => found === 1)
    }
    if (options.fenced === true) {
      this.tags = {
        read: async () => await this.readTags(),
        bump: async (names, stale) => await this.bumpTags(names, stale)
      }
      this.fences = {
        read: async (key) => await this.readFence(key),
        bump: async (key) => await this.bumpFence(key),
        setIf: async (key, value, ttl, fence) => await this.setIfFence(key, value, ttl, fence),
        readMany: async (keys) => await this.readFences(keys),
        setManyIf: async (entries) => await this.setManyIfFence(entries)
      }
    }
  }

  async get (key: string): Promise<unknown> {
    const data = await this.run('get', () => send(this.client, 'GET', [this.prefix + key], true))
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
    const data = await this.slotwise(keys, async (group) => await this.run('getMany', () => send(this.client, 'MGET', group.map((key) => this.prefix + key), true)) as unknown[])
    return data.map((item) => this.decode(item))
  }

  /** Each value with its remaining time to live: one script, where `getTimed` of each would be a transaction each. */
  async getTimedMany (keys: readonly string[]): Promise<Array<TimedValue | undefined>> {
    if (keys.length === 0) return []
    return await this.slotwise(keys, async (group) => {
      const flat = await this.run('getMany', () => this.evalBuffer(GET_TIMED, group.length, ...group.map((key) => this.prefix + key))) as Array<Buffer | null | number>
      return group.map((_, i) => {
        const value = this.decode(flat[2 * i])
        const remaining = Number(flat[2 * i + 1])
        return value === undefined ? undefined : { value, ttl: remaining === -1 ? 0 : Math.max(1, remaining) }
      })
    })
  }

  async set (key: string, value: unknown, ttl?: number): Promise<void> {
    const data = this.encode(key, value)
    const args: Argument[] = [this.prefix + key, data]
    if (ttl !== undefined && ttl > 0) args.push('PX', ttl)
    if (this.fences === undefined) await this.run('set', () => send(this.client, 'SET', args), bytesOf(args))
    else await this.transaction('set', [['set', ...args], ...this.bumps([key])])
  }

  async delete (key: string): Promise<boolean> {
    return await this.unlink([key]) > 0
  }

  async deleteMany (keys: readonly string[]): Promise<void> {
    await this.unlink(keys)
  }

  /** Deletes `keys`, moving their fences, and answers how many existed: one slot at a time on a cluster. */
  private async unlink (keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0
    if (this.cluster === undefined) return await this.unlinkTogether(keys)
    const counts = await Promise.all(bySlot(keys, (key) => this.prefix + key).map(async (group) => await this.unlinkTogether(group.map(({ item }) => item))))
    return counts.reduce((sum, count) => sum + count, 0)
  }

  private async unlinkTogether (keys: readonly string[]): Promise<number> {
    const unlink = ['unlink', ...keys.map((key) => this.prefix + key)]
    const [count] = this.fences === undefined
      ? [await this.run('delete', () => send(this.client, 'UNLINK', unlink.slice(1)))]
      : await this.transaction('delete', [unlink, ...this.bumps(keys)])
    return Number(count)
  }

  stored (key: string, value: unknown): unknown {
    return storedAs(this.serializer, key, value, this.maxEntryBytes)
  }

  /**
   * Removes every key under this store's prefix, a batch at a time, each batch within the time budget, on every master
   * of a cluster. The fence of every key moves first, so that no load from before the clear writes during it or after.
   */
  async clear (): Promise<void> {
    if (this.fences !== undefined) await this.moveStoreFence()
    const pattern = escapeGlob(this.prefix) + '*'
    for (const node of this.masters()) {
      let cursor = '0'
      do {
        const [next, keys] = await this.onNode(node, 'clear', () => send(node, 'SCAN', [cursor, 'MATCH', pattern, 'COUNT', 500])) as [string, string[]]
        if (this.cluster === undefined) {
          if (keys.length > 0) await this.run('clear', () => send(this.client, 'UNLINK', keys))
        } else {
          await Promise.all(bySlot(keys, (key) => key).map(async (group) => await this.run('clear', () => send(this.client, 'UNLINK', group.map(({ item }) => item)))))
        }
        cursor = next
      } while (cursor !== '0')
    }
  }

  /**
   * Keys by `SCAN` under the prefix (never `KEYS`), a few scans at most per page, and their `PTTL` in one round trip (one
   * per slot on a cluster, whose masters are walked one after the other: the cursor names the master too).
   */
  async keys ({ match, limit, cursor = '0' }: KeyQuery): Promise<KeyPage> {
    const pattern = escapeGlob(this.prefix) + '*' + (match === '' ? '' : escapeGlob(match) + '*')
    const masters = this.masters()
    const split = cursor.indexOf(':')
    let at = this.cluster === undefined || split === -1 ? 0 : Number(cursor.slice(0, split))
    let next = split === -1 ? cursor : cursor.slice(split + 1)
    const found: string[] = []
    for (let scans = 0; scans < 10 && found.length < limit && at < masters.length; scans++) {
      const node = masters[at] as RedisCommands
      const [after, keys] = await this.onNode(node, 'keys', () => send(node, 'SCAN', [next, 'MATCH', pattern, 'COUNT', limit])) as [string, string[]]
      found.push(...keys)
      next = after
      if (next === '0') {
        if (this.cluster === undefined) break
        at++
      }
    }
    const names = found.map((key) => key.slice(this.prefix.length))
    const ttls = found.length === 0 ? [] : await this.slotwise(names, async (group) => await this.transaction('keys', group.map((key) => ['pttl', this.prefix + key])))
    const keys = names.flatMap((key, i) => {
      const left = Number(ttls[i])
      // -2: gone since the scan.
      return left === -2 ? [] : [{ key, ttl: left === -1 ? 0 : Math.max(1, left) }]
    })
    if (this.cluster === undefined) return { keys, cursor: next === '0' ? undefined : next }
    return { keys, cursor: at >= masters.length ? undefined : `${at}:${next}` }
  }

  /** The nodes that hold every key between them: the one Redis, or a cluster's masters, in an order every call keeps. */
  private masters (): RedisCommands[] {
    if (this.cluster === undefined) return [this.client]
    return this.cluster.nodes('master').sort((a, b) => nodeKey(a).localeCompare(nodeKey(b)))
  }

  /** A command to one node: a cluster opens its connection to a node at the first command sent there. */
  private async onNode<T> (node: RedisCommands, operation: string, command: () => Promise<T>): Promise<T> {
    if (node.status === 'wait') return await withBudget(operation, this.timeout, command, waitingOn(node))
    return await redisCommand(node, operation, this.timeout, command)
  }

  /**
   * `run` over `keys`, answering in their order: at once on one Redis, once per hash slot on a cluster, where a
   * multi-key command or a transaction must stay in one slot.
   */
  private async slotwise<T> (keys: readonly string[], run: (keys: readonly string[]) => Promise<T[]>): Promise<T[]> {
    if (this.cluster === undefined) return await run(keys)
    const answers = new Array<T>(keys.length)
    await Promise.all(bySlot(keys, (key) => this.prefix + key).map(async (group) => {
      const replies = await run(group.map(({ item }) => item))
      group.forEach(({ index }, i) => { answers[index] = replies[i] as T })
    }))
    return answers
  }

  /** The whole group, its expiry restarted: the check of a copy that matches none (one script, not a transaction). */
  private async readGroup (key: string, ttl: number): Promise<Group | undefined> {
    const reply = await this.run('groups.read', () => this.evalBuffer(CHECK, 1, this.prefix + key, ttl, '', '')) as Buffer[] | number
    return typeof reply === 'number' ? undefined : this.toGroup(pairsOf(reply))
  }

  /**
   * `known` itself while the group is still at its version, the group as it is now otherwise: one small round trip
   * when nothing changed, whatever the group holds.
   */
  private async checkGroup (key: string, ttl: number, known: Group): Promise<Group | undefined> {
    const reply = await this.run('groups.read', () => this.evalBuffer(CHECK, 1, this.prefix + key, ttl, known.fence, known.version as string)) as Buffer[] | number
    if (reply === 1) return known
    if (typeof reply === 'number') return undefined
    return this.toGroup(pairsOf(reply))
  }

  private async createGroup (key: string, group: Group, ttl: number): Promise<boolean> {
    const args = [ttl, FENCE, group.fence, VERSION, 1, ...this.encodeFields(group.fields)]
    return await this.run('groups.create', () => this.eval(CREATE, 1, this.prefix + key, ...args), bytesOf(args)) === 1
  }

  /**
   * Applies `change` under `fence`. Given `base`, the copy the change was made on, and when the group was still at
   * `base`'s version, answers the group as it now is (its fields as they read back), so that a memory tier in front
   * keeps it rather than read it all again.
   */
  // Not async: the command's promise is passed on with one step after it, where an async function made two more.
  private updateGroup (key: string, fence: string, change: GroupChange, ttl: number, base?: Group, announcement?: Announcement): Promise<AnnouncedChange> {
    try {
      // The fields as they decode, for the group answered to a memory tier: made while encoding where that can be.
      const copies = base?.version === undefined ? undefined : emptyRecord()
      const set = this.encodeFields(change.set ?? {}, copies)
      const removed = change.remove ?? []
      const { prefix = '', max = 0 } = change.cap ?? {}
      // Without `keep`, a clear drops the hash whole; with one, it walks the fields.
      const clear = change.clear !== true ? 0 : change.keep === undefined ? 1 : 2
      const leases = announcement?.leases
      const keys = leases === undefined ? [1, this.prefix + key] : [2, this.prefix + key, leases.registry]
      const args = [announcement?.channel ?? '', announcement?.message ?? '', leases?.origin ?? '', `${ttl} ${clear} ${max} ${removed.length} ${fence}`, change.keep ?? '', prefix, ...removed, ...set]
      return this.run('groups.update', () => this.eval(UPDATE, ...keys, ...args), bytesOf(args))
        .then((reply) => this.updated(reply as 0 | [number, string, string, number, string[]], fence, change, set, base, copies))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** What `updateGroup`'s script answered, with the group as it now is when the change was made on `base`. */
  private updated (reply: 0 | [number, string, string, number, string[]], fence: string, change: GroupChange, set: Argument[], base: Group | undefined, copies: Record<string, unknown> | undefined): AnnouncedChange {
    // Refused by the fence: nothing changed, nothing to tell.
    if (!Array.isArray(reply)) return { changed: false, announced: true, holders: [] }
    const [, before, after, told, holders] = reply
    const announced = told === 1
    if (base?.version === undefined || base.fence !== fence || before !== base.version) return { changed: true, announced, holders }
    const { prefix = '', max = 0 } = change.cap ?? {}
    const decoded = emptyRecord()
    for (let i = 0; i < set.length; i += 2) {
      const name = set[i] as string
      decoded[name] = copies !== undefined && name in copies ? copies[name] : this.decode(set[i + 1])
    }
    const uncapped = changed(base.fields, { ...change, set: decoded, cap: undefined })
    // The cap drops fields in the hash's own order, which a large hash does not keep: vouched for only when it dropped none.
    if (change.cap !== undefined && countPrefixed(uncapped, prefix) > max) return { changed: true, announced, holders }
    return { changed: { fence, fields: uncapped, version: after }, announced, holders }
  }

  private async endGroup (key: string, fence: string): Promise<Group | undefined> {
    const flat = await this.run('groups.end', () => this.evalBuffer(END, 1, this.prefix + key, fence)) as Buffer[] | null
    return flat === null ? undefined : this.toGroup(pairsOf(flat))
  }

  /** A hash as a group: the fence and the version from their marker fields, every other field decoded. */
  private toGroup (pairs: Array<[string, Buffer]>): Group | undefined {
    let fence: string | undefined
    let version: string | undefined
    // No prototype: a field named `__proto__` is a user's key like any other.
    const fields = emptyRecord()
    for (const [name, data] of pairs) {
      if (name === FENCE) fence = data.toString()
      else if (name === VERSION) version = data.toString()
      else fields[name] = this.decode(data)
    }
    if (fence === undefined) return undefined
    return version === undefined ? { fence, fields } : { fence, fields, version }
  }

  /**
   * Each field's name and encoding, as the scripts take them. Given `copies`, the value of each field the default JSON
   * copied as it encoded it is put there, as it decodes (see `encodeJsonCopy`).
   */
  private encodeFields (fields: Readonly<Record<string, unknown>>, copies?: Record<string, unknown>): Argument[] {
    const args: Argument[] = []
    const copying = this.serializer === jsonSerializer ? copies : undefined
    for (const [name, value] of Object.entries(fields)) {
      const encoded = copying === undefined ? undefined : encodeJsonCopy(name, value, this.maxEntryBytes)
      if (copying !== undefined && encoded !== undefined) {
        args.push(name, encoded.data)
        copying[name] = encoded.copy
      } else {
        args.push(name, this.encode(name, value))
      }
    }
    return args
  }

  /**
   * Every tag's version, in batches each within the time budget (the hash holds every tag ever invalidated), with the
   * epoch they count in: drawn here when the hash has none, so that every instance loads its entries under one.
   */
  private async readTags (): Promise<TagEpoch> {
    const [, epoch] = await this.transaction('tags', [['hsetnx', this.tagKey, EPOCH, unique()], ['hget', this.tagKey, EPOCH]]) as [unknown, string]
    const versions = emptyRecord<number>()
    let cursor = '0'
    do {
      const [next, pairs] = await this.run('tags', () => send(this.client, 'HSCAN', [this.tagKey, cursor, 'COUNT', 1000])) as [string, string[]]
      for (let i = 0; i < pairs.length; i += 2) if (pairs[i] !== EPOCH) versions[pairs[i] as string] = Number(pairs[i + 1])
      cursor = next
    } while (cursor !== '0')
    // Lost and counted anew between two batches, the versions read would mix two epochs.
    if (await this.run('tags', () => send(this.client, 'HGET', [this.tagKey, EPOCH])) !== epoch) {
      throw new StoreError('tags', 'the tag versions were lost while they were read')
    }
    return { epoch, versions }
  }

  private async bumpTags (names: readonly string[], stale = ''): Promise<TagEpoch> {
    const [epoch, ...counts] = await this.run('tags', () => this.eval(BUMP_TAGS, 1, this.tagKey, unique(), stale, ...names)) as [string, ...number[]]
    const versions = emptyRecord<number>()
    names.forEach((name, i) => { versions[name] = Number(counts[i]) })
    return { epoch, versions }
  }

  /** The hash of the tags' versions, and their epoch in the field no tag can name. */
  private get tagKey (): string {
    return FENCES + this.prefix + '#tags'
  }

  /**
   * The fence of every key is the store-wide one (moved by `clear`) and the key's own (moved by its changes). The
   * store-wide one is also how a loss shows: it never expires, so a store that has none forgot everything.
   *
   * On a cluster a script may only touch keys of one slot, and the check of both fences must be atomic with the write
   * it guards: each slot has a store-wide fence of its own, and both fences carry the hash tag of the key's slot.
   */
  private fenceKeys (key: string): [string, string] {
    const all = this.cluster === undefined ? FENCES + this.prefix : FENCES + tagOf(slotOf(this.prefix + key)) + this.prefix
    return [all, all + ':' + key]
  }

  /** Commands that move the fences of `keys` to new values. */
  private bumps (keys: readonly string[]): Argument[][] {
    return keys.map((key) => ['set', this.fenceKeys(key)[1], unique(), 'PX', FENCE_TTL])
  }

  /**
   * Moves the store-wide fence: to a new value on one Redis. On a cluster each slot's is deleted instead (a
   * pipeline per master), which fences as well: a slot without one refuses every load that began before, and the next
   * load draws a new one. Deleting needs no script per slot, and leaves no fence in the slots that hold no key.
   */
  private async moveStoreFence (): Promise<void> {
    if (this.cluster === undefined) {
      await this.run('clear', () => send(this.client, 'SET', [FENCES + this.prefix, unique()]))
      return
    }
    // A pipeline goes to one node: the slots it names must be served by the same nodes (ioredis' own rule).
    const byMaster = new Map<string, Argument[][]>()
    for (let slot = 0; slot < SLOTS; slot++) {
      const nodes = this.cluster.slots[slot]?.join(';') ?? ''
      const commands = byMaster.get(nodes) ?? []
      commands.push(['unlink', FENCES + tagOf(slot) + this.prefix])
      byMaster.set(nodes, commands)
    }
    await Promise.all([...byMaster.values()].map(async (commands) => {
      const replies = await this.run('clear', async () => await this.cluster?.pipeline(commands).exec())
      for (const [error] of replies ?? []) if (error !== null) throw new StoreError('clear', error.message, { cause: error })
    }))
  }

  private async readFence (key: string): Promise<string> {
    return await this.run('fence', () => this.eval(KEY_FENCE, 2, ...this.fenceKeys(key), unique())) as string
  }

  private async bumpFence (key: string): Promise<string> {
    return await this.run('fence', () => this.eval(KEY_FENCE, 2, ...this.fenceKeys(key), unique(), unique(), FENCE_TTL)) as string
  }

  private async setIfFence (key: string, value: unknown, ttl: number, fence: string): Promise<boolean> {
    const data = this.encode(key, value)
    const [all, own] = this.fenceKeys(key)
    return await this.run('set', () => this.eval(SET_IF, 3, this.prefix + key, all, own, fence, data, ttl), data.length) === 1
  }

  /** The fences of `keys`, in one script: the store-wide one (drawn if there is none), ':', each key's own. */
  private async readFences (keys: readonly string[]): Promise<string[]> {
    if (keys.length === 0) return []
    // On a cluster, one script per slot, with that slot's store-wide fence (see `fenceKeys`).
    return await this.slotwise(keys, async (group) => {
      const own = group.map((key) => this.fenceKeys(key)[1])
      return await this.run('fence', () => this.eval(KEY_FENCES, group.length + 1, this.fenceKeys(group[0] as string)[0], ...own, unique())) as string[]
    })
  }

  /** Each entry written only under its own fence, in one script (one per slot on a cluster); true for those written. */
  private async setManyIfFence (entries: readonly FencedEntry[]): Promise<boolean[]> {
    if (entries.length === 0) return []
    const byKey = new Map(entries.map((entry) => [entry.key, entry]))
    return await this.slotwise(entries.map((entry) => entry.key), async (group) => {
      const keys: Argument[] = [this.fenceKeys(group[0] as string)[0]]
      const args: Argument[] = []
      for (const key of group) {
        const { value, ttl, fence } = byKey.get(key) as FencedEntry
        keys.push(this.prefix + key, this.fenceKeys(key)[1])
        args.push(fence, this.encode(key, value), ttl)
      }
      const written = await this.run('set', () => this.eval(SET_MANY_IF, keys.length, ...keys, ...args), bytesOf(args)) as number[]
      return written.map((one) => one === 1)
    })
  }

  private encode (key: string, value: unknown): string | Buffer {
    return encodeFor(this.serializer, key, value, this.maxEntryBytes)
  }

  private decode (data: unknown): unknown {
    return data === null || data === undefined ? undefined : this.serializer.decode(data as Buffer)
  }

  private async transaction (operation: string, commands: Argument[][]): Promise<unknown[]> {
    const replies = await this.run(operation, () => this.client.multi(commands).exec(), bytesOf(commands))
    if (replies === null) throw new StoreError(operation, 'the transaction was discarded')
    return replies.map(([error, reply]) => {
      if (error !== null) throw new StoreError(operation, error.message, { cause: error })
      return reply
    })
  }

  /** `bytes`: what the command writes, counted while it waits (see `Waiting`). */
  private run<T> (operation: string, command: () => Promise<T>, bytes = 0): Promise<T> {
    // Every command's error goes to the connection's scripts: a script refused by SHA-1 sends it to their text.
    return redisCommand(this.client, operation, this.timeout, command, undefined, bytes, this.scripts?.failed)
  }

  /** Runs `script`: by its SHA-1 where the connection has it (see lib/stores/scripts.ts); on a cluster, by its text. */
  private eval (script: string, ...args: Argument[]): Promise<unknown> {
    return this.scripts === undefined ? send(this.client, 'EVAL', [script, ...args]) : this.scripts.run(script, args, false)
  }

  /** `eval`, the reply's strings as Buffers. */
  private evalBuffer (script: string, ...args: Argument[]): Promise<unknown> {
    return this.scripts === undefined ? send(this.client, 'EVAL', [script, ...args], true) : this.scripts.run(script, args, true)
  }
}

/** The hash field that holds a group's fence; no field of a level's is ever named with the empty string. */
const FENCE = ''
/**
 * The hash field that counts a group's changes (no field of a level's is named `#`: theirs have a prefix with a
 * colon, or are store keys), so that a copy held in memory can be checked with one small read.
 */
const VERSION = '#'

/** A flat HGETALL-style reply as name/value pairs. */
function pairsOf (flat: Buffer[]): Array<[string, Buffer]> {
  const pairs: Array<[string, Buffer]> = []
  for (let i = 0; i < flat.length; i += 2) pairs.push([(flat[i] as Buffer).toString(), flat[i + 1] as Buffer])
  return pairs
}

/**
 * Defines `leaseHolders(registry, origin)`: the origins other than `origin` whose lease in the sorted set `registry`
 * has not ended (score: its end in the server's ms), each followed by the ms it has left. Expired leases are dropped
 * by their holders' renewals (`RENEW_LEASE`).
 */
const LEASE_HOLDERS = `local function leaseHolders (registry, origin)
  local time = redis.call('time')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local live = redis.call('zrangebyscore', registry, '(' .. now, '+inf', 'WITHSCORES')
  local holders = {}
  for i = 1, #live, 2 do
    if live[i] ~= origin then
      holders[#holders + 1] = live[i]
      holders[#holders + 1] = tostring(math.ceil(tonumber(live[i + 1]) - now))
    end
  end
  return holders
end
`

/** KEYS[1] the registry of leases; ARGV: channel, message, origin. Publishes while another origin holds a lease; answers the holders. */
export const PUBLISH_LEASED = LEASE_HOLDERS + `local holders = leaseHolders(KEYS[1], ARGV[3])
if #holders > 0 then redis.call('publish', ARGV[1], ARGV[2]) end
return holders`

/**
 * KEYS[1] the registry of leases; ARGV: origin, lease in ms, a channel and a marker. Drops the leases that ended,
 * holds `origin`'s for the lease from now, then publishes the marker on the channel. Answers whether it held none (1:
 * its first, or one that ended or that the server lost meanwhile: changes made meanwhile were not published to it),
 * and whether the marker went out (0: refused, an ACL without PUBLISH, and then it holds no lease: an instance that
 * cannot publish cannot tell the holders of its changes, and its fellows, under the same ACL, could not tell it).
 */
export const RENEW_LEASE = `local time = redis.call('time')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local added = redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('pexpire', KEYS[1], 2 * tonumber(ARGV[2]))
if type(redis.pcall('publish', ARGV[3], ARGV[4])) ~= 'number' then
  redis.call('zrem', KEYS[1], ARGV[1])
  return {added, 0}
end
return {added, 1}`

// KEYS[1] is the group. Each script checks and changes in one step, so no other client's command runs in between.
// A ttl of 0: the group does not expire.
const CREATE = `if redis.call('exists', KEYS[1]) == 1 then return 0 end
redis.call('hset', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '0' then redis.call('pexpire', KEYS[1], ARGV[1]) end
return 1`

// ARGV: the channel and message to publish once the change is made ('': none), the publishing origin (with a registry
// of leases as KEYS[2]: published only while another origin holds one, and those answered last), then in one argument
// `ttl clear max n fence` (clear 0: no, 1: every field, 2: every field but those starting with keep; the cap's max, 0:
// none; the count n of fields to remove; the fence last, whatever it holds), keep, the cap's prefix, those n names, then
// name/value pairs to set. One argument for the five, not five: ioredis spends about 800 instructions on each argument
// of a command, and this is the command of every session write. A field set again is deleted first, so that a
// small hash's order is write order. A publish refused (an ACL without the channel) leaves the change made and answers
// 0 last, where a failed call would stop the script half way.
// Every change moves the version ('#'), which a clear keeps, so that no copy of the group from before can pass for it.
const UPDATE = LEASE_HOLDERS + `local ttl, clear, max, n, fence = string.match(ARGV[4], '^(%S+) (%S+) (%S+) (%S+) (.*)$')
if redis.call('hget', KEYS[1], '') ~= fence then return 0 end
local before = redis.call('hget', KEYS[1], '#') or ''
if clear == '1' then
  local version = before ~= '' and before or false
  redis.call('del', KEYS[1])
  redis.call('hset', KEYS[1], '', fence)
  if version then redis.call('hset', KEYS[1], '#', version) end
elseif clear == '2' then
  local keep = ARGV[5]
  for _, name in ipairs(redis.call('hkeys', KEYS[1])) do
    if name ~= '' and name ~= '#' and string.sub(name, 1, #keep) ~= keep then redis.call('hdel', KEYS[1], name) end
  end
end
local after = redis.call('hincrby', KEYS[1], '#', 1)
n = tonumber(n)
if n > 0 then redis.call('hdel', KEYS[1], unpack(ARGV, 7, 6 + n)) end
if #ARGV > 6 + n then
  for i = 7 + n, #ARGV, 2 do redis.call('hdel', KEYS[1], ARGV[i]) end
  redis.call('hset', KEYS[1], unpack(ARGV, 7 + n))
end
max = tonumber(max)
if max > 0 then
  local prefix = ARGV[6]
  local kind = {}
  for _, name in ipairs(redis.call('hkeys', KEYS[1])) do
    if name ~= '' and name ~= '#' and string.sub(name, 1, #prefix) == prefix then kind[#kind + 1] = name end
  end
  for i = 1, #kind - max do redis.call('hdel', KEYS[1], kind[i]) end
end
if ttl ~= '0' then redis.call('pexpire', KEYS[1], ttl) end
local told = 1
local holders = {}
if ARGV[1] ~= '' then
  if KEYS[2] then holders = leaseHolders(KEYS[2], ARGV[3]) end
  if (not KEYS[2] or #holders > 0) and type(redis.pcall('publish', ARGV[1], ARGV[2])) == 'table' then told = 0 end
end
return {1, before, tostring(after), told, holders}`

// ARGV: ttl, the fence and the version of the copy held. 0: no group; 1: the copy is current; else the group.
const CHECK = `local held = redis.call('hmget', KEYS[1], '', '#')
if not held[1] then return 0 end
if ARGV[1] ~= '0' then redis.call('pexpire', KEYS[1], ARGV[1]) end
if held[1] == ARGV[2] and held[2] == ARGV[3] then return 1 end
return redis.call('hgetall', KEYS[1])`

const END = `if redis.call('hget', KEYS[1], '') ~= ARGV[1] then return nil end
local fields = redis.call('hgetall', KEYS[1])
redis.call('del', KEYS[1])
return fields`

/** Where fences live: outside the data's namespace, so that no cache key can name one. */
const FENCES = 'fmc-fence:'
/**
 * How long a fence outlives the last change of its key, in ms. A load that runs longer than this across a change
 * may write its value: a fence that expired reads as it did before any change.
 */
const FENCE_TTL = 600_000

/** This process's part of every value `unique` draws: 72 random bits. */
const ORIGIN = randomBytes(9).toString('base64url')
let drawn = 0

/**
 * A value no process draws twice (a fence, an epoch): after Redis forgot what it held, no value it had comes back,
 * as a counter that starts again from 1 would.
 */
function unique (): string {
  return ORIGIN + '.' + (++drawn).toString(36)
}

/** The field of the tags' hash that holds their epoch: a tag is never the empty string. */
const EPOCH = ''

// KEYS[1]: the tags' hash. ARGV: an epoch for a hash that has none, an epoch to replace ('' for none), then the tags.
// Answers the epoch, then each tag's new version.
const BUMP_TAGS = `local epoch = redis.call('hget', KEYS[1], '')
if not epoch or epoch == ARGV[2] then
  epoch = ARGV[1]
  redis.call('hset', KEYS[1], '', epoch)
end
local answer = {epoch}
for i = 3, #ARGV do answer[#answer + 1] = redis.call('hincrby', KEYS[1], ARGV[i], 1) end
return answer`

// KEYS: the store-wide fence, the key's fence. ARGV: a store-wide fence for a store that has none, then to move the
// key's fence, its new value and its ttl. Answers the fence of the key: the store-wide one, ':', the key's own.
const KEY_FENCE = `local all = redis.call('get', KEYS[1])
if not all then
  all = ARGV[1]
  redis.call('set', KEYS[1], all)
end
if ARGV[2] then
  redis.call('set', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return all .. ':' .. ARGV[2]
end
return all .. ':' .. (redis.call('get', KEYS[2]) or '')`

// KEYS: the data key, the store-wide fence, the key's fence. ARGV: the fence the load started under, the data, the ttl.
// Without a store-wide fence the store forgot every fence since the load read its own: nothing can vouch for it.
const SET_IF = `local all = redis.call('get', KEYS[2])
if not all or all .. ':' .. (redis.call('get', KEYS[3]) or '') ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then redis.call('set', KEYS[1], ARGV[2]) else redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1`

// KEYS: the store-wide fence, then each key's fence. ARGV: a store-wide fence for a store that has none. Answers the
// fence of each key, as KEY_FENCE does for one.
const KEY_FENCES = `local all = redis.call('get', KEYS[1])
if not all then
  all = ARGV[1]
  redis.call('set', KEYS[1], all)
end
local answer = {}
for i = 2, #KEYS do answer[i - 1] = all .. ':' .. (redis.call('get', KEYS[i]) or '') end
return answer`

// KEYS: the store-wide fence, then for each entry its data key and its key's fence. ARGV: for each entry the fence its
// load started under, the data, the ttl. SET_IF for each entry, in one step; answers 1 for each written, 0 otherwise.
const SET_MANY_IF = `local all = redis.call('get', KEYS[1])
local answer = {}
for i = 1, (#KEYS - 1) / 2 do
  local fence, data, ttl = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if all and all .. ':' .. (redis.call('get', KEYS[2 * i + 1]) or '') == fence then
    if ttl == '0' then redis.call('set', KEYS[2 * i], data) else redis.call('set', KEYS[2 * i], data, 'PX', ttl) end
    answer[i] = 1
  else
    answer[i] = 0
  end
end
return answer`

// KEYS: the data keys. Answers for each its value (nil when absent) and its PTTL (-1: no expiry, -2: absent).
const GET_TIMED = `local answer = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('get', key)
  answer[2 * i - 1] = value
  answer[2 * i] = value and redis.call('pttl', key) or -2
end
return answer`

/**
 * Closes a client this package opened: politely when connected, within `timeout` ms, and at once otherwise (a QUIT would
 * wait for a reconnect).
 */
export async function closeClient (client: RedisClient, timeout = 1000): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect()
    return
  }
  // A stalled Redis would never answer the QUIT, and `fastify.close()` would wait for it: cut the line instead.
  const quit = client.quit()
  quit.catch(() => {})
  await withBudget('quit', timeout, async () => await quit).catch(() => { client.disconnect() })
}

/** Escapes the glob characters of a prefix for `SCAN MATCH`. */
function escapeGlob (prefix: string): string {
  return prefix.replace(/[*?[\]\\]/g, '\\$&')
}
