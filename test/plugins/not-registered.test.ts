import { test } from 'tap'
import { appCache, requestCache, routeCache, sessionCache } from '../../index.js'
import { fresh, secret } from '../helpers/app.js'

// The types say every decorator exists once the package is imported: reading one whose level is not registered
// names the plugin to register, rather than failing with "Cannot read properties of undefined" (issue 19).

test('a decorator of a level that is not registered throws an error naming the plugin', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  app.get('/session', async (request) => await request.sessionCache.get('cart'))
  app.get('/lookup', async (request) => await request.cache.get('user'))
  app.get('/request', async (request) => { request.reqCache.set('a', 1); return request.reqCache.get('a') })
  const session = await app.inject('/session')
  t.equal(session.statusCode, 500)
  t.match(session.json(), { code: 'FST_MULTICACHE_NOT_REGISTERED', message: /request.sessionCache is not available: register sessionCache \(fastify-multi-cache\/session\)/ })
  t.match((await app.inject('/lookup')).json(), { code: 'FST_MULTICACHE_NOT_REGISTERED', message: /request.cache is not available: register multiCache/ })
  t.equal((await app.inject('/request')).body, '1', 'the level that is registered works')
  t.throws(() => app.appCache, { code: 'FST_MULTICACHE_NOT_REGISTERED', message: /fastify.appCache is not available: register appCache \(fastify-multi-cache\/app\)/ })
  t.throws(() => app.routeCache, { code: 'FST_MULTICACHE_NOT_REGISTERED', message: /fastify.routeCache is not available: register routeCache/ })
})

test('each level alone answers its own decorator and names the others', async (t) => {
  const sessions = fresh(t)
  await sessions.register(sessionCache, { secret })
  sessions.get('/', async (request) => { await request.sessionCache.set('a', 1); return 'ok' })
  sessions.get('/request', async (request) => request.reqCache.get('a') ?? null)
  t.equal((await sessions.inject('/')).statusCode, 200)
  t.match((await sessions.inject('/request')).json(), { code: 'FST_MULTICACHE_NOT_REGISTERED', message: /request.reqCache is not available: register requestCache/ })

  const shared = fresh(t)
  await shared.register(appCache)
  await shared.register(routeCache)
  await shared.ready()
  t.equal(typeof shared.appCache.get, 'function')
  t.equal(typeof shared.routeCache.invalidate, 'function')
})
