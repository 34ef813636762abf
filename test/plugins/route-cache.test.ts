import { setTimeout as sleep } from 'node:timers/promises'
import Fastify, { type FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import multiCache, { appCache, routeCache, type MultiCacheOptions } from '../../index.js'

const secret = 'a-session-secret-of-at-least-32-chars!'

async function build (t: Test, options: MultiCacheOptions = {}): Promise<{ app: FastifyInstance, calls: Record<string, number> }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(multiCache, { session: { secret }, ...options })
  const calls: Record<string, number> = {}
  const count = (name: string): number => { calls[name] = (calls[name] ?? 0) + 1; return calls[name] }
  app.get('/catalog', { config: { cache: { level: 'app', ttl: '1m' } } }, async () => ({ n: count('catalog'), items: [1, 2, 3] }))
  app.get('/shared', { config: { cache: { level: 'app', shared: true } } }, async () => ({ n: count('shared') }))
  app.get('/missing', { config: { cache: { level: 'app' } } }, async (_request, reply) => reply.code(404).send({ n: count('missing') }))
  app.post('/catalog', { config: { cache: { level: 'app' } } }, async () => ({ n: count('post') }))
  app.get('/cookie', { config: { cache: { level: 'app' } } }, async (_request, reply) => {
    reply.header('set-cookie', 'tracking=1')
    return { n: count('cookie') }
  })
  app.get('/bytes', { config: { cache: { level: 'app' } } }, async (_request, reply) => {
    count('bytes')
    return reply.type('application/octet-stream').send(Buffer.from([0, 1, 2, 255]))
  })
  app.get('/short', { config: { cache: { level: 'app', ttl: 40 } } }, async () => ({ n: count('short') }))
  app.get('/by-lang', { config: { cache: { level: 'app', key: (request) => String(request.headers['accept-language']) } } }, async (request) => ({ n: count('lang'), lang: request.headers['accept-language'] }))
  if (options.session !== false) {
    app.get('/mine', { config: { cache: { level: 'session' } } }, async () => ({ n: count('mine') }))
    app.post('/login', async (request) => { await request.sessionCache.set('user', 'u'); return 'ok' })
  }
  return { app, calls }
}

test('an application-level route is answered from the cache without running the handler', async (t) => {
  const { app, calls } = await build(t)
  const first = await app.inject('/catalog')
  t.equal(first.headers['x-cache'], 'MISS')
  t.match(first.headers.etag, /^"[\w-]+"$/)
  const second = await app.inject('/catalog')
  t.equal(second.statusCode, 200)
  t.equal(second.headers['x-cache'], 'HIT-APP')
  t.equal(second.body, first.body, 'the same bytes')
  t.equal(second.headers['content-type'], first.headers['content-type'])
  t.equal(second.headers.etag, first.headers.etag)
  t.equal(calls.catalog, 1, 'the handler ran once')
})

test('a matching If-None-Match gets 304 with no body', async (t) => {
  const { app } = await build(t)
  const { headers } = await app.inject('/catalog')
  const revalidated = await app.inject({ url: '/catalog', headers: { 'if-none-match': `W/"other", ${String(headers.etag)}` } })
  t.equal(revalidated.statusCode, 304)
  t.equal(revalidated.body, '')
  const changed = await app.inject({ url: '/catalog', headers: { 'if-none-match': '"other"' } })
  t.equal(changed.statusCode, 200)
})

test('only GET/HEAD 200 responses are stored', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/missing')
  const again = await app.inject('/missing')
  t.equal(again.statusCode, 404)
  t.equal(calls.missing, 2)
  await app.inject({ method: 'POST', url: '/catalog' })
  await app.inject({ method: 'POST', url: '/catalog' })
  t.equal(calls.post, 2)
})

test('a response that sets a cookie is never stored at the application level', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/cookie')
  const again = await app.inject('/cookie')
  t.equal(calls.cookie, 2)
  t.equal(again.headers['x-cache'], 'MISS')
})

test('requests with Authorization or a session cookie bypass the application level unless the route is shared', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/catalog')
  const authorized = await app.inject({ url: '/catalog', headers: { authorization: 'Bearer x' } })
  t.equal(authorized.headers['x-cache'], undefined, 'neither answered from nor stored')
  const login = await app.inject({ method: 'POST', url: '/login' })
  const cookie = String(login.headers['set-cookie']).split(';')[0] as string
  const withSession = await app.inject({ url: '/catalog', headers: { cookie } })
  t.equal(withSession.headers['x-cache'], undefined)
  t.equal(calls.catalog, 3)
  const other = await app.inject({ url: '/catalog', headers: { cookie: 'theme=dark' } })
  t.equal(other.headers['x-cache'], 'HIT-APP', 'an unrelated cookie does not make a request personal')

  await app.inject({ url: '/shared', headers: { authorization: 'Bearer x' } })
  const shared = await app.inject({ url: '/shared', headers: { cookie } })
  t.equal(shared.headers['x-cache'], 'HIT-APP')
  t.equal(calls.shared, 1)
})

test('without the session level any cookie makes a request personal', async (t) => {
  const { app, calls } = await build(t, { session: false })
  await app.inject({ url: '/catalog', headers: { cookie: 'theme=dark' } })
  await app.inject({ url: '/catalog', headers: { cookie: 'theme=dark' } })
  t.equal(calls.catalog, 2)
})

test('binary bodies replay byte for byte; ttl expires entries; custom keys', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/bytes')
  const bytes = await app.inject('/bytes')
  t.same([...bytes.rawPayload], [0, 1, 2, 255])
  t.equal(bytes.headers['x-cache'], 'HIT-APP')
  t.equal(calls.bytes, 1)

  await app.inject('/short')
  await sleep(60)
  await app.inject('/short')
  t.equal(calls.short, 2, 'expired after its ttl')

  const en = await app.inject({ url: '/by-lang', headers: { 'accept-language': 'en' } })
  await app.inject({ url: '/by-lang?x=1', headers: { 'accept-language': 'en' } })
  const fr = await app.inject({ url: '/by-lang', headers: { 'accept-language': 'fr' } })
  t.equal(calls.lang, 2)
  t.not(en.body, fr.body)
})

test('a session-level route is cached per session and not for anonymous visitors', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/mine')
  const anonymous = await app.inject('/mine')
  t.equal(anonymous.headers['set-cookie'], undefined, 'no session is created for caching')
  t.equal(calls.mine, 2)

  const login = async (): Promise<string> => String((await app.inject({ method: 'POST', url: '/login' })).headers['set-cookie']).split(';')[0] as string
  const alice = await login()
  const bob = await login()
  const a1 = await app.inject({ url: '/mine', headers: { cookie: alice } })
  const a2 = await app.inject({ url: '/mine', headers: { cookie: alice } })
  t.equal(a1.headers['x-cache'], 'MISS')
  t.equal(a2.headers['x-cache'], 'HIT-SESSION')
  t.equal(a2.body, a1.body)
  const b1 = await app.inject({ url: '/mine', headers: { cookie: bob } })
  t.equal(b1.headers['x-cache'], 'MISS', "another session never sees alice's page")
  t.not(b1.body, a1.body)
})

test('x-cache can be switched off', async (t) => {
  const { app } = await build(t, { route: { xCacheHeader: false } })
  await app.inject('/catalog')
  const hit = await app.inject('/catalog')
  t.equal(hit.headers['x-cache'], undefined)
  t.ok(hit.headers.etag)
})

test('invalid route configurations fail registration and name the option', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(appCache)
  await app.register(routeCache)
  t.throws(() => app.get('/a', { config: { cache: { level: 'global' as 'app' } } }, async () => 'x'), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /option "level"/ })
  t.throws(() => app.get('/b', { config: { cache: { level: 'session' } } }, async () => 'x'), { message: /needs the sessionCache plugin/ })
  t.throws(() => app.get('/c', { config: { cache: { level: 'app', ttl: 'soon' as '1m' } } }, async () => 'x'), { message: /option "ttl"/ })
  t.throws(() => app.get('/d', { config: { cache: { level: 'app', vary: true } as never } }, async () => 'x'), { message: /option "vary"/ })
  await t.rejects(async () => { await Fastify().register(routeCache, { xCacheHeader: 'yes' as never }).ready() }, { message: /option "xCacheHeader"/ })
})
