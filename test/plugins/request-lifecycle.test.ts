import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { requestCache } from '../../index.js'
import { fresh } from '../helpers/app.js'

/** Waits, at most half a second, for the server side of a socket to catch up. */
async function settled (done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) await sleep(5)
}

test('a load still running when the response goes out is not counted once it lands', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  let landed: Promise<unknown> = Promise.resolve()
  app.get('/', async (request) => {
    landed = request.reqCache.getOrLoad('slow', async () => { await sleep(20); return 'late' })
    request.reqCache.set('quick', 1)
    return 'ok'
  })
  await app.inject('/')
  t.equal(app.multiCache.stats().request?.size, 0, 'dropped with the response')
  t.equal(await landed, 'late', 'the caller still gets its value')
  t.equal(app.multiCache.stats().request?.size, 0, 'and the late value is not counted as held')
})

test('a client that goes away mid-request: its entries stop counting, the handler keeps them', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const seen: unknown[] = []
  let started: () => void = () => {}
  const isRunning = new Promise<void>((resolve) => { started = resolve })
  app.get('/slow', async (request) => {
    request.reqCache.set('user', { id: 1 })
    started()
    await released
    seen.push(request.reqCache.get('user'))
    return 'too late'
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0

  const aborter = new AbortController()
  const call = fetch(`http://127.0.0.1:${port}/slow`, { signal: aborter.signal }).catch((error: Error) => error.name)
  await isRunning
  t.equal(app.multiCache.stats().request?.size, 1)
  aborter.abort()
  t.equal(await call, 'AbortError')
  await settled(() => app.multiCache.stats().request?.size === 0)
  t.equal(app.multiCache.stats().request?.size, 0, 'no onResponse ran, and still nothing is counted')
  release()
  await sleep(20)
  t.same(seen, [{ id: 1 }], 'the handler still running read what it had stored')

  // A request that completes normally over the socket: counted while it runs, dropped after.
  const done = await fetch(`http://127.0.0.1:${port}/slow`)
  await isRunning
  t.equal(await done.text(), 'too late')
  await settled(() => app.multiCache.stats().request?.size === 0)
  t.equal(app.multiCache.stats().request?.size, 0)
})
