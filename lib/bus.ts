import { randomUUID } from 'node:crypto'
import type { Breaker } from './breaker.js'
import { withBudget } from './budget.js'
import { StoreError, UnconfirmedInvalidationError } from './errors.js'
import { UNKNOWN_EPOCH, emptyRecord, type AnnouncedChange, type Announcement, type Awaitable, type Invalidation } from './store.js'
import { closeClient, isCluster, nodeKey, PUBLISH_LEASED, redisCommand, RENEW_LEASE, type RedisClient, type RedisClusterClient, type RedisConnection } from './stores/redis.js'
import { slotOf, tagOf } from './stores/slots.js'
import { send } from './stores/send.js'

export type { Invalidation }

interface Envelope { origin: string, id?: unknown, keys?: unknown, clear?: unknown, tags?: unknown, epoch?: unknown }

/** A message published with `publishAcknowledged`, waiting for its receivers. */
interface Awaited {
  /** Subscribers that received it, as PUBLISH answered; undefined until it has. */
  receivers: number | undefined
  /** Receivers that acknowledged it so far (acknowledgements may come before PUBLISH's answer). */
  acknowledged: number
  done: () => void
}

/** A message published with `tellLeased`, waiting for the instances that held a lease. */
interface AwaitedByLease {
  /** The holders not heard from yet; undefined until the step that published it has answered. */
  pending: Set<string> | undefined
  /** Origins that acknowledged before that answer; made by the first such (most changes have none). */
  early: Set<string> | undefined
  done: (() => void) | undefined
}

/** How long a cluster's bus waits before it looks for the master of its channels again, after losing it, in ms. */
const RECONNECT = 250

/** What an origin looks like (`randomUUID()`): a message's origin names a channel, so nothing else is taken. */
const ORIGIN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export interface InvalidationBusOptions {
  /** Publishes through this client; listens on a duplicate of it, a connection of its own. */
  client: RedisClient
  /** One channel per store namespace (on a cluster, with the hash tag of its slot before it). */
  channel: string
  /** Time budget of a publish, in ms. */
  timeout: number
  /**
   * Called for every message of another instance, and with `{ clear: true }` when the subscription is lost and each
   * time one is in place, the first included: what was published while there was none was never heard (a Redis that
   * answers only after the app started leaves it deaf from the start).
   */
  onMessage: (message: Invalidation) => void
  /** The store's circuit breaker: while it is open, a publish fails at once. */
  breaker?: Breaker
  /**
   * Hold a lease in this sorted set of the server (see `tellLeased`), renewed a quarter to a half of `ms` after the last
   * renewal (see `renew`): while it runs, every message published before its last renewal has been applied here.
   * `connected` is false while it does not.
   * A lease whose memory tier went unused for `idle` ms (default ten leases) is let go, and taken again by the next use
   * (see `hears`).
   */
  lease?: { registry: string, ms: number, idle?: number }
}

/**
 * Cross-instance invalidation over Redis pub/sub. Each instance tags what it publishes with a random origin and
 * ignores its own messages.
 *
 * On a Redis Cluster the bus uses sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7): its channel and the
 * acknowledgement channels share a hash tag, so every message goes to one shard only (classic `PUBLISH` is sent to
 * every node of the cluster), every bus subscribes on that shard's master through a connection of its own, and
 * `SPUBLISH` answers how many buses received a message, which `publishAcknowledged` needs. That connection does not
 * reconnect to its node: when it closes (the master failed, or the slot moved) the bus asks the cluster where the slot
 * lives now and subscribes there. The subscriber subscribes again each time its connection is ready (ioredis would
 * resubscribe only after announcing itself ready, leaving a window in which messages are lost unseen); while it
 * is not subscribed `listening` is false, so that a memory tier stops answering, and losing the subscription
 * empties that tier, because whatever was published meanwhile is never heard. Every subscription that takes hold
 * says so the same way, so that what was read while deaf (tag versions) is read again.
 *
 * A message may ask to be acknowledged (`publishAcknowledged`): each other bus that hears it answers on the
 * publisher's own acknowledgement channel once `onMessage` has applied it.
 *
 * With a `lease`, a change can be final on every instance when its call returns, without a round trip per read: each
 * bus registers its lease in Redis with a script that then publishes a marker to the bus's own subscription (it comes
 * after every message published before the registration, so all of them have been applied when it does), and counts
 * the lease from before it registered.
 * `tellLeased` publishes, in the change's own step, only while another instance holds a lease, and waits until each
 * holder has applied the message or its lease has ended: one that does not answer (stalled, cut off) stops serving
 * from memory by then by its own clock. A renewal begun after the lease ended here, or that finds it gone from the
 * registry (the server lost it), empties the memory tier first: what was changed meanwhile was not published to it.
 */
export class InvalidationBus {
  readonly origin = randomUUID()
  /** The start of every message's JSON: its origin. */
  private readonly head = `{"origin":${JSON.stringify(this.origin)}`
  /** Resolves once the first subscription is in place. */
  readonly subscribed: Promise<void>
  /** Messages published, and messages of other instances heard: counted for the metrics. */
  sent = 0
  received = 0
  private subscriber: RedisConnection | undefined
  private listening = false
  private closed = false
  /** The channel, and where the other buses acknowledge this one's messages. */
  private readonly channel: string
  private readonly acknowledgements: string
  private readonly awaited = new Map<string, Awaited>()
  /** The cluster, when the bus is on one: sharded pub/sub. */
  private readonly cluster: RedisClusterClient | undefined
  private readonly publishing: 'PUBLISH' | 'SPUBLISH'
  private readonly leased = new Map<string, AwaitedByLease>()
  private readonly leaseHolders: Announcement['leases']
  /** Messages told with `tellLeased`, for their ids. */
  private told = 0
  private first: () => void = () => {}
  private retry: NodeJS.Timeout | undefined
  /** Until when (`performance.now()`) the lease runs; 0 while there is none. */
  private leaseEnds = 0
  private renewal: NodeJS.Timeout | undefined
  /** When (`performance.now()`) the next renewal is due: the first use of the memory tier after it renews. */
  private renewDue = Infinity
  private renewing = false
  /** The marker the renewal under way waits for on the subscription, and what it calls once that came. */
  private marker: { text: string, heard: () => void } | undefined
  private markers = 0
  /** Counts the subscriptions that took hold: a renewal begun under one proves nothing for the next. */
  private subscriptions = 0
  /** False while the last marker or PING of a renewal has not come back. */
  private answering = true
  /** Whether the memory tier was used since the last renewal, and renewals in a row since it was. */
  private used = false
  private unused = 0

  constructor (private readonly options: InvalidationBusOptions) {
    this.cluster = isCluster(options.client) ? options.client : undefined
    this.publishing = this.cluster === undefined ? 'PUBLISH' : 'SPUBLISH'
    this.channel = this.cluster === undefined ? options.channel : tagOf(slotOf(options.channel)) + options.channel
    this.acknowledgements = acknowledgementChannel(this.channel, this.origin)
    this.subscribed = new Promise((resolve) => { this.first = resolve })
    this.leaseHolders = options.lease === undefined ? undefined : { registry: options.lease.registry, origin: this.origin }
    this.connect()
  }

  /** Opens the subscriber: a duplicate of the client, or on a cluster a connection to the master of the channel's slot. */
  private connect (): void {
    const { client } = this.options
    const subscribing = { autoResubscribe: false, lazyConnect: false, enableOfflineQueue: true }
    if (!isCluster(client)) {
      this.listen(client.duplicate(subscribing))
      return
    }
    const master = client.slots[slotOf(this.channel)]?.[0]
    const node = client.nodes('master').find((node) => nodeKey(node) === master)
    if (node === undefined) this.reconnect()
    else this.listen(node.duplicate({ ...subscribing, retryStrategy: () => null }))
  }

  /** On a cluster: where the channel's slot lives may have changed; asks, then subscribes there. */
  private reconnect (): void {
    if (this.closed) return
    clearTimeout(this.retry)
    this.retry = setTimeout(() => {
      this.cluster?.refreshSlotsCache(() => { if (!this.closed) this.connect() })
    }, RECONNECT)
  }

  private listen (subscriber: RedisConnection): void {
    this.subscriber = subscriber
    const sharded = this.cluster !== undefined
    subscriber.on('ready', () => {
      const channels = [this.channel, this.acknowledgements]
      const subscribed = sharded ? (subscriber.ssubscribe as NonNullable<RedisConnection['ssubscribe']>)(...channels) : subscriber.subscribe(...channels)
      subscribed.then(() => {
        // A subscription that was already in place (a second 'ready' whose first SUBSCRIBE went through) adds nothing.
        if (this.closed || this.listening || this.subscriber !== subscriber) return
        this.listening = true
        this.subscriptions++
        this.first()
        this.options.onMessage({ clear: true })
        this.renew()
      }, () => {
        // One Redis: the connection went again, and the next 'ready' subscribes. A cluster's node that refuses (the slot
        // is served elsewhere now): the bus looks for the slot's master again.
        if (sharded) subscriber.disconnect()
      })
    })
    subscriber.on('close', () => {
      if (this.subscriber !== subscriber) return
      if (sharded) {
        // This connection does not come back by itself: the next is opened where the slot lives then.
        this.subscriber = undefined
        this.reconnect()
      }
      if (!this.listening) return
      this.listening = false
      this.leaseEnds = 0
      this.options.onMessage({ clear: true })
    })
    // Connection errors are retried by ioredis and seen through `listening`; without a listener they would throw. On a
    // cluster's node an error may also be the node dropping the subscription as its slot moves away, which ioredis 5
    // reports as one ("Command queue state error", an unsolicited SUNSUBSCRIBE) and 6 as 'moved': the bus looks again.
    subscriber.on('error', () => { if (sharded) subscriber.disconnect() })
    subscriber.on(sharded ? 'smessage' : 'message', (channel: string, raw: string) => { this.receive(channel, raw) })
    if (sharded) subscriber.on('moved', () => { subscriber.disconnect() })
  }

  /** True while messages from other instances can arrive (and, with a lease, while it runs). */
  get connected (): boolean {
    return this.listening && (this.options.lease === undefined || performance.now() < this.leaseEnds)
  }

  /**
   * `connected`, asked by a memory tier about to serve or keep something: a use that keeps a lease renewed, or takes
   * again one let go. A lease unused for a while is let go (an idle instance then costs Redis and the other instances
   * nothing: no renewal, no message to acknowledge); the first use after that is not served from memory once the lease
   * has ended, and the renewal it starts empties the memory tier, as after any lease that ended.
   */
  hears (): boolean {
    this.used = true
    if (this.options.lease === undefined) return this.listening
    // Asked several times a request: the clock is read once.
    const now = performance.now()
    if (this.renewal === undefined ? this.unused > 0 : now >= this.renewDue) this.renew()
    return this.listening && now < this.leaseEnds
  }

  /** With a lease: where a store's script finds the instances that hold one, and which this bus is. */
  get leases (): Announcement['leases'] {
    return this.leaseHolders
  }

  /**
   * Registers the lease again and proves the subscription current (see the class): at most one renewal at a time; one
   * that fails leaves the lease to end by itself. After a marker that did not come back the bus only PINGs until one
   * is answered: a bus that does not hear must not stay registered, or every change would wait for its lease to end.
   * One whose marker cannot be published (an ACL without PUBLISH) holds none: the script takes the registration back.
   *
   * A renewal is due a quarter of the lease after the last began, and the first use of the memory tier after that
   * begins it, in a turn its request woke the process for; a timer renews at half the lease an instance that no use
   * woke meanwhile, which leaves the other half for it to be answered: its time budget, which ends with that timer
   * (a timer that ends sooner wakes the process even when it was cleared). A wake-up of an idle process costs about
   * 250 µs of CPU on the VMs of the benchmarks: a timer of its own each quarter, then the registration's answer, a
   * PING's and the budget's timer, made a lease cost an idle instance 3.4 ms of CPU a second (1.65 ms now).
   */
  private renew (): void {
    const lease = this.options.lease
    if (lease === undefined || this.renewing || this.closed || !this.listening) return
    const { every, late } = periodsOf(lease)
    this.unused = this.used ? 0 : this.unused + 1
    this.used = false
    if (this.unused * late > (lease.idle ?? 10 * lease.ms)) {
      // Let go: it ends by itself, in Redis's registry and here.
      clearTimeout(this.renewal)
      this.renewal = undefined
      this.renewDue = Infinity
      return
    }
    this.renewDue = performance.now() + every
    if (this.renewal === undefined) {
      this.renewal = setTimeout(() => {
        // Set again first: a renewal still under way, or no subscription, renews nothing now, and must not end them.
        this.renewal?.refresh()
        this.renew()
      }, late).unref()
    } else this.renewal.refresh()
    this.renewing = true
    this.renewLease(lease, late).catch(() => {}).finally(() => {
      this.renewing = false
      this.marker = undefined
    })
  }

  /** One renewal, within `budget` ms. */
  private async renewLease (lease: NonNullable<InvalidationBusOptions['lease']>, budget: number): Promise<void> {
    const { client } = this.options
    const subscriber = this.subscriber as RedisConnection
    const subscription = this.subscriptions
    const from = performance.now()
    // A lease that ended here may have ended in the registry too, and changes made since were told to nobody here.
    // The registration's answer cannot be trusted to say so: one that ran out of its time budget may still have
    // registered once Redis answered again, and the next then finds the lease held.
    const ended = from >= this.leaseEnds
    const registering = this.answering
    if (registering) {
      // Waited for from before the script runs: the marker may be read before the script's answer.
      const text = `lease ${++this.markers}`
      const marked = new Promise<void>((resolve) => { this.marker = { text, heard: resolve } })
      // One budget for the registration and its marker, which come back together.
      await redisCommand(client, 'lease', budget, async () => {
        const [added, published] = await send(client, 'EVAL', [RENEW_LEASE, 1, lease.registry, this.origin, lease.ms, this.acknowledgements, text]) as [number, number]
        if (added === 1 || ended) this.options.onMessage({ clear: true })
        if (published !== 1) throw new StoreError('lease', 'the lease\'s marker could not be published (does the ACL allow PUBLISH?): no lease is held, and sessions are read from Redis')
        this.answering = false
        await marked
      })
    } else {
      await withBudget('lease', budget, () => send(subscriber, 'PING', []))
    }
    this.answering = true
    // A margin for timers that fire a little early, and for clocks that run a little apart.
    if (registering && this.listening && this.subscriptions === subscription) this.leaseEnds = Math.max(this.leaseEnds, from + lease.ms * 0.95)
  }

  /**
   * Whether a store may publish this bus's messages itself, in the step that makes the change (see
   * `GroupOperations.updateAnnounced`): one round trip where a change and then `publish` take two. Not on a cluster,
   * where the channel's shard is not the changed key's, which a script there may not reach.
   */
  get inScripts (): boolean {
    return this.cluster === undefined
  }

  /** `message` for a store to publish itself (see `inScripts`). */
  announcement (message: Invalidation): Announcement {
    return { channel: this.channel, message: this.envelope(message) }
  }

  /** `message` as published: `{ origin, id?, ...message }` in JSON, the origin's part written once. */
  private envelope (message: Invalidation, id?: string): string {
    const head = id === undefined ? this.head : `${this.head},"id":${JSON.stringify(id)}`
    // Every message has a field (`keys`, `clear` or `tags`): its JSON goes on after the head's. A change's keys, on
    // every write, without the object's JSON made and cut.
    if ('keys' in message) return `${head},"keys":${JSON.stringify(message.keys)}}`
    return `${head},${JSON.stringify(message).slice(1)}`
  }

  /**
   * Tells the instances that hold a lease of `message`: `publish` makes the change and, in the same step, publishes
   * the announcement it is given while another instance holds a lease, answering what changed, `holders` (origin, ms
   * left, in turn) and `announced` (false when it could not publish, an ACL without the channel). Resolves, with what
   * changed, once each holder has applied it, or its lease has ended. A message it could not publish fails the call.
   */
  async tellLeased<T> (message: Invalidation, publish: (announcement: Announcement) => Awaitable<AnnouncedChange<T>>): Promise<T> {
    // Ids need only be unique per origin: acknowledgements come on this bus's own channel.
    const id = String(++this.told)
    // Acknowledgements may come before the step's answer: they are kept until it tells whom to wait for.
    const awaited: AwaitedByLease = { pending: undefined, early: undefined, done: undefined }
    this.leased.set(id, awaited)
    try {
      const { changed: result, holders = [], announced } = await publish({ channel: this.channel, message: this.envelope(message, id), leases: this.leases })
      if (holders.length === 0) return result
      if (!announced) throw new StoreError('publish', `the change was made, but its message to the ${holders.length / 2} other instances holding a lease could not be published (does the ACL allow the channel?)`)
      this.sent++
      let longest = 0
      const pending = new Set<string>()
      for (let i = 0; i < holders.length; i += 2) {
        if (awaited.early?.has(holders[i] as string) === true) continue
        pending.add(holders[i] as string)
        longest = Math.max(longest, Number(holders[i + 1]))
      }
      if (pending.size === 0) return result
      awaited.pending = pending
      let timer: NodeJS.Timeout | undefined
      await new Promise<void>((resolve) => {
        awaited.done = resolve
        timer = setTimeout(resolve, longest + 1)
      })
      clearTimeout(timer)
      return result
    } finally {
      this.leased.delete(id)
    }
  }

  /** `tellLeased` of a change already made: the message goes out alone, to the lease holders. */
  async publishLeased (message: Invalidation): Promise<void> {
    const { client, timeout, breaker } = this.options
    await this.tellLeased(message, async ({ channel, message: envelope, leases }) => {
      const { registry, origin } = leases as NonNullable<Announcement['leases']>
      const holders = await redisCommand(client, 'publish', timeout, () => send(client, 'EVAL', [PUBLISH_LEASED, 1, registry, channel, envelope, origin]), breaker) as string[]
      return { changed: undefined, holders, announced: true }
    })
  }

  /** Counts a message of `announcement` as sent, once the store has published it. */
  announced (): void {
    this.sent++
  }

  async publish (message: Invalidation): Promise<void> {
    const { client, timeout, breaker } = this.options
    const envelope = this.envelope(message)
    await redisCommand(client, 'publish', timeout, () => send(client, this.publishing, [this.channel, envelope]), breaker)
    this.sent++
  }

  /**
   * Publishes `message` and resolves once every subscriber that received it has applied it. PUBLISH answers how many
   * received it, this bus's own subscription among them (its instance applied the change before publishing); each
   * other bus acknowledges once its `onMessage` has run. A subscription lost meanwhile empties and bypasses that
   * memory tier, but is not heard of here: past `within` ms this rejects with `FST_MULTICACHE_UNCONFIRMED`, naming how
   * many did not answer, and the message stands as published.
   */
  async publishAcknowledged (message: Invalidation, within: number): Promise<void> {
    const { client, timeout, breaker } = this.options
    const id = randomUUID()
    const awaited: Awaited = { receivers: undefined, acknowledged: 0, done: () => {} }
    const all = new Promise<void>((resolve) => { awaited.done = resolve })
    this.awaited.set(id, awaited)
    try {
      const envelope = this.envelope(message, id)
      awaited.receivers = Number(await redisCommand(client, 'publish', timeout, () => send(client, this.publishing, [this.channel, envelope]), breaker))
      this.sent++
      if (awaited.acknowledged >= awaited.receivers) return
      await withBudget('acknowledge', within, async () => { await all }).catch(() => {
        // The budget waits one more turn of the event loop, so acknowledgements already received are counted.
        if (awaited.acknowledged < (awaited.receivers as number)) {
          throw new UnconfirmedInvalidationError((awaited.receivers as number) - awaited.acknowledged, awaited.receivers as number, within)
        }
      })
    } finally {
      this.awaited.delete(id)
    }
  }

  async close (): Promise<void> {
    this.closed = true
    this.listening = false
    clearTimeout(this.retry)
    clearTimeout(this.renewal)
    const { lease, client, timeout } = this.options
    // Others stop waiting for this instance at once, rather than when its lease ends.
    if (lease !== undefined) await redisCommand(client, 'lease', timeout, () => send(client, 'ZREM', [lease.registry, this.origin])).catch(() => {})
    if (this.subscriber !== undefined) await closeClient(this.subscriber, this.options.timeout)
  }

  private receive (channel: string, raw: string): void {
    if (channel === this.acknowledgements) {
      if (raw === this.marker?.text) this.marker.heard()
      else this.acknowledged(raw)
      return
    }
    if (channel !== this.channel) return
    let envelope: Envelope | null
    try {
      envelope = JSON.parse(raw) as Envelope | null
    } catch {
      return
    }
    // Anyone who can publish on the channel can send anything: only an object is read, and nothing here may throw.
    if (typeof envelope !== 'object' || envelope === null) return
    if (envelope.origin === this.origin) {
      // Our own message: this instance applied the change before publishing it.
      if (typeof envelope.id === 'string') this.acknowledged(`${envelope.id} ${this.origin}`)
      return
    }
    this.received++
    if (envelope.clear === true) this.options.onMessage({ clear: true })
    else if (Array.isArray(envelope.keys)) this.options.onMessage({ keys: envelope.keys.filter((key): key is string => typeof key === 'string') })
    else if (typeof envelope.tags === 'object' && envelope.tags !== null) {
      // Without an epoch the versions count in none the listener knows: it reads them all again.
      this.options.onMessage({ tags: versionsIn(envelope.tags), epoch: typeof envelope.epoch === 'string' ? envelope.epoch : UNKNOWN_EPOCH })
    }
    if (typeof envelope.id === 'string' && typeof envelope.origin === 'string' && ORIGIN.test(envelope.origin)) this.acknowledge(envelope.origin, envelope.id)
  }

  /**
   * Tells the bus `origin` that this one has applied its message `id`. Not through the breaker: nobody here waits for
   * it, so a slow answer costs this instance nothing and must not open the circuit for its store; and an open circuit
   * must not keep back what the other instance is waiting for. A failure leaves that bus to report it.
   */
  private acknowledge (origin: string, id: string): void {
    const { client, timeout } = this.options
    redisCommand(client, 'acknowledge', timeout, () => send(client, this.publishing, [acknowledgementChannel(this.channel, origin), `${id} ${this.origin}`])).catch(() => {})
  }

  /** An acknowledgement: the message's id, then (from a bus that may hold a lease) the acknowledging origin. */
  private acknowledged (raw: string): void {
    const [id = '', by = ''] = raw.split(' ', 2)
    const leased = this.leased.get(id)
    if (leased !== undefined) {
      if (leased.pending === undefined) (leased.early ??= new Set()).add(by)
      else if (leased.pending.delete(by) && leased.pending.size === 0) leased.done?.()
      return
    }
    const awaited = this.awaited.get(id)
    if (awaited === undefined) return
    awaited.acknowledged++
    if (awaited.receivers !== undefined && awaited.acknowledged >= awaited.receivers) awaited.done()
  }
}

/** When a lease's renewal is due (at the first use after it), and when a timer renews it without one, in ms. */
function periodsOf (lease: { ms: number }): { every: number, late: number } {
  return { every: Math.max(1, Math.floor(lease.ms / 4)), late: Math.max(1, Math.floor(lease.ms / 2)) }
}

/** The channel on which the buses acknowledge the messages of the bus `origin`. */
function acknowledgementChannel (channel: string, origin: string): string {
  return `${channel}:ack:${origin}`
}

/** The tag versions of a message, keeping only what is a tag name and a whole number. */
function versionsIn (tags: object): Record<string, number> {
  const versions = emptyRecord<number>()
  for (const [tag, version] of Object.entries(tags)) if (Number.isSafeInteger(version)) versions[tag] = version as number
  return versions
}
