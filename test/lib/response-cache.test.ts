import { test } from 'tap'
import { pathOf, responseKey } from '../../lib/http/request.js'
import { toCachedResponse } from '../../lib/http/response.js'
import { ResponseCache } from '../../lib/response-cache.js'

// The application level's stored responses without Fastify: what invalidate drops, and what counts as an eviction.

const NOW = Date.now()
const page = (body: string): ReturnType<typeof toCachedResponse> => toCachedResponse(200, {}, body, NOW, 60_000)

function cache (max = 100): ResponseCache {
  return new ResponseCache({ max, maxSize: 10_000_000, maxVariants: 4, log: { warn: () => {} } })
}

function put (responses: ResponseCache, route: string, target: string, body = target): string {
  const key = responseKey(route, 'GET', 'http://a', target)
  responses.store(key, [], {}, page(body), responses.since, NOW)
  return key
}

test('invalidate drops the responses of the route it names: no other route, nor one whose URL merely starts alike', async (t) => {
  const responses = cache()
  responses.addRoute('/a', pathOf)
  responses.addRoute('/ab', pathOf)
  const a = put(responses, '/a', '/a')
  const versioned = put(responses, '/a {"version":"2.0.0"}', '/a')
  const ab = put(responses, '/ab', '/ab')
  t.equal(await responses.invalidate('/a'), 2, 'the route, under each of its constraints')
  t.equal(responses.find(a, {}, NOW), undefined)
  t.equal(responses.find(versioned, {}, NOW), undefined)
  t.equal(responses.find(ab, {}, NOW)?.body.toString(), '/ab')
})

test('two routes on one URL: invalidating a URL drops what either of them keyed for it', async (t) => {
  const responses = cache()
  responses.addRoute('/p', pathOf)
  responses.addRoute('/p', (target) => target) // a custom key: the URL given is the key
  const byPath = put(responses, '/p', '/p/1')
  const spelled = put(responses, '/p', '/P/1/')
  const byKey = put(responses, '/p', 'custom-1')
  const other = put(responses, '/p', '/p/2')
  t.equal(await responses.invalidate('/p', 'custom-1'), 1)
  t.equal(responses.find(byKey, {}, NOW), undefined)
  t.equal(await responses.invalidate('/p', '/p/1'), 2, 'the path as the first route compares it, in every spelling')
  t.equal(responses.find(byPath, {}, NOW), undefined)
  t.equal(responses.find(spelled, {}, NOW), undefined)
  t.ok(responses.find(other, {}, NOW))
})

test('only a response pushed out by the bound counts as an eviction', async (t) => {
  const responses = cache(2)
  responses.addRoute('/p', pathOf)
  put(responses, '/p', '/p/1')
  put(responses, '/p', '/p/1', 'replaced')
  put(responses, '/p', '/p/2')
  await responses.invalidate('/p', '/p/2')
  t.equal(responses.stats.snapshot().evictions, 0, 'not a replacement, not an invalidation')
  put(responses, '/p', '/p/3')
  put(responses, '/p', '/p/4')
  t.equal(responses.stats.snapshot().evictions, 1)
})

test('a key whose response varies on nothing holds it alone; a Vary turns it into variants and back, each found as stored', async (t) => {
  const responses = cache()
  const key = responseKey('/p', 'GET', 'http://a', '/p')
  responses.store(key, [], {}, page('plain'), responses.since, NOW)
  t.equal(responses.find(key, { 'accept-language': 'fr' }, NOW)?.body.toString(), 'plain', 'varies on nothing: every request')
  t.equal(responses.find(key, {}, NOW + 60_000), undefined, 'expired')
  const fr = toCachedResponse(200, { vary: 'accept-language' }, 'fr', NOW, 60_000)
  responses.store(key, ['accept-language'], { 'accept-language': 'fr' }, fr, responses.since, NOW)
  t.equal(responses.find(key, { 'accept-language': 'fr' }, NOW)?.body.toString(), 'fr')
  t.equal(responses.find(key, { 'accept-language': 'en' }, NOW), undefined, 'another variant: not stored')
  responses.store(key, ['accept-language'], { 'accept-language': 'en' }, toCachedResponse(200, {}, 'en', NOW, 60_000), responses.since, NOW)
  t.equal(responses.find(key, { 'accept-language': 'fr' }, NOW)?.body.toString(), 'fr', 'both variants kept')
  t.equal(responses.find(key, { 'accept-language': 'en' }, NOW)?.body.toString(), 'en')
  responses.store(key, [], {}, page('plain again'), responses.since, NOW)
  t.equal(responses.find(key, { 'accept-language': 'fr' }, NOW)?.body.toString(), 'plain again', 'a response that varies on nothing replaces them all')
  t.equal(responses.find(key, { 'accept-language': 'en' }, NOW)?.body.toString(), 'plain again')
})

test('invalidating the only response held is no eviction, and the cache takes responses again', async (t) => {
  const responses = cache(2)
  responses.addRoute('/p', pathOf)
  put(responses, '/p', '/p/1')
  t.equal(await responses.invalidate('/p', '/p/1'), 1)
  t.equal(responses.stats.snapshot().evictions, 0)
  const again = put(responses, '/p', '/p/2')
  t.equal(responses.find(again, {}, NOW)?.body.toString(), '/p/2')
})

test('the tags a response keeps count in maxSize, as its body does: a route tagging what the client asked for cannot outgrow it', async (t) => {
  const responses = new ResponseCache({ max: 1000, maxSize: 200_000, maxVariants: 4, log: { warn: () => {} } })
  responses.addRoute('/products', pathOf)
  const tagged = (count: number): ReturnType<typeof toCachedResponse> => ({ ...page('[]'), tags: Array.from({ length: count }, (_, i) => `product:${i}`), tagVersions: Array.from({ length: count }, () => 0) })
  const key = (i: number): string => responseKey('/products', 'GET', 'http://a', `/products?page=${i}`)
  t.equal(responses.store(key(0), [], {}, tagged(5000), responses.since, NOW), 'too-large', 'tags alone over the bound: not stored')
  for (let i = 1; i <= 20; i++) t.equal(responses.store(key(i), [], {}, tagged(500), responses.since, NOW), undefined)
  t.ok(responses.stats.snapshot().evictions > 0, 'and the bound pushes out the oldest when they add up past it')
})
