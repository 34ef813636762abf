import { brotliDecompressSync, gunzipSync } from 'node:zlib'
import fastifyCompress from '@fastify/compress'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import { test } from 'tap'
import multiCache from '../../index.js'
import { cookieOf, secret } from '../helpers/app.js'

// Random sequences of requests from several users, hosts, languages and encodings, against a model of what the cache
// must hold. Whatever the sequence, a response is always the requester's own page (its user, host and language), in
// an encoding it asked for, and hits and misses are exactly those the model predicts.

const USERS = ['alice', 'bob', 'carol']
const HOSTS = ['a.example', 'b.example']
const LANGUAGES = [undefined, 'en', 'fr']
const ENCODINGS = [undefined, 'gzip', 'br', 'identity']

interface Visit {
  route: 'app' | 'me'
  /** A session of USERS[who], or: -1 no credentials, -2 an Authorization header only, -3 a cookie of another kind. */
  who: number
  host: string
  language: string | undefined
  encoding: string | undefined
  method: 'GET' | 'HEAD'
}

const visit: fc.Arbitrary<Visit> = fc.record({
  route: fc.constantFrom('app', 'me'),
  who: fc.integer({ min: -3, max: USERS.length - 1 }),
  host: fc.constantFrom(...HOSTS),
  language: fc.constantFrom(...LANGUAGES),
  encoding: fc.constantFrom(...ENCODINGS),
  method: fc.constantFrom<'GET' | 'HEAD'>('GET', 'GET', 'GET', 'HEAD')
})

/** One fresh app per sequence (closed when the sequence ends), with a session per user. */
async function shop (): Promise<{ app: FastifyInstance, cookies: string[] }> {
  const app = Fastify()
  await app.register(fastifyCompress)
  await app.register(multiCache, { session: { secret } })
  let run = 0
  const pad = 'x'.repeat(1500) // past @fastify/compress's threshold
  app.post('/login/:user', async (request) => { await request.sessionCache.set('user', (request.params as { user: string }).user); return 'ok' })
  app.get('/app', { config: { cache: { level: 'app' } } }, async (request, reply) => {
    reply.header('vary', 'Accept-Language')
    return { host: request.host, language: request.headers['accept-language'] ?? null, user: null, run: ++run, pad }
  })
  app.get('/me', { config: { cache: { level: 'session' } } }, async (request, reply) => {
    reply.header('vary', 'Accept-Language')
    return { host: request.host, language: request.headers['accept-language'] ?? null, user: await request.sessionCache.get('user') ?? null, run: ++run, pad }
  })
  const cookies: string[] = []
  for (const user of USERS) cookies.push(cookieOf((await app.inject({ method: 'POST', url: `/login/${user}` })).headers) as string)
  return { app, cookies }
}

function headersOf (v: Visit, cookies: string[]): Record<string, string> {
  const headers: Record<string, string> = { host: v.host }
  if (v.language !== undefined) headers['accept-language'] = v.language
  if (v.encoding !== undefined) headers['accept-encoding'] = v.encoding
  if (v.who >= 0) headers.cookie = cookies[v.who] as string
  if (v.who === -2) headers.authorization = 'Bearer t'
  if (v.who === -3) headers.cookie = 'theme=dark'
  return headers
}

test('no sequence of requests ever serves one user\'s, host\'s or language\'s page to another', async (t) => {
  await fc.assert(fc.asyncProperty(fc.array(visit, { minLength: 1, maxLength: 30 }), async (visits) => {
    const { app, cookies } = await shop()
    try {
      const model = new Map<string, string>()
      for (const v of visits) {
        const response = await app.inject({ method: v.method, url: `/${v.route}`, headers: headersOf(v, cookies) })
        if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`)
        const encoding = response.headers['content-encoding']
        if (encoding !== undefined && (v.encoding === undefined || !v.encoding.includes(String(encoding)))) {
          throw new Error(`${String(encoding)} sent to a client that accepts ${String(v.encoding)}`)
        }
        // Who may be answered from which entry: anonymous requests at the application level, sessions at theirs.
        const cached = v.route === 'app' ? v.who === -1 : v.who >= 0
        const key = [v.route, v.route === 'me' ? v.who : '', v.host, v.language].join('|')
        const stored = model.get(key)
        const expected = !cached ? 'BYPASS' : stored === undefined ? 'MISS' : v.route === 'app' ? 'HIT-APP' : 'HIT-SESSION'
        if (response.headers['x-cache'] !== expected) throw new Error(`x-cache ${String(response.headers['x-cache'])}, the model says ${expected}`)
        if (v.method === 'HEAD') continue
        const bytes = encoding === 'gzip' ? gunzipSync(response.rawPayload) : encoding === 'br' ? brotliDecompressSync(response.rawPayload) : response.rawPayload
        const body = bytes.toString('utf8')
        const page = JSON.parse(body) as { host: string, language: string | null, user: string | null }
        const user = v.route === 'me' && v.who >= 0 ? USERS[v.who] : null
        if (page.host !== v.host || page.language !== (v.language ?? null) || page.user !== user) {
          throw new Error(`got the page of ${JSON.stringify({ host: page.host, language: page.language, user: page.user })}`)
        }
        if (stored !== undefined && cached && body !== stored) throw new Error('a hit that is not the stored page')
        if (cached && stored === undefined) model.set(key, body)
      }
    } finally {
      await app.close()
    }
  }), { numRuns: 60 })
  t.pass('every sequence held')
})
