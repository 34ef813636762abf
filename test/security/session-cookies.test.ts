import { setTimeout as sleep } from 'node:timers/promises'
import { signerFactory } from '@fastify/cookie'
import fc from 'fast-check'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import multiCache, { sessionCache, type SessionCacheOptions } from '../../index.js'
import { sessionStoreKey } from '../../lib/keys.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { privateRedis } from '../helpers/redis.js'

/** An app whose routes read and write one session entry, and report which session they ran in. */
async function app (t: Test, session: SessionCacheOptions = { secret }): Promise<FastifyInstance> {
  const server = fresh(t)
  await server.register(multiCache, { session })
  server.get('/whoami', async (request) => ({ owner: await request.cache.get('owner') ?? null, id: request.sessionCache.id ?? null }))
  server.post('/claim/:owner', async (request) => {
    await request.sessionCache.set('owner', (request.params as { owner: string }).owner)
    return { id: request.sessionCache.id }
  })
  return server
}

test('no cookie value a client sends crashes a request or reads a session it does not hold', async (t) => {
  const server = await app(t)
  const victim = await server.inject({ method: 'POST', url: '/claim/victim' })
  const victimId = victim.json().id as string
  const signer = signerFactory(secret)
  const around = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary-ascii' }),
    fc.stringMatching(/^[\w.%+/=-]{0,90}$/),
    // Near misses of the victim's cookie: its id unsigned, signed with a guess, cut, padded, re-encoded.
    fc.constantFrom(
      victimId,
      `${victimId}.`,
      `${victimId}.${'A'.repeat(43)}`,
      signerFactory('x'.repeat(32)).sign(victimId),
      signer.sign(victimId).slice(0, -1),
      signer.sign(victimId) + 'A',
      encodeURIComponent(signer.sign(victimId)).toLowerCase(),
      signer.sign(sessionStoreKey(victimId)),
      signer.sign(''),
      '%', '%E0%A4%A', '"' + victimId + '"', 'a'.repeat(8000)
    )
  )
  let tried = 0
  await fc.assert(fc.asyncProperty(around, async (value) => {
    let read
    try {
      read = await server.inject({ url: '/whoami', headers: { cookie: `sid=${value}` } })
    } catch {
      return // a header Node itself refuses to send never reaches the server
    }
    tried++
    if (read.statusCode !== 200) throw new Error(`status ${read.statusCode} for ${JSON.stringify(value)}: ${read.body}`)
    const body = read.json() as { owner: unknown, id: unknown }
    if (body.owner !== null || body.id !== null) throw new Error(`${JSON.stringify(value)} read ${read.body}`)
    const write = await server.inject({ method: 'POST', url: '/claim/attacker', headers: { cookie: `sid=${value}` } })
    if (write.statusCode !== 200) throw new Error(`write status ${write.statusCode}`)
    const id = write.json().id as string
    if (id === victimId || id === value || cookieOf(write.headers) === undefined) throw new Error(`adopted ${JSON.stringify(value)}`)
  }), { numRuns: 400 })
  t.ok(tried > 300, `${tried} cookie values reached the server`)
  const again = await server.inject({ url: '/whoami', headers: { cookie: cookieOf(victim.headers) as string } })
  t.same(again.json(), { owner: 'victim', id: victimId }, "the victim's session is untouched")
})

test('the stored key of a session is not a way in, even correctly signed', async (t) => {
  const server = await app(t)
  const victimId = (await server.inject({ method: 'POST', url: '/claim/victim' })).json().id as string
  const cookie = `sid=${encodeURIComponent(signerFactory(secret).sign(sessionStoreKey(victimId)))}`
  t.same((await server.inject({ url: '/whoami', headers: { cookie } })).json(), { owner: null, id: null })
})

test('an expired session reads as empty and a write gets a new id and cookie', async (t) => {
  const server = await app(t, { secret, ttl: 40 })
  const first = await server.inject({ method: 'POST', url: '/claim/first' })
  const cookie = cookieOf(first.headers) as string
  await sleep(70)
  t.same((await server.inject({ url: '/whoami', headers: { cookie } })).json(), { owner: null, id: null })
  const write = await server.inject({ method: 'POST', url: '/claim/second', headers: { cookie } })
  t.not(write.json().id, first.json().id, 'the expired id is not brought back')
  t.not(cookieOf(write.headers), undefined)
  t.not(cookieOf(write.headers), cookie)
})

test('in production a secret is required, and Secure can still be turned off explicitly', async (t) => {
  const previous = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  t.teardown(() => { process.env.NODE_ENV = previous })
  const rotated = await app(t, { secret: [secret, 'an-older-secret-still-accepted-00000'] })
  t.match(String((await rotated.inject({ method: 'POST', url: '/claim/x' })).headers['set-cookie']), /; HttpOnly; Secure; SameSite=Lax$/)
  const plain = await app(t, { secret, cookie: { secure: false } })
  const header = String((await plain.inject({ method: 'POST', url: '/claim/x' })).headers['set-cookie'])
  t.notMatch(header, /Secure/, 'for a TLS-terminating proxy the app knows about')
  const bare = fresh(t)
  await t.rejects(async () => { await bare.register(multiCache, { session: {} }).ready() }, {
    code: 'FST_MULTICACHE_INVALID_OPTION', message: /sessionCache: option "secret" is required when NODE_ENV=production, got undefined/
  })
})

test('getSessionId: odd ids mean no session, a failing one fails only its request', async (t) => {
  const server = fresh(t)
  await server.register(sessionCache, {
    getSessionId: (request) => {
      const user = request.headers['x-user']
      if (user === 'broken') throw new Error('token check failed')
      return (user === 'number' ? 42 : user === 'empty' ? '' : user) as string | undefined
    }
  })
  server.post('/w', async (request) => { await request.sessionCache.set('v', request.headers['x-user']); return { id: request.sessionCache.id ?? null } })
  server.get('/r', async (request) => ({ v: await request.sessionCache.get('v') ?? null, id: request.sessionCache.id ?? null }))
  await server.inject({ method: 'POST', url: '/w', headers: { 'x-user': 'alice' } })
  for (const user of ['number', 'empty']) {
    t.same((await server.inject({ url: '/r', headers: { 'x-user': user } })).json(), { v: null, id: null }, user)
    const write = await server.inject({ method: 'POST', url: '/w', headers: { 'x-user': user } })
    t.not(write.json().id, 'alice')
    t.equal(write.headers['set-cookie'], undefined)
  }
  const broken = await server.inject({ url: '/r', headers: { 'x-user': 'broken' } })
  t.equal(broken.statusCode, 500)
  t.match(broken.json(), { message: 'token check failed' })
  t.same((await server.inject({ url: '/r', headers: { 'x-user': 'alice' } })).json(), { v: 'alice', id: 'alice' }, 'the server keeps serving')
})

test('keys taken from the client: prototype names are plain keys, a bad key fails only its request', async (t) => {
  const server = await app(t)
  server.post('/put/:key', async (request) => {
    const { key } = request.params as { key: string }
    request.reqCache.set(key, `request:${key}`)
    await request.sessionCache.set(key, `session:${key}`)
    await server.appCache.set(key, `app:${key}`)
    return { request: request.reqCache.get(key), session: await request.sessionCache.get(key), app: await server.appCache.get(key) }
  })
  server.get('/get', async (request) => {
    const key = (request.query as { key?: string }).key as string
    return { value: await request.cache.get(key) ?? null }
  })
  for (const key of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__', 'valueOf']) {
    const put = await server.inject({ method: 'POST', url: `/put/${key}` })
    t.same(put.json(), { request: `request:${key}`, session: `session:${key}`, app: `app:${key}` }, key)
    t.same((await server.inject({ url: `/get?key=${key}` })).json(), { value: `app:${key}` }, `${key} through request.cache`)
  }
  t.equal(({} as Record<string, unknown>).toString, Object.prototype.toString, 'no prototype was touched')
  const bad = await server.inject({ url: '/get' })
  t.equal(bad.statusCode, 500)
  t.match(bad.json(), { code: 'FST_MULTICACHE_INVALID_KEY', message: 'cache key must be a non-empty string, got undefined' })
  const empty = await server.inject({ url: '/get?key=' })
  t.match(empty.json(), { code: 'FST_MULTICACHE_INVALID_KEY' })
  t.equal((await server.inject({ url: '/whoami' })).statusCode, 200, 'the server keeps serving')
})

test('no session id, cookie or value reaches the logs, even of a store fault, at the trace level', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'trace', stream: logs.stream } })
  await app.register(multiCache, { session: { secret, store: server.url, breaker: { failures: 1, coolDown: '50ms' } } })
  app.post('/w', async (request) => { await request.sessionCache.set('card', 'secret-value-4242'); await request.sessionCache.regenerate({ user: 'alice@example.com' }); return { id: request.sessionCache.id } })
  app.get('/r', async (request) => ({ card: await request.sessionCache.get('card') ?? null }))
  const written = await app.inject({ method: 'POST', url: '/w' })
  const cookie = cookieOf(written.headers) as string
  const id = (written.json() as { id: string }).id
  server.pause()
  t.same((await app.inject({ url: '/r', headers: { cookie } })).json(), { card: null }, 'a store fault reads as a miss')
  server.resume()
  t.ok(logs.lines.some((line) => /the store failed|circuit breaker/.test(String(line.msg))), 'the fault was logged')
  const text = JSON.stringify(logs.lines)
  for (const secretPart of [id, cookie.split('=')[1] as string, 'secret-value-4242']) t.notOk(text.includes(secretPart), 'not in any log line')
})
