import { randomUUID } from 'node:crypto'
import type { Breaker } from './breaker.js'
import { withBudget } from './budget.js'
import { UnconfirmedInvalidationError } from './errors.js'
import type { Invalidation } from './store.js'
import { closeClient, redisCommand, type RedisClient } from './stores/redis.js'

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

/** What an origin looks like (`randomUUID()`): a message's origin names a channel, so nothing else is taken. */
const ORIGIN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export interface InvalidationBusOptions {
  /** Publishes through this client; listens on a duplicate of it, a connection of its own. */
  client: RedisClient
  /** One channel per store namespace. */
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
}

/**
 * Cross-instance invalidation over Redis pub/sub. Each instance tags what it publishes with a random origin and
 * ignores its own messages. The subscriber subscribes again each time its connection is ready (ioredis would
 * resubscribe only after announcing itself ready, leaving a window in which messages are lost unseen); while it
 * is not subscribed `listening` is false, so that a memory tier stops answering, and losing the subscription
 * empties that tier, because whatever was published meanwhile is never heard. Every subscription that takes hold
 * says so the same way, so that what was read while deaf (tag versions) is read again.
 *
 * A message may ask to be acknowledged (`publishAcknowledged`): each other bus that hears it answers on the
 * publisher's own acknowledgement channel once `onMessage` has applied it.
 */
export class InvalidationBus {
  readonly origin = randomUUID()
  /** Resolves once the first subscription is in place. */
  readonly subscribed: Promise<void>
  /** Messages published, and messages of other instances heard: counted for the metrics. */
  sent = 0
  received = 0
  private readonly subscriber: RedisClient
  private listening = false
  private closed = false
  /** Where the other buses acknowledge this one's messages. */
  private readonly acknowledgements: string
  private readonly awaited = new Map<string, Awaited>()

  constructor (private readonly options: InvalidationBusOptions) {
    this.acknowledgements = acknowledgementChannel(options.channel, this.origin)
    this.subscriber = options.client.duplicate({ autoResubscribe: false, lazyConnect: false, enableOfflineQueue: true })
    let first: () => void = () => {}
    this.subscribed = new Promise((resolve) => { first = resolve })
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(options.channel, this.acknowledgements).then(() => {
        // A subscription that was already in place (a second 'ready' whose first SUBSCRIBE went through) adds nothing.
        if (this.closed || this.listening) return
        this.listening = true
        first()
        options.onMessage({ clear: true })
      }, () => { /* the connection went again: the next 'ready' subscribes */ })
    })
    this.subscriber.on('close', () => {
      if (!this.listening) return
      this.listening = false
      options.onMessage({ clear: true })
    })
    // Connection errors are retried by ioredis and seen through `listening`; without a listener they would throw.
    this.subscriber.on('error', () => {})
    this.subscriber.on('message', (channel: string, raw: string) => { this.receive(channel, raw) })
  }

  /** True while messages from other instances can arrive. */
  get connected (): boolean {
    return this.listening
  }

  async publish (message: Invalidation): Promise<void> {
    const { client, channel, timeout, breaker } = this.options
    const envelope = JSON.stringify({ origin: this.origin, ...message })
    await redisCommand(client, 'publish', timeout, async () => await client.call('PUBLISH', channel, envelope), breaker)
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
    const { client, channel, timeout, breaker } = this.options
    const id = randomUUID()
    const awaited: Awaited = { receivers: undefined, acknowledged: 0, done: () => {} }
    const all = new Promise<void>((resolve) => { awaited.done = resolve })
    this.awaited.set(id, awaited)
    try {
      const envelope = JSON.stringify({ origin: this.origin, id, ...message })
      awaited.receivers = Number(await redisCommand(client, 'publish', timeout, async () => await client.call('PUBLISH', channel, envelope), breaker))
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
    await closeClient(this.subscriber, this.options.timeout)
  }

  private receive (channel: string, raw: string): void {
    if (channel === this.acknowledgements) {
      this.acknowledged(raw)
      return
    }
    if (channel !== this.options.channel) return
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
      if (typeof envelope.id === 'string') this.acknowledged(envelope.id)
      return
    }
    this.received++
    if (envelope.clear === true) this.options.onMessage({ clear: true })
    else if (Array.isArray(envelope.keys)) this.options.onMessage({ keys: envelope.keys.filter((key): key is string => typeof key === 'string') })
    else if (typeof envelope.tags === 'object' && envelope.tags !== null) {
      // Without an epoch the versions count in none the listener knows: it reads them all again.
      this.options.onMessage({ tags: versionsIn(envelope.tags), epoch: typeof envelope.epoch === 'string' ? envelope.epoch : '' })
    }
    if (typeof envelope.id === 'string' && typeof envelope.origin === 'string' && ORIGIN.test(envelope.origin)) this.acknowledge(envelope.origin, envelope.id)
  }

  /**
   * Tells the bus `origin` that this one has applied its message `id`. Not through the breaker: nobody here waits for
   * it, so a slow answer costs this instance nothing and must not open the circuit for its store; and an open circuit
   * must not keep back what the other instance is waiting for. A failure leaves that bus to report it.
   */
  private acknowledge (origin: string, id: string): void {
    const { client, channel, timeout } = this.options
    redisCommand(client, 'acknowledge', timeout, async () => await client.call('PUBLISH', acknowledgementChannel(channel, origin), id)).catch(() => {})
  }

  private acknowledged (id: string): void {
    const awaited = this.awaited.get(id)
    if (awaited === undefined) return
    awaited.acknowledged++
    if (awaited.receivers !== undefined && awaited.acknowledged >= awaited.receivers) awaited.done()
  }
}

/** The channel on which the buses acknowledge the messages of the bus `origin`. */
function acknowledgementChannel (channel: string, origin: string): string {
  return `${channel}:ack:${origin}`
}

/** The tag versions of a message, keeping only what is a tag name and a whole number. */
function versionsIn (tags: object): Record<string, number> {
  const versions = Object.create(null) as Record<string, number>
  for (const [tag, version] of Object.entries(tags)) if (Number.isSafeInteger(version)) versions[tag] = version as number
  return versions
}
