import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import Fastify from 'fastify'
import { test } from 'tap'
import multiCache from '../../index.js'
import { cookieOf, secret } from '../helpers/app.js'

interface Step {
  user: number
  key: 'cart' | 'profile' | 'prefs'
  /** Milliseconds the handler waits between its read and its write, so that requests interleave. */
  delay: number
}

/**
 * Random crowds of users whose requests overlap at random: each request reads the user's session through
 * `request.cache`, stores a value naming its user at the request and session levels, and reads both back. Whatever
 * the interleaving, no request ever sees a value that names another user.
 */
test('random interleavings of many users never show one user another user\'s data', async (t) => {
  let runs = 0
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 2, max: 8 }),
    fc.array(fc.record({ user: fc.nat(7), key: fc.constantFrom('cart' as const, 'profile' as const, 'prefs' as const), delay: fc.nat(4) }), { minLength: 5, maxLength: 60 }),
    async (users, steps: Step[]) => {
      runs++
      const app = Fastify()
      try {
        await app.register(multiCache, { session: { secret } })
        const leaks: string[] = []
        app.post('/step/:user/:key', async (request) => {
          const { user, key } = request.params as { user: string, key: string }
          const delay = Number((request.query as { delay: string }).delay)
          const before = await request.cache.get<string>(key)
          if (before !== undefined && !before.startsWith(`${user}:`)) leaks.push(`${user} read ${String(before)}`)
          request.reqCache.set('mine', user)
          await sleep(delay)
          const value = `${user}:${request.id}`
          await request.sessionCache.set(key, value)
          const loaded = await request.cache.getOrLoad(`${key}:derived`, async () => { await sleep(delay); return `${user}:derived` }, { level: 'session' })
          if (!loaded.startsWith(`${user}:`)) leaks.push(`${user} loaded ${loaded}`)
          if (request.reqCache.get('mine') !== user) leaks.push(`${user} request level`)
          // Another request of the same user may have written the key since: it must still be this user's.
          const after = await request.sessionCache.get<string>(key)
          if (after === undefined || !after.startsWith(`${user}:`)) leaks.push(`${user} read back ${String(after)}`)
          return 'ok'
        })
        app.get('/dump', async (request) => ({
          cart: await request.sessionCache.get('cart') ?? null,
          profile: await request.sessionCache.get('profile') ?? null,
          prefs: await request.sessionCache.get('prefs') ?? null
        }))
        // Each user starts a session first, then all steps run at once.
        const cookies = await Promise.all(Array.from({ length: users }, async (_, user) => {
          const response = await app.inject({ method: 'POST', url: `/step/${user}/cart?delay=0` })
          return cookieOf(response.headers) as string
        }))
        const mine = steps.map((step) => ({ ...step, user: step.user % users }))
        const responses = await Promise.all(mine.map(async ({ user, key, delay }) =>
          await app.inject({ method: 'POST', url: `/step/${user}/${key}?delay=${delay}`, headers: { cookie: cookies[user] as string } })))
        if (responses.some((r) => r.statusCode !== 200 || r.headers['set-cookie'] !== undefined)) throw new Error('a step failed or got a new session')
        if (leaks.length > 0) throw new Error(leaks.join('; '))
        for (let user = 0; user < users; user++) {
          const dump = (await app.inject({ url: '/dump', headers: { cookie: cookies[user] as string } })).json() as Record<string, string | null>
          for (const [key, value] of Object.entries(dump)) {
            if (value !== null && !value.startsWith(`${user}:`)) throw new Error(`user ${user} holds ${key}=${value}`)
          }
        }
        if (app.multiCache.stats().request?.size !== 0) throw new Error('request entries outlived their requests')
      } finally {
        await app.close()
      }
    }
  ), { numRuns: 25 })
  t.equal(runs, 25)
})
