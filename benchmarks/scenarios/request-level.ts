// 2. A handler that needs the current user three times: three queries, or one through request.reqCache.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import type { ServerFactories } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { SECRET, USER, type User } from '../harness/fixtures.js'
import { compareHttp, throughputRatio } from '../harness/http.js'
import { result } from '../harness/results.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { multiCache } from '../harness/package.js'

/** As a real handler does: the user for authorisation, again for personalisation, again for rendering. */
async function orders (loadUser: () => Promise<User>) {
  const authorised = await loadUser()
  const personalised = await loadUser()
  const rendered = await loadUser()
  return { user: rendered.id, greeting: `Hello ${personalised.name}`, roles: authorised.roles, orders: [] }
}

async function server (cached: boolean) {
  const db = new SimulatedDatabase(2)
  const app = Fastify()
  await app.register(multiCache, { session: { secret: SECRET } })
  const query = () => db.query(() => USER)
  app.get('/orders', cached
    ? (request) => orders(() => request.reqCache.getOrLoad('user', query))
    : () => orders(query))
  return app
}

export const servers: ServerFactories = {
  queries: () => server(false),
  reqCache: () => server(true)
}

export const requestLevel: Scenario = {
  name: 'request-level',
  async run () {
    const load = { path: '/orders', connections: 20 }
    const samples = await compareHttp(fileURLToPath(import.meta.url), [
      { name: 'queries', server: 'queries', load },
      { name: 'reqCache', server: 'reqCache', load }
    ], settings.rounds)
    return [result({
      scenario: 'request-level',
      measure: 'user needed 3× per request (2 ms query, pool of 10): reqCache.getOrLoad vs 3 queries',
      ...throughputRatio(samples, 'reqCache', 'queries'),
      target: { op: '>=', value: 2.5 }
    })]
  }
}
