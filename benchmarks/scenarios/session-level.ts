// 3. A cart read on every request: from the database, from request.sessionCache, and against @fastify/session.
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import Fastify from 'fastify'
import type { ServerFactories } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { CART, SECRET, openSessions, type Cart } from '../harness/fixtures.js'
import { compareHttp, cpuAddedRatio, cpuSaving, throughputRatio } from '../harness/http.js'
import { result } from '../harness/results.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { multiCache } from '../harness/package.js'

declare module 'fastify' {
  interface Session {
    cart?: Cart
  }
}

const CONNECTIONS = 20

/**
 * A fixed offered load per contender, for CPU per request (see `HttpLoad.rate`): the three of a round are served at
 * once, and together stay well below the server core's limit on a slow machine.
 */
const RATE = 1000

export const servers: ServerFactories = {
  /** The same route with no session at all: the floor the CPU each session library adds is measured over. */
  async bare () {
    const app = Fastify()
    // A cookie like the others', which nothing reads: the requests are the same, bytes included.
    app.post('/login', async (_request, reply) => await reply.header('set-cookie', 'sid=unused; Path=/').send({ ok: true }))
    app.post('/cart/views', async () => ({ lines: CART.lines, views: CART.views + 1 }))
    return app
  },

  /** The cart is read from the database on every request (the user is taken as known: the baseline gets it free). */
  async database () {
    const db = new SimulatedDatabase(2)
    const app = Fastify()
    app.get('/cart', () => db.query(() => CART))
    return app
  },

  /** With `root`, on the multiCache of that checkout (`npm run bench:profile -- <checkout>` profiles an older one). */
  async sessionCache ({ root }) {
    const entry = process.env.BENCH_SOURCE === '1' ? 'index.ts' : 'dist/esm/index.js'
    const plugin = root === undefined ? multiCache : (await import(pathToFileURL(join(root, entry)).href) as { default: typeof multiCache }).default
    const app = Fastify()
    await app.register(plugin, { session: { secret: SECRET } })
    app.post('/login', async (request) => {
      await request.sessionCache.set('cart', CART)
      return { ok: true }
    })
    app.get('/cart', async (request) => (await request.sessionCache.get<Cart>('cart')) ?? CART)
    app.post('/cart/views', async (request) => {
      const cart = (await request.sessionCache.get<Cart>('cart')) ?? CART
      const seen = { lines: cart.lines, views: cart.views + 1 }
      await request.sessionCache.set('cart', seen)
      return seen
    })
    return app
  },

  /**
   * @fastify/session with its memory store, set up to do as little as it can: no empty sessions saved, no rolling
   * re-save of unchanged sessions, no Secure cookie (plain HTTP on loopback).
   */
  async fastifySession () {
    const app = Fastify()
    await app.register(fastifyCookie)
    await app.register(fastifySession, { secret: SECRET, cookie: { secure: false }, saveUninitialized: false, rolling: false })
    app.post('/login', async (request) => {
      request.session.set('cart', CART)
      return { ok: true }
    })
    app.post('/cart/views', async (request) => {
      const cart = request.session.get('cart') ?? CART
      const seen = { lines: cart.lines, views: cart.views + 1 }
      request.session.set('cart', seen)
      return seen
    })
    return app
  }
}

const login = (url: string) => openSessions(url, '/login', CONNECTIONS)

export const sessionLevel: Scenario = {
  name: 'session-level',
  async run () {
    const read = { path: '/cart', connections: CONNECTIONS }
    const readWrite = { path: '/cart/views', method: 'POST', connections: CONNECTIONS }
    const samples = await compareHttp(fileURLToPath(import.meta.url), [
      { name: 'database', server: 'database', load: read },
      { name: 'sessionCache', server: 'sessionCache', load: read, prepare: login },
      { name: 'sessionCache read+write', server: 'sessionCache', load: readWrite, prepare: login },
      { name: '@fastify/session read+write', server: 'fastifySession', load: readWrite, prepare: login }
    ], settings.rounds)
    // The same read+write at a fixed rate: CPU per request, whatever the machine's speed, over a route with no session.
    // A ratio of two differences of noisy figures (a round's ratio moved from 0.02 to 0.51 on the EPYC VM): more
    // rounds than the other comparisons, cheap since the three are measured at once.
    const fixed = { ...readWrite, rate: RATE }
    const cpu = await compareHttp(fileURLToPath(import.meta.url), [
      { name: 'bare', server: 'bare', load: fixed, prepare: login },
      { name: 'sessionCache read+write', server: 'sessionCache', load: fixed, prepare: login },
      { name: '@fastify/session read+write', server: 'fastifySession', load: fixed, prepare: login }
    ], settings.rounds * 3)
    // The CPU added is the target; the throughput ratios are context, since Fastify's own cost per request, which
    // varies with the machine (system calls above all), bounds them: see benchmarks/README.md.
    return [
      result({
        scenario: 'session-level',
        measure: `cart read and written per request at ${RATE} req/s: server CPU sessionCache adds over the bare route ÷ what @fastify/session adds (both memory stores)`,
        ...cpuAddedRatio(cpu, 'sessionCache read+write', '@fastify/session read+write', 'bare'),
        target: { op: '<=', value: 0.4 }
      }),
      result({
        scenario: 'session-level',
        measure: 'cart read per request: sessionCache (memory) vs a 2 ms query (pool of 10)',
        ...throughputRatio(samples, 'sessionCache', 'database'),
        target: undefined
      }),
      result({
        scenario: 'session-level',
        measure: 'cart read and written per request: sessionCache vs @fastify/session (both memory stores)',
        ...throughputRatio(samples, 'sessionCache read+write', '@fastify/session read+write'),
        target: undefined
      }),
      result({
        scenario: 'session-level',
        measure: 'cart read and written per request: server CPU of @fastify/session ÷ sessionCache',
        ...cpuSaving(samples, 'sessionCache read+write', '@fastify/session read+write'),
        target: undefined
      })
    ]
  }
}
