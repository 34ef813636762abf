// 7. A thousand concurrent requests on a cold key: one loader call per level, on one instance.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { startServer, type ServerFactories } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { CART, SECRET, USER, catalog, openSessions } from '../harness/fixtures.js'
import { getJson } from '../harness/http.js'
import { result, type Result } from '../harness/results.js'
import { spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { multiCache } from '../harness/package.js'

const CONCURRENT = 1000
const ROUNDS = 3
/** Long enough that every one of the thousand requests arrives while the first one's load is still running. */
const LOAD_MS = 500

/** What the server reports of one cold key: loader calls, and calls that came while its load was in flight. */
interface KeyReport {
  loads: number
  joined: number
}

export const servers: ServerFactories = {
  async stampede () {
    const db = new SimulatedDatabase(LOAD_MS)
    const reports = new Map<string, KeyReport>()
    const inFlight = new Set<string>()
    const reportOf = (key: string): KeyReport => {
      let report = reports.get(key)
      if (report === undefined) reports.set(key, report = { loads: 0, joined: 0 })
      return report
    }
    /** Counts the caller (as joining if the key's load runs already) and returns the counting loader. */
    const counted = <T>(key: string, value: T) => {
      const report = reportOf(key)
      if (inFlight.has(key)) report.joined++
      return async () => {
        report.loads++
        inFlight.add(key)
        try {
          return await db.query(() => value)
        } finally {
          inFlight.delete(key)
        }
      }
    }

    const app = Fastify()
    await app.register(multiCache, { session: { secret: SECRET } })
    const products = catalog(1000)
    app.get<{ Params: { round: string } }>('/app/:round', async (request) => {
      const key = 'catalog:' + request.params.round
      await app.appCache.getOrLoad(key, counted('app ' + key, products))
      return { ok: true }
    })
    app.post('/login', async (request) => {
      await request.sessionCache.set('signedIn', true)
      return { ok: true }
    })
    app.get<{ Params: { round: string } }>('/session/:round', async (request) => {
      const key = 'cart:' + request.params.round
      await request.sessionCache.getOrLoad(key, counted('session ' + key, CART))
      return { ok: true }
    })
    // One request asks for the same key a thousand times at once, as handlers running in parallel would.
    app.get<{ Params: { round: string } }>('/request/:round', async (request) => {
      const key = 'request user:' + request.params.round
      await Promise.all(Array.from({ length: CONCURRENT }, () => request.reqCache.getOrLoad('user', counted(key, USER))))
      return reportOf(key)
    })
    app.get<{ Params: { key: string } }>('/report/:key', async (request) => reportOf(request.params.key))
    return app
  }
}

function loaderCalls (level: string, reports: readonly KeyReport[], how: string): Result {
  const joined = spread(reports.map((r) => r.joined))
  return result({
    scenario: 'stampede',
    measure: `${CONCURRENT} concurrent ${how} on a cold key: loader calls, ${level} level`,
    contenders: [level],
    unit: 'loader calls',
    ...spread(reports.map((r) => r.loads)),
    rounds: reports.length,
    target: { op: '=', value: 1 },
    context: `${joined.min}–${joined.max} of ${CONCURRENT} calls arrived while the load ran (${LOAD_MS} ms)`
  })
}

export const stampede: Scenario = {
  name: 'stampede',
  async run () {
    const server = await startServer(fileURLToPath(import.meta.url), 'stampede')
    try {
      const [cookie] = await openSessions(server.url, '/login', 1)
      const app: KeyReport[] = []
      const session: KeyReport[] = []
      const request: KeyReport[] = []
      for (let round = 0; round < ROUNDS; round++) {
        await Promise.all(Array.from({ length: CONCURRENT }, () => getJson(`${server.url}/app/${round}`)))
        app.push(await getJson(`${server.url}/report/${encodeURIComponent(`app catalog:${round}`)}`))
        await Promise.all(Array.from({ length: CONCURRENT }, () => getJson(`${server.url}/session/${round}`, cookie)))
        session.push(await getJson(`${server.url}/report/${encodeURIComponent(`session cart:${round}`)}`))
        request.push(await getJson(`${server.url}/request/${round}`))
      }
      return [
        loaderCalls('app', app, 'requests (appCache.getOrLoad)'),
        loaderCalls('session', session, 'requests of one session (sessionCache.getOrLoad)'),
        loaderCalls('request', request, 'reqCache.getOrLoad calls in one request')
      ]
    } finally {
      await server.stop()
    }
  }
}
