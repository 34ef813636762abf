// 1. What registering every level costs a route that uses none of them, without and with Prometheus series.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import multiCache from '../../index.js'
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
  async multiCacheMetrics () {
    const app = Fastify()
    const registry = new Registry()
    await app.register(multiCache, { session: { secret: SECRET }, metrics: { registry } })
    app.get('/', hello)
    return app
  }
}

/** A fixed offered load well below either server's limit on a slow machine: both do the same work. */
const RATE = 4000

export const overhead: Scenario = {
  name: 'overhead',
  async run () {
    const module = fileURLToPath(import.meta.url)
    // The difference sought is a few per cent on a noisy machine: more rounds than the other comparisons.
    const rounds = Math.max(settings.rounds, 11)
    const cpu = await compareHttp(module, [
      { name: 'bare', server: 'bare', load: { path: '/', connections: 20, rate: RATE } },
      { name: 'multiCache', server: 'multiCache', load: { path: '/', connections: 20, rate: RATE } }
    ], rounds)
    const load = { path: '/', connections: 50 }
    const samples = await compareHttp(module, [
      { name: 'bare', server: 'bare', load },
      { name: 'multiCache', server: 'multiCache', load },
      { name: 'multiCacheMetrics', server: 'multiCacheMetrics', load }
    ], rounds)
    return [
      result({
        scenario: 'overhead',
        measure: `route touching no cache, at ${RATE} req/s: server CPU per request with multiCache (every level and route caching registered) vs bare Fastify`,
        ...cpuRatio(cpu, 'multiCache', 'bare'),
        target: { op: '<=', value: 1.05 }
      }),
      result({
        scenario: 'overhead',
        measure: 'route touching no cache: with multiCache (all levels) vs bare Fastify, throughput',
        ...throughputRatio(samples, 'multiCache', 'bare'),
        target: { op: '>=', value: 0.95 }
      }),
      result({
        scenario: 'overhead',
        measure: 'route touching no cache: with multiCache (all levels) and metrics on vs bare Fastify, throughput',
        ...throughputRatio(samples, 'multiCacheMetrics', 'bare'),
        target: { op: '>=', value: 0.95 }
      })
    ]
  }
}
