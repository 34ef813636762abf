import { readFile } from 'node:fs/promises'
import { context, trace, SpanStatusCode } from '@opentelemetry/api'
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-node'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import multiCache from '../../index.js'
import { MultiCacheInstrumentation, VERSION } from '../../lib/otel.js'
import { fresh } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

const exporter = new InMemorySpanExporter()
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
// The global context manager (AsyncLocalStorage) and provider, as an app's OpenTelemetry set-up makes them.
provider.register()
const tracer = trace.getTracer('test')

function instrumentation (t: Test, config?: ConstructorParameters<typeof MultiCacheInstrumentation>[0]): MultiCacheInstrumentation {
  const instrumentation = new MultiCacheInstrumentation(config)
  instrumentation.setTracerProvider(provider)
  t.teardown(() => { instrumentation.disable() })
  exporter.reset()
  return instrumentation
}

/** The application level in memory, or in the test Redis with `redis`. */
async function shop (t: Test, more?: (app: FastifyInstance) => Promise<void>, redis = false): Promise<FastifyInstance> {
  const app = fresh(t)
  await more?.(app)
  await app.register(multiCache, redis ? { app: { store: REDIS_URL, prefix: uniquePrefix(t) } } : {})
  app.get('/product/:id', async (request) => {
    const { id } = request.params as { id: string }
    return await app.appCache.getOrLoad(`product:${id}`, async () => ({ id }))
  })
  app.get('/broken', async () => await app.appCache.getOrLoad('broken', async () => { throw new Error('the database is down') }))
  // A loader whose query another instrumentation traces.
  app.get('/query', async () => await app.appCache.getOrLoad('rows', async () => await tracer.startActiveSpan('db.query', async (span) => {
    span.end()
    return [1]
  })))
  await app.ready()
  return app
}

/** A request made under a span of the caller's, as an app's incoming-request span would be. */
async function underParent (app: FastifyInstance, url: string): Promise<number> {
  return await tracer.startActiveSpan('parent', async (span) => {
    const { statusCode } = await app.inject(url)
    span.end()
    return statusCode
  })
}

/** The finished spans as a tree of names: each span's children under it, the roots first. */
function tree (spans: readonly ReadableSpan[]): string[] {
  const lines: string[] = []
  const walk = (parent: string | undefined, depth: number): void => {
    for (const span of spans.filter((one) => one.parentSpanContext?.spanId === parent)) {
      lines.push('  '.repeat(depth) + span.name)
      walk(span.spanContext().spanId, depth + 1)
    }
  }
  const ids = new Set(spans.map((span) => span.spanContext().spanId))
  for (const root of spans.filter((span) => span.parentSpanContext === undefined || !ids.has(span.parentSpanContext.spanId))) {
    lines.push(root.name)
    walk(root.spanContext().spanId, 1)
  }
  return lines
}

const named = (name: string): ReadableSpan | undefined => exporter.getFinishedSpans().find((span) => span.name === name)

test('a miss then a hit under the caller span: the tree and the attributes, no keys by default', async (t) => {
  if (await redisFor(t) === undefined) return
  instrumentation(t)
  const app = await shop(t, undefined, true)
  t.equal(await underParent(app, '/product/1'), 200)
  t.same(tree(exporter.getFinishedSpans()), ['parent', '  cache.getOrLoad', '    cache.load'])
  t.same(named('cache.getOrLoad')?.attributes, { 'cache.level': 'app', 'cache.operation': 'getOrLoad', 'cache.hit': false })
  t.same(named('cache.load')?.attributes, { 'cache.level': 'app', 'cache.operation': 'load' })
  t.equal(named('cache.load')?.status.code, SpanStatusCode.UNSET)

  exporter.reset()
  await underParent(app, '/product/1')
  await underParent(app, '/product/1')
  t.same(tree(exporter.getFinishedSpans()), ['parent', '  cache.getOrLoad', 'parent', '  cache.getOrLoad'])
  t.same(exporter.getFinishedSpans()[2]?.attributes, { 'cache.level': 'app', 'cache.operation': 'getOrLoad', 'cache.hit': true, 'cache.stale': false, 'cache.tier': 'memory' })
  t.notOk(exporter.getFinishedSpans().some((span) => 'cache.key' in span.attributes), 'keys are left out')
})

test('a loader that throws: the error recorded on the load and on the lookup, status ERROR', async (t) => {
  instrumentation(t)
  const app = await shop(t)
  t.equal(await underParent(app, '/broken'), 500)
  t.same(tree(exporter.getFinishedSpans()), ['parent', '  cache.getOrLoad', '    cache.load'])
  for (const name of ['cache.load', 'cache.getOrLoad']) {
    const span = named(name)
    t.same(span?.status, { code: SpanStatusCode.ERROR, message: 'the database is down' }, name)
    t.match(span?.events, [{ name: 'exception', attributes: { 'exception.message': 'the database is down' } }], name)
  }
})

test('includeKeys puts the key on each span', async (t) => {
  instrumentation(t, { includeKeys: true })
  const app = await shop(t)
  await underParent(app, '/product/7')
  t.same(exporter.getFinishedSpans().filter((span) => span.name.startsWith('cache.')).map((span) => span.attributes['cache.key']), ['product:7', 'product:7'])
})

test('requireParentSpan: no span without a parent by default; root spans when false', async (t) => {
  const instance = instrumentation(t)
  const app = await shop(t)
  await app.inject('/product/1')
  t.same(exporter.getFinishedSpans(), [], 'no orphan spans')
  instance.setConfig({ requireParentSpan: false })
  await app.inject('/product/2')
  t.same(tree(exporter.getFinishedSpans()), ['cache.getOrLoad', '  cache.load'])
})

test('nothing after disable(), and spans again after enable()', async (t) => {
  const instance = instrumentation(t)
  const app = await shop(t)
  instance.disable()
  t.notOk(instance.isEnabled())
  await underParent(app, '/product/1')
  t.same(tree(exporter.getFinishedSpans()), ['parent'])
  instance.enable()
  exporter.reset()
  await underParent(app, '/product/2')
  t.same(tree(exporter.getFinishedSpans()), ['parent', '  cache.getOrLoad', '    cache.load'])
})

test('under @fastify/otel: the cache spans are children of the route handler span', async (t) => {
  instrumentation(t)
  const fastifyOtel = new FastifyOtelInstrumentation()
  fastifyOtel.setTracerProvider(provider)
  t.teardown(() => { fastifyOtel.disable() })
  const app = await shop(t, async (app) => { await app.register(fastifyOtel.plugin()) })
  // A request with no span of the caller's: @fastify/otel's request span is the root.
  await context.with(context.active(), async () => await app.inject('/product/3'))
  const lines = tree(exporter.getFinishedSpans())
  t.equal(lines[0], 'request', 'the root is the request span')
  const handler = lines.findIndex((line) => line.trim().startsWith('handler'))
  t.ok(handler > 0, lines.join('\n'))
  t.same(lines.slice(handler + 1, handler + 3).map((line) => line.trim()), ['cache.getOrLoad', 'cache.load'])
  t.ok(lines[handler + 1]!.length - lines[handler + 1]!.trimStart().length > lines[handler]!.length - lines[handler]!.trimStart().length, 'nested under the handler')
})

test("the instrumentation's version is the package's", async (t) => {
  const { version } = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  t.equal(VERSION, version)
})

test('background refreshes of a defined key make no orphan spans, unless requireParentSpan is false', async (t) => {
  const instance = instrumentation(t)
  const app = fresh(t)
  await app.register(multiCache)
  app.appCache.define('rates', async () => ({ eur: 1 }), { refreshInterval: 40, jitter: 0 })
  await app.ready()
  exporter.reset()
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.same(exporter.getFinishedSpans(), [], 'no spans of the refresh timer')
  instance.setConfig({ requireParentSpan: false })
  await new Promise((resolve) => setTimeout(resolve, 150))
  t.same(tree(exporter.getFinishedSpans()).slice(0, 2), ['cache.refresh', '  cache.load'], 'root spans of the timer')
})

test("the spans a loader's own calls make are nested in its cache.load", async (t) => {
  instrumentation(t)
  const app = await shop(t)
  await underParent(app, '/query')
  t.same(tree(exporter.getFinishedSpans()), ['parent', '  cache.getOrLoad', '    cache.load', '      db.query'])
})
