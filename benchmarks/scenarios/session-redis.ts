// 14. Sessions on Redis: a cart read and written per request, with sessionCache on Redis (coherence 'strict', the
// default with the memory tier; 'bus'; l1: false) and with @fastify/session on connect-redis, over the same route with
// no session and an A/A control, all served at once at a fixed rate: the server CPU each adds per request.
import { fileURLToPath } from 'node:url'
import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { RedisStore } from 'connect-redis'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import type { SessionCacheOptions } from '../../index.js'
import { sessionCache } from '../harness/package.js'
import type { ServerFactories, ServerParams } from '../harness/children.js'
import { CART, SECRET, openSessions, type Cart } from '../harness/fixtures.js'
import { compareHttp, cpuAddedRatio, cpuRatio, cpuSaving, describeHttp, throughputRatio, type HttpContender, type HttpSample } from '../harness/http.js'
import { SHARED_REDIS, deleteMatching, namespaceFor, sweepAndReport } from '../harness/redis.js'
import { result, type Result } from '../harness/results.js'
import { spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'

declare module 'fastify' {
  interface Session {
    cart?: Cart
  }
}

const CONNECTIONS = 20
/**
 * A fixed offered load per contender (see `HttpLoad.rate`): the six of a round are served at once on the server core,
 * beside Redis and whatever else runs on the machine. On the EPYC VM, at 1,000 and then 500 req/s each, the contenders
 * that write to Redis fell short of the rate (the core was saturated, and their CPU per request grew with it); at 250
 * they kept it.
 */
const RATE = 250
/**
 * The read and write again at four times `RATE`, with `l1: false` left out (so that the core keeps up) and the route
 * with one Redis `SET` in (the floor of one round trip, which costs little): what a fixed cost per second, such as
 * strict's lease renewals, adds per request where an instance is busier.
 */
const BUSY_RATE = 1000
/** connect-redis's expiry in seconds: the inactivity `ttl` of sessionCache (30 min), so both keep sessions alike. */
const TTL_SECONDS = 30 * 60

/** Empties the contender's prefix in the shared Redis as its server closes (the scenario sweeps what is left). */
function emptiesPrefix (app: FastifyInstance, prefix: string): void {
  app.addHook('preClose', async () => { await deleteMatching(prefix + '*') })
}

/** A login for the routes without a session: a cookie like the others', which nothing reads, so the requests are the same, bytes included. */
const unreadCookie = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => await reply.header('set-cookie', 'sid=unused; Path=/').send({ ok: true })

/** The route every contender serves: the cart read and written back with one more view. */
const viewed = (cart: Cart | undefined): Cart => ({ lines: (cart ?? CART).lines, views: (cart ?? CART).views + 1 })

/** sessionCache on the shared Redis under the contender's prefix, with `options` (the memory tier and coherence). */
async function ours (params: ServerParams, options: SessionCacheOptions): Promise<FastifyInstance> {
  const prefix = params.prefix as string
  const app = Fastify()
  await app.register(sessionCache, { secret: SECRET, store: SHARED_REDIS, prefix, ...options })
  app.post('/login', async (request) => {
    await request.sessionCache.set('cart', CART)
    return { ok: true }
  })
  app.get('/cart', async (request) => (await request.sessionCache.get<Cart>('cart')) ?? CART)
  app.post('/cart/views', async (request) => {
    const seen = viewed(await request.sessionCache.get<Cart>('cart'))
    await request.sessionCache.set('cart', seen)
    return seen
  })
  emptiesPrefix(app, prefix)
  return app
}

export const servers: ServerFactories = {
  /** The same route with no session at all: the floor the CPU each session library adds is measured over. */
  async bare () {
    const app = Fastify()
    app.post('/login', unreadCookie)
    app.get('/cart', async () => CART)
    app.post('/cart/views', async () => viewed(CART))
    return app
  },
  /**
   * The bare route and one awaited ioredis `SET` of the cart under the connection's cookie: what one round trip to
   * Redis per request costs, the least a session kept in Redis and written on every request can cost.
   */
  async oneSet (params) {
    const prefix = params.prefix as string
    const client = new Redis(SHARED_REDIS)
    const app = Fastify()
    app.post('/login', unreadCookie)
    app.post('/cart/views', async (request) => {
      const seen = viewed(CART)
      await client.set(prefix + (request.headers.cookie ?? ''), JSON.stringify(seen), 'PX', TTL_SECONDS * 1000)
      return seen
    })
    emptiesPrefix(app, prefix)
    app.addHook('onClose', async () => { await client.quit() })
    return app
  },
  strict: (params) => ours(params, { coherence: 'strict' }),
  bus: (params) => ours(params, { coherence: 'bus' }),
  redisOnly: (params) => ours(params, { l1: false }),

  /**
   * @fastify/session on connect-redis (ioredis), its production set-up, doing as little as it can: no empty sessions
   * saved, no rolling re-save of unchanged sessions, no Secure cookie (plain HTTP on loopback).
   */
  async fastifySession (params) {
    const prefix = params.prefix as string
    const client = new Redis(SHARED_REDIS)
    const app = Fastify()
    await app.register(fastifyCookie)
    await app.register(fastifySession, {
      secret: SECRET,
      store: new RedisStore({ client, prefix, ttl: TTL_SECONDS }),
      cookie: { secure: false },
      saveUninitialized: false,
      rolling: false
    })
    app.post('/login', async (request) => {
      request.session.set('cart', CART)
      return { ok: true }
    })
    app.get('/cart', async (request) => request.session.get('cart') ?? CART)
    app.post('/cart/views', async (request) => {
      const seen = viewed(request.session.get('cart'))
      request.session.set('cart', seen)
      return seen
    })
    emptiesPrefix(app, prefix)
    app.addHook('onClose', async () => { await client.quit() })
    return app
  }
}

const login = (url: string): Promise<string[]> => openSessions(url, '/login', CONNECTIONS)

type Name = 'bare' | 'bare (A/A)' | 'strict' | 'bus' | 'l1: false' | '@fastify/session' | 'one SET'
type Library = Exclude<Name, 'bare' | 'bare (A/A)'>

const LABELS: Record<Library, string> = {
  strict: "sessionCache on Redis, memory tier, coherence 'strict' (the default)",
  bus: "sessionCache on Redis, memory tier, coherence 'bus'",
  'l1: false': 'sessionCache on Redis, l1: false',
  '@fastify/session': '@fastify/session 11 on connect-redis 8 (ioredis)',
  'one SET': 'the bare route with one awaited Redis SET of the cart (one round trip, no session library)'
}

const SERVERS: Record<Name, string> = {
  bare: 'bare',
  'bare (A/A)': 'bare',
  strict: 'strict',
  bus: 'bus',
  'l1: false': 'redisOnly',
  '@fastify/session': 'fastifySession',
  'one SET': 'oneSet'
}

/** Each contender on a prefix of its own, with its sessions opened before the warm-up (bare's are cookies nothing reads). */
function contenders (names: readonly Name[], load: HttpContender<Name>['load']): Array<HttpContender<Name>> {
  return names.map((name) => ({ name, server: SERVERS[name], params: { prefix: namespaceFor(name.replace(/\W+/g, '-')) }, load, prepare: login }))
}

/** The CPU a contender adds over the bare route, median µs per request of the rounds, each paired with bare's. */
function addedMicros (samples: Record<Name, HttpSample[]>, name: Name): string {
  return spread(samples[name].map((s, round) => s.cpuPerRequest - (samples.bare[round] as HttpSample).cpuPerRequest)).median.toFixed(1)
}

const ALL: readonly Name[] = ['bare', 'strict', 'bus', 'l1: false', '@fastify/session', 'bare (A/A)']
const BUSY: readonly Name[] = ['bare', 'strict', 'bus', '@fastify/session', 'one SET', 'bare (A/A)']

function figures (readWrite: Record<Name, HttpSample[]>, read: Record<Name, HttpSample[]>, busy: Record<Name, HttpSample[]>, saturated: Record<Name, HttpSample[]>): Result[] {
  const scenario = 'session-redis'
  const route = `cart read and written per request at ${RATE} req/s each, all served at once, shared Redis`
  const readOnly = `cart read (not written) per request at ${RATE} req/s each, all served at once, shared Redis`
  const busyRoute = `cart read and written per request at ${BUSY_RATE} req/s each (${BUSY.length} servers, l1: false left out), all served at once, shared Redis`
  const added = (samples: Record<Name, HttpSample[]>): string => 'CPU added over bare (medians of paired rounds): ' +
    (Object.keys(samples) as Name[]).filter((name) => name !== 'bare').map((name) => `${name} ${addedMicros(samples, name)} µs`).join(', ')
  const control = (samples: Record<Name, HttpSample[]>, setting: string): Result => result({
    scenario,
    measure: `${setting}: A/A control, server CPU per request of a second bare server ÷ the first (if it is not about 1.00, the run says nothing)`,
    ...cpuRatio(samples, 'bare (A/A)', 'bare'),
    target: { op: 'within', value: 1, tolerance: 0.05 }
  })
  const withAdded = (row: Result, samples: Record<Name, HttpSample[]>): Result => ({ ...row, context: `${row.context}; ${added(samples)}` })
  const overTheirs = (samples: Record<Name, HttpSample[]>, setting: string, name: Exclude<Library, '@fastify/session'>, target: Result['target']): Result => result({
    scenario,
    measure: `${setting}: server CPU ${LABELS[name]} adds over the bare route ÷ what ${LABELS['@fastify/session']} adds`,
    ...cpuAddedRatio(samples, name, '@fastify/session', 'bare'),
    target
  })
  const strictOverBus = (samples: Record<Name, HttpSample[]>, setting: string): Result[] => [
    {
      ...result({
        scenario,
        measure: `${setting}: server CPU per request of coherence 'strict' ÷ 'bus' (what a logout final on every instance at once costs)`,
        ...cpuRatio(samples, 'strict', 'bus'),
        target: undefined
      }),
      context: `${describeHttp('bus', samples.bus)}; ${describeHttp('strict', samples.strict)}; ${added(samples)}`
    },
    result({
      scenario,
      measure: `${setting}: server CPU coherence 'strict' adds over the bare route ÷ what 'bus' adds`,
      ...cpuAddedRatio(samples, 'strict', 'bus', 'bare'),
      target: undefined
    })
  ]
  return [
    control(readWrite, route),
    overTheirs(readWrite, route, 'strict', { op: '<=', value: 0.5 }),
    overTheirs(readWrite, route, 'bus', undefined),
    overTheirs(readWrite, route, 'l1: false', undefined),
    ...strictOverBus(readWrite, route),
    control(read, readOnly),
    overTheirs(read, readOnly, 'strict', undefined),
    overTheirs(read, readOnly, 'bus', undefined),
    overTheirs(read, readOnly, 'l1: false', undefined),
    ...strictOverBus(read, readOnly),
    control(busy, busyRoute),
    withAdded(overTheirs(busy, busyRoute, 'strict', { op: '<=', value: 0.5 }), busy),
    overTheirs(busy, busyRoute, 'bus', undefined),
    // The floor: what is left of the target for the session's own work, beside the one round trip it cannot avoid.
    overTheirs(busy, busyRoute, 'one SET', undefined),
    result({
      scenario,
      measure: `cart read and written per request, ${CONNECTIONS} connections, in turn: throughput of sessionCache on Redis ('strict') vs @fastify/session on connect-redis`,
      ...throughputRatio(saturated, 'strict', '@fastify/session'),
      target: undefined
    }),
    result({
      scenario,
      measure: "same, in turn: server CPU of @fastify/session on connect-redis ÷ sessionCache on Redis ('strict')",
      ...cpuSaving(saturated, 'strict', '@fastify/session'),
      target: undefined
    }),
    result({
      scenario,
      measure: "same, in turn: throughput of coherence 'strict' vs 'bus'",
      ...throughputRatio(saturated, 'strict', 'bus'),
      target: undefined
    })
  ]
}

export const sessionRedis: Scenario = {
  name: 'session-redis',
  async run () {
    const module = fileURLToPath(import.meta.url)
    const readWrite = { path: '/cart/views', method: 'POST', connections: CONNECTIONS }
    try {
      // A ratio of two differences of noisy figures: as many rounds as session-level's, cheap since all are at once.
      const rounds = settings.rounds * 3
      const writing = await compareHttp(module, contenders(ALL, { ...readWrite, rate: RATE }), rounds)
      // The same sessions only read: where the memory tier can answer, and what 'strict' then costs over 'bus'.
      const reading = await compareHttp(module, contenders(ALL, { path: '/cart', connections: CONNECTIONS, rate: RATE }), rounds)
      const busy = await compareHttp(module, contenders(BUSY, { ...readWrite, rate: BUSY_RATE }), rounds)
      // Throughput at saturation, as context: it takes turns, and Redis shares the machine with the client.
      const saturated = await compareHttp(module, contenders(['strict', 'bus', '@fastify/session'], readWrite), settings.rounds)
      return figures(writing, reading, busy, saturated)
    } finally {
      await sweepAndReport('session-redis')
    }
  }
}
