import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { CacheLookup } from '../../lib/lookup.js'
import { AppCache } from '../../lib/scopes/application.js'
import { RequestLevel } from '../../lib/scopes/request.js'
import { SessionLevel } from '../../lib/scopes/session.js'
import { MemoryStore } from '../../lib/stores/memory.js'

// The hierarchical lookup without Fastify: one CacheLookup per request, over the three levels' plain objects.

function levels (): { app: AppCache, sessions: SessionLevel, requests: RequestLevel, lookup: (sessionId?: string) => CacheLookup } {
  const app = new AppCache({ store: new MemoryStore({ max: 100 }), ttl: 0, log: { warn: () => {} } })
  const sessions = new SessionLevel({ ttl: 60_000, maxEntriesPerSession: 100, store: new MemoryStore({ max: 100, rolling: true }) })
  const requests = new RequestLevel({ maxEntries: 100 })
  const lookup = (sessionId?: string): CacheLookup => new CacheLookup(
    requests.open(),
    sessions.open(() => sessionId === undefined ? undefined : { id: sessionId }),
    app
  )
  return { app, sessions, requests, lookup }
}

async function sessionWith (sessions: SessionLevel, entries: Record<string, unknown>): Promise<string> {
  const session = sessions.open(() => undefined)
  for (const [key, value] of Object.entries(entries)) await session.set(key, value)
  return session.id as string
}

test('get: request, then session, then application; the first hit is memoised for the request', async (t) => {
  const { app, sessions, lookup } = levels()
  await app.set('k', 'app')
  await app.set('nothing', null)
  await app.set('__proto__', 'app proto')
  const id = await sessionWith(sessions, { k: 'session' })

  const anonymous = lookup()
  t.equal(await anonymous.get('k'), 'app')
  t.equal(await anonymous.get('nothing'), null, 'null is a value: cached absence')
  t.equal(await anonymous.get('__proto__'), 'app proto')
  t.equal(await anonymous.get('missing'), undefined)
  await app.set('k', 'changed')
  await app.delete('nothing')
  t.equal(await anonymous.get('k'), 'app', 'one request sees one value per key')
  t.equal(await anonymous.get('nothing'), null)
  t.equal(await lookup().get('k'), 'changed', 'the next request sees the change')

  const user = lookup(id)
  t.equal(await user.get('k'), 'session', 'the session wins over the application level')
  // A method that answers with a promise rejects: `.catch()` sees a bad key or level.
  await t.rejects(user.get(''), { code: 'FST_MULTICACHE_INVALID_KEY' })
  await t.rejects(user.getOrLoad(42 as unknown as string, () => 1, { level: 'app' }), { code: 'FST_MULTICACHE_INVALID_KEY' })
  await t.rejects(user.getOrLoad('k', () => 1, { level: 'global' as 'app' }), { code: 'FST_MULTICACHE_INVALID_OPTION' })
})

test('getOrLoad reads up to the level asked for, and stores there', async (t) => {
  const { app, sessions, lookup } = levels()
  await app.set('shared', 'from app')
  const id = await sessionWith(sessions, { mine: 'from session' })
  let calls = 0
  const loader = async (): Promise<string> => { await sleep(5); return `loaded ${++calls}` }

  const one = lookup(id)
  t.equal(await one.getOrLoad('shared', loader, { level: 'session' }), 'loaded 1', 'the application level is above "session": not consulted')
  t.equal(await one.getOrLoad('shared', loader, { level: 'app' }), 'loaded 1', 'memoised for the request')
  t.equal(await lookup(id).getOrLoad('shared', loader, { level: 'app' }), 'loaded 1', 'the session, consulted before the application level, has it')
  t.equal(await lookup().getOrLoad('shared', loader, { level: 'app' }), 'from app')
  t.equal(await lookup(id).getOrLoad('mine', loader, { level: 'app' }), 'from session')
  t.equal(await lookup().getOrLoad('r', loader, { level: 'request' }), 'loaded 2')
  t.equal(await lookup().getOrLoad('r', loader, { level: 'request' }), 'loaded 3', 'the request level lasts one request')

  const concurrent = lookup()
  const values = await Promise.all([1, 2, 3].map(async () => await concurrent.getOrLoad('cold', loader, { level: 'app', ttl: '1m' })))
  t.same(values, ['loaded 4', 'loaded 4', 'loaded 4'], 'one load for concurrent lookups of a request')
  t.equal(await app.get('cold'), 'loaded 4')
  t.equal(calls, 4)
})

test('a level that is not there, or not a level, is refused by name', async (t) => {
  const app = new AppCache({ store: new MemoryStore({ max: 10 }), ttl: 0, log: { warn: () => {} } })
  const appOnly = new CacheLookup(undefined, undefined, app)
  t.equal(await appOnly.get('k'), undefined)
  t.equal(await appOnly.getOrLoad('k', () => 1, { level: 'app' }), 1)
  t.equal(await appOnly.get('k'), 1, 'without a request level nothing is memoised, the application level answers')
  for (const level of ['request', 'session'] as const) {
    await t.rejects(Promise.resolve().then(async () => await appOnly.getOrLoad('k', () => 1, { level })), {
      code: 'FST_MULTICACHE_UNSUPPORTED', message: `request.cache.getOrLoad: the ${level} level is not registered`
    })
  }
  const none = new CacheLookup(undefined, undefined, undefined)
  await t.rejects(Promise.resolve().then(async () => await none.getOrLoad('k', () => 1, { level: 'app' })), { code: 'FST_MULTICACHE_UNSUPPORTED' })
  for (const options of [{ level: 'global' }, { level: undefined }, undefined, {}]) {
    await t.rejects(Promise.resolve().then(async () => await appOnly.getOrLoad('k', () => 1, options as never)), {
      code: 'FST_MULTICACHE_INVALID_OPTION', message: /request.cache.getOrLoad: option "level" must be one of request, session, app/
    })
  }
})
