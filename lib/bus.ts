import { randomUUID } from 'node:crypto'
import type { Breaker } from './breaker.js'
import type { Invalidation } from './store.js'
import { closeClient, redisCommand, type RedisClient } from './stores/redis.js'

export type { Invalidation }

interface Envelope { origin: string, keys?: unknown, clear?: unknown, tags?: unknown, epoch?: unknown }

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

  constructor (private readonly options: InvalidationBusOptions) {
    this.subscriber = options.client.duplicate({ autoResubscribe: false, lazyConnect: false, enableOfflineQueue: true })
    let first: () => void = () => {}
    this.subscribed = new Promise((resolve) => { first = resolve })
    this.subscriber.on('ready', () => {
      this.subscriber.subscribe(options.channel).then(() => {
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

  async close (): Promise<void> {
    this.closed = true
    this.listening = false
    await closeClient(this.subscriber, this.options.timeout)
  }

  private receive (channel: string, raw: string): void {
    if (channel !== this.options.channel) return
    let envelope: Envelope | null
    try {
      envelope = JSON.parse(raw) as Envelope | null
    } catch {
      return
    }
    // Anyone who can publish on the channel can send anything: only an object is read, and nothing here may throw.
    if (typeof envelope !== 'object' || envelope === null || envelope.origin === this.origin) return
    this.received++
    if (envelope.clear === true) this.options.onMessage({ clear: true })
    else if (Array.isArray(envelope.keys)) this.options.onMessage({ keys: envelope.keys.filter((key): key is string => typeof key === 'string') })
    else if (typeof envelope.tags === 'object' && envelope.tags !== null) {
      // Without an epoch the versions count in none the listener knows: it reads them all again.
      this.options.onMessage({ tags: versionsIn(envelope.tags), epoch: typeof envelope.epoch === 'string' ? envelope.epoch : '' })
    }
  }
}

/** The tag versions of a message, keeping only what is a tag name and a whole number. */
function versionsIn (tags: object): Record<string, number> {
  const versions = Object.create(null) as Record<string, number>
  for (const [tag, version] of Object.entries(tags)) if (Number.isSafeInteger(version)) versions[tag] = version as number
  return versions
}
