import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import fastifyCompress from '@fastify/compress'
import { test } from 'tap'
import multiCache from '../../index.js'
import { fresh } from '../helpers/app.js'
import { overHttp, type Answer } from '../helpers/http.js'

// @fastify/compress encodes in a route-level onSend hook. Whichever is registered first, the cache stores what the
// handler produced and a hit goes through compress again: a client only ever gets an encoding it asked for, and
// browsers (which all send Accept-Encoding) fill the cache.

const catalog = { products: Array.from({ length: 200 }, (_, id) => ({ id, name: `product ${id}` })) }

function decoded (answer: Answer): unknown {
  const encoding = answer.headers['content-encoding']
  const bytes = encoding === 'gzip' ? gunzipSync(answer.body) : encoding === 'br' ? brotliDecompressSync(answer.body) : answer.body
  return JSON.parse(bytes.toString('utf8'))
}

for (const order of ['before', 'after'] as const) {
  test(`@fastify/compress registered ${order} the route cache`, async (t) => {
    const app = fresh(t)
    if (order === 'before') await app.register(fastifyCompress)
    await app.register(multiCache, { session: false })
    if (order === 'after') await app.register(fastifyCompress)
    let runs = 0
    app.get('/catalog', { config: { cache: { level: 'app' } } }, async () => { runs++; return catalog })

    const browser = await overHttp(app, '/catalog', { headers: { 'accept-encoding': 'gzip, deflate, br;q=0' } })
    t.equal(browser.headers['x-cache'], 'MISS')
    t.equal(browser.headers['content-encoding'], 'gzip')
    t.same(decoded(browser), catalog)

    const plain = await overHttp(app, '/catalog')
    t.equal(plain.headers['x-cache'], 'HIT-APP', 'a gzip client filled the cache')
    t.equal(plain.headers['content-encoding'], undefined, 'a client that asked for no encoding gets none')
    t.same(JSON.parse(plain.body.toString('utf8')), catalog)
    t.equal(plain.headers['content-type'], 'application/json; charset=utf-8')

    const identity = await overHttp(app, '/catalog', { headers: { 'accept-encoding': 'identity' } })
    t.equal(identity.headers['content-encoding'], undefined)
    const gzip = await overHttp(app, '/catalog', { headers: { 'accept-encoding': 'gzip' } })
    t.equal(gzip.headers['x-cache'], 'HIT-APP')
    t.equal(gzip.headers['content-encoding'], 'gzip', 'each hit is encoded for its client')
    t.match(gzip.headers.vary, /accept-encoding/i)
    t.same(decoded(gzip), catalog)
    const brotli = await overHttp(app, '/catalog', { headers: { 'accept-encoding': 'br' } })
    t.equal(brotli.headers['content-encoding'], 'br')
    t.same(decoded(brotli), catalog)
    t.equal(runs, 1, 'one handler run for every encoding')

    const head = await overHttp(app, '/catalog', { method: 'HEAD', headers: { 'accept-encoding': 'gzip' } })
    t.equal(head.headers['x-cache'], 'HIT-APP')
    t.equal(head.body.length, 0)
  })
}

test('a body the handler encoded itself is only served to clients that accept its encoding', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  app.get('/packed', { config: { cache: { level: 'app' } } }, async (request, reply) => {
    const accepts = String(request.headers['accept-encoding'] ?? '').includes('gzip')
    const body = JSON.stringify(catalog)
    if (!accepts) return await reply.type('application/json').send(body)
    const { gzipSync } = await import('node:zlib')
    return await reply.type('application/json').header('content-encoding', 'gzip').send(gzipSync(body))
  })
  await app.inject({ url: '/packed', headers: { 'accept-encoding': 'gzip' } })
  const plain = await app.inject('/packed')
  t.equal(plain.headers['content-encoding'], undefined)
  t.same(plain.json(), catalog)
  t.equal((await app.inject({ url: '/packed', headers: { 'accept-encoding': 'gzip' } })).headers['x-cache'], 'HIT-APP')
})

for (const order of ['before', 'after'] as const) {
  test(`@fastify/compress registered ${order}: a Vary set by the route's onSend hook counts, compress's own does not`, async (t) => {
    const app = fresh(t)
    if (order === 'before') await app.register(fastifyCompress)
    await app.register(multiCache, { session: false })
    if (order === 'after') await app.register(fastifyCompress)
    let runs = 0
    app.get('/welcome', {
      onSend: async (_request, reply) => { reply.header('vary', 'Accept-Language') },
      config: { cache: { level: 'app' } }
    }, async (request) => { runs++; return { ...catalog, language: request.headers['accept-language'] } })

    const fr = await overHttp(app, '/welcome', { headers: { 'accept-language': 'fr', 'accept-encoding': 'gzip' } })
    t.equal(fr.headers['content-encoding'], 'gzip')
    const en = await overHttp(app, '/welcome', { headers: { 'accept-language': 'en', 'accept-encoding': 'gzip' } })
    t.equal(en.headers['x-cache'], 'MISS', 'another language is another variant')
    t.same(decoded(en), { ...catalog, language: 'en' })
    const plain = await overHttp(app, '/welcome', { headers: { 'accept-language': 'fr' } })
    t.equal(plain.headers['x-cache'], 'HIT-APP', 'the gzip client filled it for every encoding')
    t.equal(plain.headers['content-encoding'], undefined)
    t.same(decoded(plain), { ...catalog, language: 'fr' })
    t.equal(runs, 2)
  })
}
