import { Registry as PlatformaticRegistry } from '@platformatic/prom-client'
import type { FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { test } from 'tap'
import multiCache, { appCache } from '../../index.js'
import { LOAD_BUCKETS } from '../../lib/stats.js'
import { fresh, secret } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'
import { until } from '../helpers/until.js'

const flavours = { 'prom-client 15': () => new Registry(), '@platformatic/prom-client': () => new PlatformaticRegistry() }

/** The lines of the exposition that are samples, without HELP and TYPE. */
function samples (text: string): string[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'))
}

for (const [flavour, registryOf] of Object.entries(flavours)) {
  test(`${flavour}: names, TYPE lines, labels and values after known traffic`, async (t) => {
    const registry = registryOf()
    const app = fresh(t)
    await app.register(multiCache, { session: { secret }, metrics: { registry } })
    app.get('/request', async (request) => {
      await request.reqCache.getOrLoad('user', () => 'ada') // a miss and a load
      return request.reqCache.get('user') // a hit
    })
    app.get('/app', async () => await app.appCache.getOrLoad('catalog', async () => ['pear']))
    app.get('/fail', async () => await app.appCache.getOrLoad('broken', async () => { throw new Error('db down') }))
    app.get('/page', { config: { cache: { level: 'app' } } }, async () => 'page')
    app.get('/cookie', { config: { cache: { level: 'app' } } }, async (_request, reply) => reply.header('set-cookie', 'a=1').send('page'))
    await app.ready()
    await app.inject('/request')
    for (let i = 0; i < 3; i++) await app.inject('/app') // a miss, then two hits
    await app.inject('/fail')
    for (let i = 0; i < 2; i++) await app.inject('/page')
    await app.inject({ url: '/page', headers: { cookie: 'login=1' } }) // bypassed
    await app.inject('/cookie') // not stored

    const text = await registry.metrics()
    const types = text.split('\n').filter((line) => line.startsWith('# TYPE'))
    t.same(types, [
      '# TYPE multicache_requests_total counter',
      '# TYPE multicache_loads_total counter',
      '# TYPE multicache_load_duration_seconds histogram',
      '# TYPE multicache_evictions_total counter',
      '# TYPE multicache_entries gauge',
      '# TYPE multicache_store_errors_total counter',
      '# TYPE multicache_route_uncached_total counter',
      '# TYPE multicache_tags_unknown_total counter',
      '# TYPE multicache_bus_messages_total counter'
    ])
    const lines = samples(text)
    for (const expected of [
      'multicache_requests_total{level="request",result="hit"} 1',
      'multicache_requests_total{level="request",result="miss"} 1',
      'multicache_requests_total{level="request",result="stale"} 0',
      'multicache_requests_total{level="app",result="hit"} 2',
      'multicache_requests_total{level="app",result="miss"} 2',
      'multicache_requests_total{level="route",result="hit"} 1',
      'multicache_requests_total{level="route",result="miss"} 2',
      'multicache_requests_total{level="session",result="miss"} 0',
      'multicache_loads_total{level="app",outcome="ok"} 1',
      'multicache_loads_total{level="app",outcome="error"} 1',
      'multicache_loads_total{level="request",outcome="ok"} 1',
      'multicache_load_duration_seconds_bucket{le="+Inf",level="app"} 2',
      'multicache_load_duration_seconds_count{level="app"} 2',
      'multicache_load_duration_seconds_count{level="route"} 0',
      'multicache_entries{level="app"} 1',
      'multicache_entries{level="route"} 1',
      'multicache_entries{level="request"} 0',
      'multicache_evictions_total{level="app"} 0',
      'multicache_store_errors_total{level="session"} 0',
      'multicache_route_uncached_total{reason="credentials-cookie"} 1',
      'multicache_route_uncached_total{reason="set-cookie"} 1',
      'multicache_tags_unknown_total{level="app"} 0',
      'multicache_bus_messages_total{direction="sent"} 0',
      'multicache_bus_messages_total{direction="received"} 0'
    ]) t.ok(lines.includes(expected), expected)
    const buckets = lines.filter((line) => line.startsWith('multicache_load_duration_seconds_bucket{') && line.includes('level="app"'))
    t.equal(buckets.length, LOAD_BUCKETS.length + 1, 'a bucket per bound and +Inf')
    const counts = buckets.map((line) => Number(line.split(' ')[1]))
    t.same(counts, counts.toSorted((a, b) => a - b), 'buckets are cumulative')
    t.match(lines.find((line) => line.startsWith('multicache_load_duration_seconds_sum{level="app"}')), /^multicache_load_duration_seconds_sum\{level="app"\} [\d.e-]+$/)
  })
}

test('a prefix renames every series; the series leave the registry when the app closes', async (t) => {
  const registry = new Registry()
  const app = fresh(t)
  await app.register(appCache, { metrics: { registry, prefix: 'shop_cache_' } })
  await app.ready()
  const names = (await registry.getMetricsAsJSON()).map((metric) => metric.name)
  t.same(names, ['requests_total', 'loads_total', 'load_duration_seconds', 'evictions_total', 'entries', 'store_errors_total', 'route_uncached_total', 'tags_unknown_total', 'bus_messages_total'].map((name) => 'shop_cache_' + name))
  await app.close()
  t.same(await registry.getMetricsAsJSON(), [])
})

test('two apps on one registry add up under their level; a level exposed twice counts once', async (t) => {
  const registry = new Registry()
  for (let i = 0; i < 2; i++) {
    const app = fresh(t)
    await app.register(appCache, { metrics: { registry } })
    await app.register(multiCache, { request: false, session: false, route: false, metrics: { registry } })
    await app.ready()
    await app.appCache.get('nothing')
  }
  t.ok(samples(await registry.metrics()).includes('multicache_requests_total{level="app",result="miss"} 2'))
})

test('OpenMetrics exposition keeps the _total names', async (t) => {
  const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  const app = fresh(t)
  await app.register(appCache, { metrics: { registry } })
  await app.ready()
  await app.appCache.get('nothing')
  const text = await registry.metrics()
  t.ok(samples(text).includes('multicache_requests_total{level="app",result="miss"} 1'))
  t.match(text, /# TYPE multicache_requests counter/)
})

test('invalid metrics options fail ready() naming the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [true, /appCache: option "metrics" must be an object/],
    [{}, /appCache \(metrics\): option "registry" must be a prom-client Registry/],
    [{ registry: new Registry(), prefix: '1x' }, /appCache \(metrics\): option "prefix" must be the start of a Prometheus metric name/],
    [{ registry: new Registry(), labels: {} }, /appCache \(metrics\): option "labels" is not an option/]
  ]
  for (const [metrics, message] of cases) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(appCache, { metrics } as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message })
  }
  const registry = new Registry()
  registry.registerMetric(new (await import('prom-client')).Counter({ name: 'multicache_entries', help: 'taken', registers: [] }))
  const app = fresh(t)
  await t.rejects(async () => { await app.register(appCache, { metrics: { registry } }).ready() }, { message: /option "prefix" names series the registry holds already/ })
  t.same((await registry.getMetricsAsJSON()).map((metric) => metric.name), ['multicache_entries'], 'the registry is left as it was')
})

test('bus messages: sent by the instance that changed a key, received by the other', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const registries = [new Registry(), new Registry()]
  const apps: FastifyInstance[] = []
  for (const registry of registries) {
    const app = fresh(t)
    await app.register(appCache, { store: REDIS_URL, prefix, metrics: { registry } })
    await app.ready()
    apps.push(app)
  }
  // Each instance has told the others the epoch of the tag versions it read at start.
  const sent = apps[0]?.multiCache.app?.stats.bus?.sent ?? 0
  const received = apps[1]?.multiCache.app?.stats.bus?.received ?? 0
  await apps[0]?.appCache.set('k', 1)
  const line = async (registry: Registry, direction: string): Promise<string | undefined> =>
    samples(await registry.metrics()).find((sample) => sample.startsWith(`multicache_bus_messages_total{direction="${direction}"}`))
  t.equal(await line(registries[0] as Registry, 'sent'), `multicache_bus_messages_total{direction="sent"} ${sent + 1}`)
  await until(() => apps[1]?.multiCache.app?.stats.bus?.received === received + 1)
  t.equal(await line(registries[1] as Registry, 'received'), `multicache_bus_messages_total{direction="received"} ${received + 1}`)
})
