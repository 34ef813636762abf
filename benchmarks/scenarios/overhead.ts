// 1. What registering every level costs a route that uses none of them, without and with Prometheus series.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import multiCache from '../../index.js'
import { SECRET } from '../harness/fixtures.js'
import { compareHttp, throughputRatio } from '../harness/http.js'
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

export const overhead: Scenario = {
  name: 'overhead',
  async run () {
    const load = { path: '/', connections: 50 }
    // The difference sought is a few per cent on a noisy machine: more rounds than the other comparisons.
    const samples = await compareHttp(fileURLToPath(import.meta.url), [
      { name: 'bare', server: 'bare', load },
      { name: 'multiCache', server: 'multiCache', load },
      { name: 'multiCacheMetrics', server: 'multiCacheMetrics', load }
    ], Math.max(settings.rounds, 11))
    return [result({
      scenario: 'overhead',
      measure: 'route touching no cache: with multiCache (all levels) vs bare Fastify',
      ...throughputRatio(samples, 'multiCache', 'bare'),
      target: { op: '>=', value: 0.95 }
    }), result({
      scenario: 'overhead',
      measure: 'route touching no cache: with multiCache (all levels) and metrics on vs bare Fastify',
      ...throughputRatio(samples, 'multiCacheMetrics', 'bare'),
      target: { op: '>=', value: 0.95 }
    })]
  }
}
