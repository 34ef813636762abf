// 1. What registering every level costs a route that uses none of them.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import multiCache from '../../index.js'
import { compareHttp } from '../harness/http.js'
import { pairedRatios, spread } from '../harness/rounds.js'
import { result } from '../harness/results.js'
import type { Scenario } from '../harness/scenario.js'
import type { ServerFactories } from '../harness/children.js'
import { settings } from '../harness/settings.js'

const SECRET = 'a-benchmark-secret-of-at-least-32-characters'

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
  }
}

export const overhead: Scenario = {
  name: 'overhead',
  async run () {
    const load = { path: '/', connections: 50 }
    const samples = await compareHttp(fileURLToPath(import.meta.url), [
      { name: 'bare', server: 'bare', load },
      { name: 'multiCache', server: 'multiCache', load }
    ], Math.max(settings.rounds, 7))
    const rps = (name: 'bare' | 'multiCache') => samples[name].map((s) => s.requestsPerSecond)
    return [result({
      scenario: 'overhead',
      measure: 'route touching no cache: with multiCache (all levels) vs bare Fastify',
      contenders: ['multiCache', 'bare'],
      unit: 'req/s ratio',
      ...spread(pairedRatios(rps('multiCache'), rps('bare'))),
      rounds: samples.bare.length,
      target: { op: '>=', value: 0.95 },
      context: `bare ${spread(rps('bare')).median.toFixed(0)} req/s, multiCache ${spread(rps('multiCache')).median.toFixed(0)} req/s`
    })]
  }
}
