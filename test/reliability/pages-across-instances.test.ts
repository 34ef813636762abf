import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { secret } from '../helpers/app.js'
import { Browser, forkInstance } from '../helpers/instances.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

// A session's cached page is a record in the shared store, read by every instance. Each process counts the times of
// the responses it holds from its own start (lib/http/response.ts): a record must carry times any process reads
// alike, or the page of an instance started earlier is served past its ttl by one started later.

const TTL = 2000
/** How much later the second instance starts: more than the margin the checks below leave. */
const LATER = 1500

test('a page one instance stored is served by another started later within its ttl, and not after', async (t) => {
  if (await redisFor(t) === undefined) return
  const params = { redis: REDIS_URL, prefix: uniquePrefix(t), secret, ttl: TTL }
  const a = await forkInstance(t, 'pages.ts', 'pages', params)
  await sleep(LATER)
  const b = await forkInstance(t, 'pages.ts', 'pages', params)
  const browser = new Browser()
  // Both behind one proxy: the site's host.
  const site = { 'x-forwarded-host': 'shop.example' }
  await browser.request(`${a.url}/login`, { method: 'POST', headers: site })
  const stored = await browser.request(`${a.url}/mine`, { headers: site })
  t.equal(stored.headers.get('cache-status'), 'fastify-multi-cache; fwd=uri-miss; stored')
  // The page is written once the response has gone.
  await sleep(200)
  const hit = await browser.request(`${b.url}/mine`, { headers: site })
  t.equal(hit.body, stored.body, 'B serves the page A stored')
  t.match(hit.headers.get('cache-status'), /^fastify-multi-cache; hit; ttl=[01]$/, 'with the ttl it has left, not more')
  t.equal(hit.headers.get('age'), '0')
  await sleep(TTL)
  const later = await browser.request(`${b.url}/mine`, { headers: site })
  t.not(later.body, stored.body, 'past its ttl B runs the handler again')
  t.match(later.json(), { run: 1 })
})
