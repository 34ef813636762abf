import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { test, type Test } from 'tap'
import { InvalidationBus, type Invalidation } from '../../lib/bus.js'
import type { RedisClient } from '../../lib/stores/redis.js'
import { REDIS_URL, privateRedis, redisFor, uniquePrefix } from '../helpers/redis.js'
import { until } from '../helpers/until.js'

async function connected (t: Test, url = REDIS_URL): Promise<Redis> {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
  return client
}

async function listening (t: Test, client: Redis, channel: string): Promise<{ bus: InvalidationBus, heard: Invalidation[] }> {
  const heard: Invalidation[] = []
  const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel, timeout: 100, onMessage: (message) => { heard.push(message) } })
  t.teardown(async () => { await bus.close() })
  await bus.subscribed
  t.same(heard, [{ clear: true }], 'the subscription taking hold says that what was published before it was not heard')
  heard.length = 0
  return { bus, heard }
}

test('what one bus publishes another hears, as published; a bus never hears itself', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const a = await listening(t, client, channel)
  const b = await listening(t, client, channel)
  t.equal(a.bus.connected, true)
  t.not(a.bus.origin, b.bus.origin, 'each bus has an origin of its own')
  await a.bus.publish({ keys: ['x', 'y'] })
  await a.bus.publish({ clear: true })
  await b.bus.publish({ keys: ['z'] })
  await until(() => b.heard.length === 2 && a.heard.length === 1, 200)
  await sleep(20)
  t.same(b.heard, [{ keys: ['x', 'y'] }, { clear: true }])
  t.same(a.heard, [{ keys: ['z'] }])
})

test('malformed messages are ignored or filtered, never thrown', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const { bus, heard } = await listening(t, client, channel)
  const raw = [
    'not json',
    '{"origin":"x"',
    '{"origin":"x"}',
    '{"origin":"x","keys":"k"}',
    '{"origin":"x","keys":{"0":"k"}}',
    '{"origin":"x","clear":"yes"}',
    '{"origin":"x","clear":1}',
    '42',
    '"text"',
    '[]',
    '{"origin":"x","keys":["a",1,null,{"k":"b"},["c"],"d"]}',
    '{"keys":["no-origin"]}',
    '{"origin":"x","clear":true,"keys":["ignored"]}',
    '{"origin":"x","tags":{"catalog":3,"bad":"4","worse":1.5,"__proto__":7}}',
    '{"origin":"x","tags":{"catalog":4},"epoch":"e1"}',
    '{"origin":"x","tags":{"catalog":5},"epoch":7}',
    '{"origin":"x","tags":null}',
    JSON.stringify({ origin: bus.origin, keys: ['mine'] }),
    JSON.stringify({ origin: bus.origin, clear: true }),
    '{"origin":"x","keys":["last"]}'
  ]
  for (const message of raw) await client.publish(channel, message)
  await until(() => heard.some((message) => 'keys' in message && message.keys[0] === 'last'), 500)
  t.same(heard, [
    { keys: ['a', 'd'] },
    { keys: ['no-origin'] },
    { clear: true },
    { tags: Object.assign(Object.create(null) as object, JSON.parse('{"catalog":3,"__proto__":7}') as object), epoch: '' },
    { tags: Object.assign(Object.create(null) as object, { catalog: 4 }), epoch: 'e1' },
    { tags: Object.assign(Object.create(null) as object, { catalog: 5 }), epoch: '' },
    { keys: ['last'] }
  ], 'non-strings are filtered from keys, non-integers from tag versions, and an epoch that is not a string is none the listener knows; anything else malformed is dropped; a message with our origin is ignored')
  t.equal(bus.connected, true, 'the bus is still listening')
})

// Without the capturing listener below, the TypeError is an uncaughtException that ends the process: any client that can
// PUBLISH on the channel can take every instance down with the 4-byte payload `null`.
test('a "null" payload on the channel does not throw out of the message handler', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const { bus, heard } = await listening(t, client, channel)
  // Capture what escapes the 'message' listener instead of letting it crash the test process.
  const escaped: unknown[] = []
  const subscriber = (bus as unknown as { subscriber: Redis }).subscriber
  const listeners = subscriber.listeners('message') as Array<(channel: string, raw: string) => void>
  subscriber.removeAllListeners('message')
  subscriber.on('message', (name: string, raw: string) => {
    for (const listener of listeners) {
      try {
        listener(name, raw)
      } catch (error) {
        escaped.push(error)
      }
    }
  })
  await client.publish(channel, 'null')
  await client.publish(channel, '{"origin":"x","keys":["after"]}')
  await until(() => heard.length === 1, 500)
  t.same(heard, [{ keys: ['after'] }])
  t.same(escaped, [], 'nothing was thrown by the bus for a JSON null')
})

test('messages of another channel are ignored', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const channel = prefix + 'bus'
  const client = await connected(t)
  const { bus, heard } = await listening(t, client, channel)
  // The bus only subscribes to its own channels; subscribe its connection to another one to reach the guard.
  const subscriber = (bus as unknown as { subscriber: Redis }).subscriber
  await subscriber.subscribe(prefix + 'other')
  await client.publish(prefix + 'other', '{"origin":"x","keys":["elsewhere"]}')
  await client.publish(prefix + 'unheard', '{"origin":"x","keys":["nowhere"]}')
  await client.publish(channel, '{"origin":"x","keys":["here"]}')
  await until(() => heard.length === 1, 500)
  await sleep(20)
  t.same(heard, [{ keys: ['here'] }])
})

test('a message that asks to be acknowledged is applied, then acknowledged to its sender; a sender that is no origin is not answered', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const { bus, heard } = await listening(t, client, channel)
  const watcher = await connected(t)
  const acknowledged: Array<[string, string]> = []
  watcher.on('pmessage', (_pattern: string, name: string, raw: string) => { acknowledged.push([name, raw]) })
  await watcher.psubscribe(channel + ':ack:*')
  const origin = '0f8e1c2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b'
  await client.publish(channel, JSON.stringify({ origin, id: 'first', keys: ['k'] }))
  await until(() => acknowledged.length === 1, 500)
  t.same(heard, [{ keys: ['k'] }], 'applied')
  t.same(acknowledged, [[`${channel}:ack:${origin}`, `first ${bus.origin}`]], 'then acknowledged on the sender\'s channel, by its id and the acknowledging bus')
  await client.publish(channel, JSON.stringify({ origin: 'x:ack:elsewhere', id: 'second', keys: ['j'] }))
  await client.publish(channel, JSON.stringify({ origin, id: 3, keys: ['i'] }))
  await until(() => heard.length === 3, 500)
  await sleep(20)
  t.equal(acknowledged.length, 1, 'an origin that is not a bus\'s, or an id that is not a string, gets no answer')
})

test('publish fails at once with FST_MULTICACHE_STORE when the client is not connected', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const { bus } = await listening(t, client, channel)
  client.disconnect()
  let started = performance.now()
  await t.rejects(bus.publish({ keys: ['k'] }), { code: 'FST_MULTICACHE_STORE', message: /store publish failed/ }, 'while the socket closes')
  t.ok(performance.now() - started < 20, 'at once')
  await until(() => client.status === 'end', 200)
  started = performance.now()
  await t.rejects(bus.publish({ keys: ['k'] }), { code: 'FST_MULTICACHE_STORE', message: /store publish failed: Redis is not connected \(end\)/ })
  t.ok(performance.now() - started < 20, 'no waiting for a reconnect')

  const lazy = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false })
  t.teardown(() => { lazy.disconnect() })
  const idle = new InvalidationBus({ client: lazy as unknown as RedisClient, channel, timeout: 100, onMessage: () => {} })
  t.teardown(async () => { await idle.close() })
  await t.rejects(idle.publish({ clear: true }), { code: 'FST_MULTICACHE_STORE', message: /not connected \(wait\)/ })
})

test('publish to a stalled Redis fails within its time budget', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const client = await connected(t, server.url)
  const { bus } = await listening(t, client, 'bus')
  server.pause()
  t.teardown(() => { server.resume() })
  const started = performance.now()
  await t.rejects(bus.publish({ keys: ['k'] }), { code: 'FST_MULTICACHE_STORE', message: /store publish failed: no answer within 100 ms/ })
  const waited = performance.now() - started
  t.ok(waited >= 95 && waited < 400, `failed after ${waited.toFixed(0)} ms`)
  server.resume()
})

test('losing the subscription tells the listener to clear, once lost and once back, and it listens again', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const client = await connected(t, server.url)
  const admin = await connected(t, server.url)
  const { bus, heard } = await listening(t, client, 'bus')
  t.equal(await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub'), 1)
  await until(() => !bus.connected, 200)
  t.same(heard, [{ clear: true }], 'one clear for the lost subscription')
  await until(() => bus.connected, 1000)
  t.same(await admin.call('PUBSUB', 'NUMSUB', 'bus'), ['bus', 1], 'subscribed again')
  t.same(heard, [{ clear: true }, { clear: true }], 'and one when it is back: what was published meanwhile was never heard')
  await admin.publish('bus', '{"origin":"x","keys":["k"]}')
  await until(() => heard.length === 3, 200)
  t.same(heard[2], { keys: ['k'] })
})

test('a Redis that answers only after the bus started: its first subscription tells the listener to clear', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  await server.kill()
  const client = new Redis(server.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 20 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const heard: Invalidation[] = []
  const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel: 'bus', timeout: 100, onMessage: (message) => { heard.push(message) } })
  t.teardown(async () => { await bus.close() })
  await sleep(50)
  t.equal(bus.connected, false)
  t.same(heard, [])
  await server.restart()
  await until(() => bus.connected, 2000)
  t.same(heard, [{ clear: true }], 'what was read while it was deaf must be read again')
})

test('a connection dropped right after ready ends subscribed once, with one clear when the subscription takes hold', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const admin = await connected(t)
  const { heard, bus } = await (async () => {
    const heard: Invalidation[] = []
    const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel, timeout: 100, onMessage: (message) => { heard.push(message) } })
    t.teardown(async () => { await bus.close() })
    const subscriber = bus as unknown as { subscriber: Redis & { stream: { destroy: () => void } } }
    let readies = 0
    // Runs after the bus's own 'ready' listener sent SUBSCRIBE: the socket goes before the reply.
    subscriber.subscriber.on('ready', () => { if (readies++ === 0) subscriber.subscriber.stream.destroy() })
    t.equal(bus.connected, false)
    await bus.subscribed
    await until(() => readies === 2, 1000)
    return { heard, bus }
  })()
  t.equal(bus.connected, true)
  t.same(heard, [{ clear: true }], 'a subscription never confirmed is not a lost one: one clear, when one takes hold')
  t.same(await admin.call('PUBSUB', 'NUMSUB', channel), [channel, 1])
  await admin.publish(channel, '{"origin":"x","keys":["k"]}')
  await until(() => heard.length === 2, 200)
  await sleep(20)
  t.same(heard, [{ clear: true }, { keys: ['k'] }], 'subscribed twice on one connection, heard once')
})

test('close while the SUBSCRIBE is in flight', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const heard: Invalidation[] = []
  const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel, timeout: 100, onMessage: (message) => { heard.push(message) } })
  const subscriber = (bus as unknown as { subscriber: Redis }).subscriber
  let closing: Promise<boolean> | undefined
  subscriber.on('ready', () => { closing = bus.close().then(() => bus.connected) })
  await until(() => closing !== undefined, 1000)
  t.equal(await closing, false, 'a bus is not connected once close() resolved')
  await until(() => subscriber.status === 'end', 500)
  t.equal(bus.connected, false, 'once the connection is gone')
  t.same(heard, [], 'closing is not a lost subscription')
})

test('a bus whose Redis refuses connections is not connected, and closes at once', async (t) => {
  const client = new Redis('redis://127.0.0.1:1', { lazyConnect: true, enableOfflineQueue: false })
  t.teardown(() => { client.disconnect() })
  const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel: 'bus', timeout: 100, onMessage: () => {} })
  const subscriber = (bus as unknown as { subscriber: Redis }).subscriber
  const errors: Error[] = []
  subscriber.on('error', (error: Error) => { errors.push(error) })
  await until(() => errors.length > 1, 500)
  t.match(errors[0]?.message ?? '', /ECONNREFUSED/, 'connection errors are absorbed (no unhandled error event), and retried')
  t.equal(bus.connected, false)
  await t.rejects(bus.publish({ keys: ['k'] }), { code: 'FST_MULTICACHE_STORE', message: /not connected/ })
  const started = performance.now()
  await bus.close()
  t.ok(performance.now() - started < 20, 'close did not wait for a reconnect')
  const tried = errors.length
  await sleep(150)
  t.equal(errors.length, tried, 'and no reconnect is tried after close')
})

test('a bus whose Redis never answers is not connected, and closes at once', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const client = await connected(t, server.url)
  server.pause()
  t.teardown(() => { server.resume() })
  // The duplicate connects to a stalled server: TCP accepts, but the handshake never answers.
  const heard: Invalidation[] = []
  const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel: 'bus', timeout: 100, onMessage: (message) => { heard.push(message) } })
  await sleep(30)
  t.equal(bus.connected, false)
  let subscribed = false
  bus.subscribed.then(() => { subscribed = true }, () => {})
  const started = performance.now()
  await bus.close()
  t.ok(performance.now() - started < 20, 'close did not wait for the server')
  server.resume()
  await sleep(50)
  t.equal(subscribed, false, 'never subscribed')
  t.same(heard, [], 'closing is not a lost subscription')
})

test('close on a connected bus quits and does not report a lost subscription', async (t) => {
  if (await redisFor(t) === undefined) return
  const channel = uniquePrefix(t) + 'bus'
  const client = await connected(t)
  const admin = await connected(t)
  const heard: Invalidation[] = []
  const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel, timeout: 100, onMessage: (message) => { heard.push(message) } })
  await bus.subscribed
  t.same(await admin.call('PUBSUB', 'NUMSUB', channel), [channel, 1])
  await bus.close()
  t.equal(bus.connected, false)
  await until(() => (bus as unknown as { subscriber: Redis }).subscriber.status === 'end', 200)
  t.same(await admin.call('PUBSUB', 'NUMSUB', channel), [channel, 0], 'unsubscribed')
  t.same(heard, [{ clear: true }], 'the subscription taking hold, and nothing for closing')
  await bus.close()
  t.pass('closing twice is harmless')
})
