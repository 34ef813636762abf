// 1. What registering every level costs a route that uses none of them, without and with Prometheus series, at a light
// and a heavy fixed load, beside an A/A control.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import { SECRET } from '../harness/fixtures.js'
import { compareHttp, compareHttpAcrossStarts, cpuRatio, throughputRatio } from '../harness/http.js'
import { judgedBy, result, type Result } from '../harness/results.js'
import type { Scenario } from '../harness/scenario.js'
import type { ServerFactories } from '../harness/children.js'
import { spread } from '../harness/rounds.js'
import { settings } from '../harness/settings.js'
import { multiCache, appCache, requestCache, sessionCache } from '../harness/package.js'

function hello () {
  return { hello: 'world' }
}

export const servers: ServerFactories = {
  async bare () {
    const app = Fastify()
    app.get('/', hello)
    return app
  },
  async multiCache () {
    const app = Fastify()
    await app.register(multiCache, { session: { secret: SECRET } })
    app.get('/', hello)
    return app
  },
  // One level each, to tell what the combination's cost is made of.
  async request () {
    const app = Fastify()
    await app.register(requestCache)
    app.get('/', hello)
    return app
  },
  async session () {
    const app = Fastify()
    await app.register(sessionCache, { secret: SECRET })
    app.get('/', hello)
    return app
  },
  /** The two levels whose combination a review measured at 1.22× bare Fastify (issue 20), for the profiler. */
  async requestAndSession () {
    const app = Fastify()
    await app.register(requestCache)
    await app.register(sessionCache, { secret: SECRET })
    app.get('/', hello)
    return app
  },
  async app () {
    const app = Fastify()
    await app.register(appCache)
    app.get('/', hello)
    return app
  },
  // Issue 25's cost rule: the advisor on (1 in 100) against off, on a route touching no cache and on one that hits
  // the application and request levels.
  async multiCacheAdvisor () {
    const app = Fastify()
    await app.register(multiCache, { session: { secret: SECRET }, advisor: true })
    app.get('/', hello)
    return app
  },
  async multiCacheHits () {
    return await cachedRoute(false)
  },
  async multiCacheHitsAdvisor () {
    return await cachedRoute(true)
  },
  async multiCacheMetrics () {
    const app = Fastify()
    const registry = new Registry()
    await app.register(multiCache, { session: { secret: SECRET }, metrics: { registry } })
    app.get('/', hello)
    return app
  }
}

/** A route that reads a product from the application level and its price twice from the request level: hits only, once warm. */
async function cachedRoute (advisor: boolean) {
  const app = Fastify()
  await app.register(multiCache, { session: { secret: SECRET }, advisor })
  app.get('/', async (request) => {
    const product = await app.appCache.getOrLoad('product:1', () => ({ id: 1, name: 'pear', priceCents: 120 }))
    await request.cache.getOrLoad('price', () => product.priceCents, { level: 'request' })
    return { product, price: await request.cache.getOrLoad('price', () => product.priceCents, { level: 'request' }) }
  })
  return app
}

/** Connections per contender: few, as a server's own clients (a proxy, a load balancer) keep them. */
const CONNECTIONS = 10

/** The two regimes measured: a light load, where a per-request cost hides among the event loop's wake-ups, and a heavy one. */
const LOADS = [['light', 0.2], ['heavy', 0.7]] as const

/** Rounds measured of each start of the advisor's five processes. */
const ADVISED_ROUNDS_PER_START = 3

/** An A/A control (the same server twice) that reads outside this makes the run's figures void. */
const CONTROL = { op: 'within', value: 1, tolerance: 0.03 } as const

/** Requests per second bare Fastify serves on the server core, saturated with `CONNECTIONS` connections: the median of three runs. */
async function capacity (module: string): Promise<number> {
  const samples = await compareHttp(module, [{ name: 'bare', server: 'bare', load: { path: '/', connections: CONNECTIONS } }], 3)
  return spread(samples.bare.map((sample) => sample.requestsPerSecond)).median
}

export const overhead: Scenario = {
  name: 'overhead',
  async run () {
    const module = fileURLToPath(import.meta.url)
    // The difference sought is a few per cent on a noisy machine: many rounds, and the contenders of a round served
    // at the same time (see compareHttp), with an A/A pair among them to show what the machine's noise alone reads.
    const rounds = Math.max(settings.rounds * 3, 9)
    const limit = await capacity(module)
    const contenders = ['bare', 'control', 'multiCache', 'multiCacheMetrics'] as const
    const rows: Result[] = []
    for (const [regime, share] of LOADS) {
      // Every contender of a round is served at once on the server core: together they offer `share` of its capacity.
      const rate = Math.max(100, Math.round(limit * share / contenders.length))
      const load = { path: '/', connections: CONNECTIONS, rate }
      const samples = await compareHttp(module, contenders.map((name) => ({ name, server: name === 'control' ? 'bare' : name, load })), rounds)
      const where = `at a ${regime} load (${contenders.length} servers at ${rate} req/s each on one core: ${Math.round(share * 100)} % of bare Fastify's ${Math.round(limit)} req/s)`
      const control = result({ scenario: 'overhead', measure: `A/A control ${where}: server CPU per request of bare Fastify vs bare Fastify; outside 0.97–1.03 the run is void`, ...cpuRatio(samples, 'control', 'bare'), target: CONTROL })
      const judged = judgedBy(control)
      rows.push(control)
      rows.push(judged(result({ scenario: 'overhead', measure: `route touching no cache ${where}: server CPU per request with multiCache (every level and route caching registered) vs bare Fastify`, ...cpuRatio(samples, 'multiCache', 'bare'), target: { op: '<=', value: 1.05 } })))
      rows.push(judged(result({ scenario: 'overhead', measure: `route touching no cache ${where}: server CPU per request with multiCache and metrics on (a prom-client registry, read at scrape time) vs bare Fastify`, ...cpuRatio(samples, 'multiCacheMetrics', 'bare'), target: { op: '<=', value: 1.05 } })))
    }
    // The advisor's cost, at the heavy load: on against off, with a route touching no cache and one hitting the
    // levels, beside an A/A pair of the route with hits. Measured over fresh starts of the five processes: the cost
    // sought (1 or 2 %) is smaller than what one start of a process can read against another of the same code.
    const advised = ['multiCache', 'multiCacheAdvisor', 'multiCacheHits', 'multiCacheHitsAdvisor', 'multiCacheHitsControl'] as const
    const advisedRate = Math.max(100, Math.round(limit * 0.7 / advised.length))
    const advisedLoad = { path: '/', connections: CONNECTIONS, rate: advisedRate }
    const advisedSamples = await compareHttpAcrossStarts(module, advised.map((name) => ({ name, server: name === 'multiCacheHitsControl' ? 'multiCacheHits' : name, load: advisedLoad })), settings.rounds, ADVISED_ROUNDS_PER_START)
    const advisedWhere = `at a heavy load (${advised.length} servers at ${advisedRate} req/s each; ${settings.rounds} starts of the processes, ${ADVISED_ROUNDS_PER_START} rounds each)`
    const advisedControl = result({ scenario: 'overhead', measure: `A/A control ${advisedWhere}: server CPU per request of a route hitting the application and request levels, advisor: false vs a second process of it; outside 0.97–1.03 the advisor's rows are void`, ...cpuRatio(advisedSamples, 'multiCacheHitsControl', 'multiCacheHits'), target: CONTROL })
    const advisedJudged = judgedBy(advisedControl)
    rows.push(advisedControl)
    rows.push(advisedJudged(result({ scenario: 'overhead', measure: `route touching no cache ${advisedWhere}: server CPU per request with multiCache, advisor: true vs false`, ...cpuRatio(advisedSamples, 'multiCacheAdvisor', 'multiCache'), target: { op: '<=', value: 1.05 } })))
    rows.push(advisedJudged(result({ scenario: 'overhead', measure: `route hitting the application and request levels ${advisedWhere}: server CPU per request with multiCache, advisor: true vs false`, ...cpuRatio(advisedSamples, 'multiCacheHitsAdvisor', 'multiCacheHits'), target: { op: '<=', value: 1.05 } })))
    // What the combination is made of, at the heavy load: each level alone.
    const rate = Math.max(100, Math.round(limit * 0.7 / 4))
    const levels = await compareHttp(module, ['bare', 'request', 'session', 'app'].map((name) => ({ name, server: name, load: { path: '/', connections: CONNECTIONS, rate } })), rounds)
    for (const level of ['request', 'session', 'app']) {
      rows.push(result({ scenario: 'overhead', measure: `route touching no cache at a heavy load (${rate} req/s each): server CPU per request with the ${level} level alone vs bare Fastify (what the combination is made of)`, ...cpuRatio(levels, level, 'bare'), target: undefined }))
    }
    // Throughput at saturation, as context: on a machine whose system calls are costly it mostly measures the noise.
    const saturated = { path: '/', connections: 50 }
    const samples = await compareHttp(module, ['bare', 'multiCache'].map((name) => ({ name, server: name, load: saturated })), Math.max(settings.rounds, 7))
    rows.push(result({ scenario: 'overhead', measure: 'route touching no cache: with multiCache (all levels) vs bare Fastify, throughput at saturation', ...throughputRatio(samples, 'multiCache', 'bare'), target: undefined }))
    return rows
  }
}
