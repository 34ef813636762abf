// 12. The figures the problem this package answers promises, measured with the simulated database: "50–200 ms saved"
// at request level, "100 ms per request saved" at session level, "500 ms → 5 ms" and "5–10× throughput" at app level.
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyRequest } from 'fastify'
import type { ServerFactories, ServerParams } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { CART, SECRET, USER, catalog as catalogOf, openSessions } from '../harness/fixtures.js'
import { compareHttp, describeHttp, type HttpSample } from '../harness/http.js'
import { result, type Result } from '../harness/results.js'
import { pairedRatios, spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { multiCache } from '../harness/package.js'

/** Few connections: the figures promised are per request, not under saturation (the app level's throughput aside). */
const CONNECTIONS = 5

async function app (params: ServerParams) {
  const { level, query, cached } = params as { level: string, query: string, cached: string }
  const db = new SimulatedDatabase(Number(query))
  const server = Fastify()
  await server.register(multiCache, { session: { secret: SECRET } })
  if (level === 'request') {
    // The current user, needed twice per request (validation, personalisation).
    const user = async (request: FastifyRequest) => cached === 'yes'
      ? request.reqCache.getOrLoad('user', () => db.query(() => USER))
      : db.query(() => USER)
    server.get('/', async (request) => ({ valid: (await user(request)).id, hello: (await user(request)).name }))
  } else if (level === 'session') {
    server.post('/login', async (request) => { await request.sessionCache.set('cart', CART); return 'ok' })
    server.get('/', cached === 'yes'
      ? async (request) => await request.sessionCache.getOrLoad('cart', () => db.query(() => CART))
      : async () => await db.query(() => CART))
  } else {
    const products = catalogOf(1000)
    const catalog = async () => await db.query(() => products)
    if (cached === 'object') server.get('/', async () => await server.appCache.getOrLoad('catalog', catalog, { ttl: '1h' }))
    else if (cached === 'route') server.get('/', { config: { cache: { level: 'app', ttl: '1h' } } }, catalog)
    else server.get('/', catalog)
  }
  return server
}

export const servers: ServerFactories = { app }

const p50 = (samples: HttpSample[]): number => spread(samples.map((s) => s.p50)).median

export const promises: Scenario = {
  name: 'promises',
  async run () {
    const module = fileURLToPath(import.meta.url)
    const rows: Result[] = []
    const load = { path: '/', connections: CONNECTIONS }
    const login = async (url: string): Promise<string[]> => await openSessions(url, '/login', CONNECTIONS)

    for (const query of [50, 200]) {
      const samples = await compareHttp(module, [
        { name: 'two queries', server: 'app', params: { level: 'request', query: String(query), cached: 'no' }, load },
        { name: 'reqCache', server: 'app', params: { level: 'request', query: String(query), cached: 'yes' }, load }
      ], settings.rounds)
      rows.push(result({
        scenario: 'promises',
        measure: `request level, promised "50–200 ms saved": the current user needed twice per request, a ${query} ms query; p50 saved by reqCache`,
        contenders: ['reqCache', 'two queries'],
        unit: 'ms saved per request (p50)',
        ...spread(samples.reqCache.map((s, round) => (samples['two queries'][round] as HttpSample).p50 - s.p50)),
        rounds: samples.reqCache.length,
        target: { op: '>=', value: query * 0.9 },
        context: `${describeHttp('two queries', samples['two queries'])}; ${describeHttp('reqCache', samples.reqCache)}`
      }))
    }

    const session = await compareHttp(module, [
      { name: 'query', server: 'app', params: { level: 'session', query: '100', cached: 'no' }, load, prepare: login },
      { name: 'sessionCache', server: 'app', params: { level: 'session', query: '100', cached: 'yes' }, load, prepare: login }
    ], settings.rounds)
    rows.push(result({
      scenario: 'promises',
      measure: 'session level, promised "100 ms per request saved": a cart read per request, a 100 ms query vs sessionCache; p50 saved',
      contenders: ['sessionCache', 'query'],
      unit: 'ms saved per request (p50)',
      ...spread(session.sessionCache.map((s, round) => (session.query[round] as HttpSample).p50 - s.p50)),
      rounds: session.sessionCache.length,
      target: { op: '>=', value: 90 },
      context: `${describeHttp('query', session.query)}; ${describeHttp('sessionCache', session.sessionCache)}`
    }))

    // The app level under load: as many connections as the pool has, so that the uncached catalog is not queued.
    const busy = { path: '/', connections: 10 }
    const catalog = await compareHttp(module, [
      { name: 'query', server: 'app', params: { level: 'app', query: '500', cached: 'no' }, load: busy },
      { name: 'appCache object', server: 'app', params: { level: 'app', query: '500', cached: 'object' }, load: busy },
      { name: 'route cache', server: 'app', params: { level: 'app', query: '500', cached: 'route' }, load: busy }
    ], settings.rounds)
    // A latency is what one request waits, so it is measured with one connection, each request sent as the last
    // one is answered: 10 connections at saturation would measure the queue of requests waiting for the CPU, and a
    // paced load the TCP slow start of 100 KB sent on a connection that sat idle.
    const steady = { path: '/', connections: 1 }
    const latency = await compareHttp(module, [
      { name: 'appCache object', server: 'app', params: { level: 'app', query: '500', cached: 'object' }, load: steady },
      { name: 'route cache', server: 'app', params: { level: 'app', query: '500', cached: 'route' }, load: steady }
    ], settings.rounds)
    for (const cached of ['appCache object', 'route cache'] as const) {
      rows.push(result({
        scenario: 'promises',
        measure: `application level, promised "500 ms → 5 ms": a catalog whose query takes 500 ms (pool of 10), p50 ${cached === 'route cache' ? 'route cached' : 'cached as an object'} one request at a time`,
        contenders: [cached, 'query'],
        unit: 'ms (p50)',
        ...spread(latency[cached].map((s) => s.p50)),
        rounds: latency[cached].length,
        target: { op: '<=', value: 5 },
        context: `uncached p50 ${p50(catalog.query)} ms (10 connections, one per pooled connection); ${describeHttp(cached, latency[cached])}`
      }))
      rows.push(result({
        scenario: 'promises',
        measure: `application level, promised "5–10× throughput": the same catalog ${cached === 'route cache' ? 'route cached' : 'cached as an object'} vs the query, 10 connections`,
        contenders: [cached, 'query'],
        unit: 'req/s ratio',
        ...spread(pairedRatios(catalog[cached].map((s) => s.requestsPerSecond), catalog.query.map((s) => s.requestsPerSecond))),
        rounds: catalog[cached].length,
        target: { op: '>=', value: 5 },
        context: `${describeHttp('query', catalog.query)}; ${describeHttp(cached, catalog[cached])}`
      }))
    }
    return rows
  }
}
