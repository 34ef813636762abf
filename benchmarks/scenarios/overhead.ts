// 1. What registering every level costs a route that uses none of them, without and with Prometheus series.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import multiCache, { appCache, requestCache, sessionCache } from '../../index.js'
import { SECRET } from '../harness/fixtures.js'
import { compareHttp, cpuRatio, throughputRatio } from '../harness/http.js'
import { result } from '../harness/results.js'
import type { Scenario } from '../harness/scenario.js'
import type { ServerFactories } from '../harness/children.js'
import { settings } from '../harness/settings.js'

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
  async app () {
    const app = Fastify()
    await app.register(appCache)
    app.get('/', hello)
    return app
  },
  async multiCacheMetrics () {
    const app = Fastify()
    const registry = new Registry()
    await app.register(multiCache, { session: { secret: SECRET }, metrics: { registry } })
    app.get('/', hello)
    return app
  }
}

/**
 * A fixed offered load per contender, well below the server core's limit on a slow machine with every contender of
 * a round served at once (four at 2,000 req/s each): they all do the same work.
 */
const RATE = 2000

export const overhead: Scenario = {
  name: 'overhead',
  async run () {
    const module = fileURLToPath(import.meta.url)
    // The difference sought is a few per cent on a noisy machine: more rounds than the other comparisons. At a fixed
    // load the contenders of a round are measured at once (see compareHttp), so rounds are cheap: an A/A pair (bare
    // against bare) differed by 2 % in the median of 21 rounds on the EPYC VM, by up to 23 % in one round.
    const rounds = Math.max(settings.rounds, 11)
    const fixed = { path: '/', connections: 20, rate: RATE }
    const cpu = await compareHttp(module, ['bare', 'multiCache', 'multiCacheMetrics'].map((name) => ({ name, server: name, load: fixed })), settings.rounds * 3)
    const levels = await compareHttp(module, ['bare', 'request', 'session', 'app'].map((name) => ({ name, server: name, load: fixed })), settings.rounds * 3)
    // Throughput at saturation, as context: on a machine whose system calls are costly it mostly measures the noise.
    const load = { path: '/', connections: 50 }
    const samples = await compareHttp(module, [
      { name: 'bare', server: 'bare', load },
      { name: 'multiCache', server: 'multiCache', load },
      { name: 'multiCacheMetrics', server: 'multiCacheMetrics', load }
    ], rounds)
    const alone = (level: string): ReturnType<typeof result> => result({
      scenario: 'overhead',
      measure: `route touching no cache, at ${RATE} req/s: server CPU per request with the ${level} level alone vs bare Fastify (what the combination is made of)`,
      ...cpuRatio(levels, level, 'bare'),
      target: undefined
    })
    return [
      alone('request'),
      alone('session'),
      alone('app'),
      result({
        scenario: 'overhead',
        measure: `route touching no cache, at ${RATE} req/s: server CPU per request with multiCache (every level and route caching registered) vs bare Fastify`,
        ...cpuRatio(cpu, 'multiCache', 'bare'),
        target: { op: '<=', value: 1.05 }
      }),
      result({
        scenario: 'overhead',
        measure: `route touching no cache, at ${RATE} req/s: server CPU per request with multiCache and metrics on (a prom-client registry, read at scrape time) vs bare Fastify`,
        ...cpuRatio(cpu, 'multiCacheMetrics', 'bare'),
        target: { op: '<=', value: 1.05 }
      }),
      result({
        scenario: 'overhead',
        measure: 'route touching no cache: with multiCache (all levels) vs bare Fastify, throughput',
        ...throughputRatio(samples, 'multiCache', 'bare'),
        target: undefined
      }),
      result({
        scenario: 'overhead',
        measure: 'route touching no cache: with multiCache (all levels) and metrics on vs bare Fastify, throughput',
        ...throughputRatio(samples, 'multiCacheMetrics', 'bare'),
        target: undefined
      })
    ]
  }
}
