// 15. How long another instance may still serve a session after `destroy()` returned: two app processes sharing Redis,
// sessionCache with the default memory tier, both read without pause; a login and a logout on A, round after round,
// and every read of B stamped with when B began it. With coherence 'bus' the memory tier of B serves the session until
// the bus message reaches it (the window measured); with 'strict' (the default) no read of B begun after the return
// may serve it. The same approach as invalidation-window, for the session level.
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { sessionCache } from '../harness/package.js'
import { startServer, type ServerFactories, type ServerHandle } from '../harness/children.js'
import { getJson } from '../harness/http.js'
import { deleteMatching, namespaceFor, SHARED_REDIS, sweepAndReport } from '../harness/redis.js'
import { result, type Result } from '../harness/results.js'
import { percentile, spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { SECRET } from '../harness/fixtures.js'

/** Rounds of each coherence. */
const ROUNDS = settings.quick ? 40 : 300
/** Readers of each instance, each sending its next request as soon as the last is answered: the instances' load. */
const READERS = 10
/** How long reads go on after a logout before its round is judged: many times any window seen. */
const SETTLE_MS = 40
/** How long a round waits for B to serve the new session before it is left out. */
const ARM_MS = 1000

type Coherence = 'strict' | 'bus'

/** Milliseconds on CLOCK_MONOTONIC, which on Linux is one clock for every process of the machine; µs precision. */
function monotonic (): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000
}

/** A read of B: the round whose session it served (null: none) and when B began the read. */
interface Read { round: number | null, started: number }

export const servers: ServerFactories = {
  /** One instance: sessionCache on the shared Redis under `params.prefix`, default memory tier, the given coherence. */
  async instance (params) {
    const app = Fastify()
    await app.register(sessionCache, { secret: SECRET, store: SHARED_REDIS, prefix: params.prefix as string, coherence: params.coherence as Coherence })
    app.post<{ Querystring: { round: string } }>('/login', async (request) => {
      await request.sessionCache.set('round', Number(request.query.round))
      return { ok: true }
    })
    app.get('/session', async (request) => {
      const started = monotonic()
      const round = await request.sessionCache.get<number>('round') ?? null
      return { round, started }
    })
    app.post('/logout', async (request) => {
      await request.sessionCache.get('round')
      const called = monotonic()
      await request.sessionCache.destroy()
      const returned = monotonic()
      return { returned, took: returned - called }
    })
    return app
  }
}

interface Round {
  /** From the return of `destroy` on A to the start of the last read of B that still served the session; 0: none. */
  window: number
  /** Reads of B begun after the return that served the session. */
  stale: number
  /** How long `destroy` took on A. */
  took: number
}

interface Measured {
  rounds: Round[]
  /** Rounds left out: B was not serving the session when A destroyed it. */
  unarmed: number
  readsPerSecond: number
}

async function rounds (coherence: Coherence): Promise<Measured> {
  const prefix = namespaceFor('session-window-' + coherence)
  const instances: ServerHandle[] = []
  const done = new AbortController()
  const readers: Array<Promise<void>> = []
  try {
    const module = fileURLToPath(import.meta.url)
    for (let i = 0; i < 2; i++) instances.push(await startServer(module, 'instance', { prefix, coherence }))
    const [a, b] = instances as [ServerHandle, ServerHandle]
    /** The session every reader presents: the current round's, once it is logged in. */
    let cookie: string | undefined
    const reads: Read[] = []
    let served = 0
    const read = async (url: string): Promise<Read> => await getJson<Read>(url + '/session', cookie)
    for (let i = 0; i < READERS; i++) {
      readers.push((async () => { while (!done.signal.aborted) await read(a.url) })())
      readers.push((async () => {
        while (!done.signal.aborted) {
          reads.push(await read(b.url))
          served++
        }
      })())
    }
    await sleep(settings.warmupSeconds * 1000)
    const measured: Measured = { rounds: [], unarmed: 0, readsPerSecond: 0 }
    const started = performance.now()
    const servedBefore = served
    for (let round = 1; round <= ROUNDS; round++) {
      const login = await fetch(`${a.url}/login?round=${round}`, { method: 'POST' })
      const session = login.headers.getSetCookie()[0]?.split(';')[0]
      if (!login.ok || session === undefined) throw new Error(`login answered ${login.status} without a session cookie`)
      const from = reads.length
      cookie = session
      // Armed once B has served this session to a read it began after the login (from Redis, then its memory tier).
      const deadline = performance.now() + ARM_MS
      while (!reads.slice(from).some((r) => r.round === round) && performance.now() < deadline) await sleep(1)
      const response = await fetch(`${a.url}/logout`, { method: 'POST', headers: { cookie: session } })
      const { returned, took } = await response.json() as { returned: number, took: number }
      await sleep(SETTLE_MS)
      const mine = reads.slice(from).filter((r) => r.round === round || r.round === null)
      const before = mine.filter((r) => r.started < returned - took).sort((x, y) => x.started - y.started)
      if (before.at(-1)?.round !== round) {
        measured.unarmed++
        continue
      }
      const stale = mine.filter((r) => r.started > returned && r.round === round)
      const last = Math.max(returned, ...stale.map((r) => r.started))
      measured.rounds.push({ window: last - returned, stale: stale.length, took })
    }
    measured.readsPerSecond = (served - servedBefore) / ((performance.now() - started) / 1000)
    return measured
  } finally {
    done.abort()
    await Promise.allSettled(readers)
    await Promise.all(instances.map((instance) => instance.stop()))
    await deleteMatching(prefix + '*')
  }
}

function figures (bus: Measured, strict: Measured): Result[] {
  const ms = (values: readonly number[], p: number): string => percentile(values, p).toFixed(2)
  const stale = (rounds: readonly Round[]): string =>
    `in ${rounds.filter((r) => r.stale > 0).length} of ${rounds.length} rounds (${rounds.reduce((sum, r) => sum + r.stale, 0)} reads)`
  const took = (rounds: readonly Round[]): string => `p50 ${ms(rounds.map((r) => r.took), 50)} ms, p99 ${ms(rounds.map((r) => r.took), 99)} ms`
  const load = (measured: Measured): string =>
    `B served ${measured.readsPerSecond.toFixed(0)} reads/s; ${measured.unarmed} rounds left out (B was not serving the session)`
  const windows = bus.rounds.map((r) => r.window)
  const opened = bus.rounds.filter((r) => r.stale > 0).map((r) => r.window)
  const setting = `2 instances (child processes) sharing Redis, sessionCache with the default memory tier, ${READERS} readers ` +
    'per instance without pause presenting one session, a login and a logout on A every 100 ms or so'
  return [
    result({
      scenario: 'session-window',
      measure: `${setting}, coherence 'bus': time from the return of sessionCache.destroy() on A to the start of the last read of B that served the ended session (0: none)`,
      contenders: ["sessionCache destroy(), coherence 'bus'"],
      unit: 'ms',
      ...spread(windows),
      rounds: windows.length,
      target: undefined,
      context: `p50 ${ms(windows, 50)} ms, p99 ${ms(windows, 99)} ms; ended session served after the return ${stale(bus.rounds)}` +
        (opened.length === 0 ? '; ' : `, in those p50 ${ms(opened, 50)} ms; `) +
        `destroy() took ${took(bus.rounds)}; ${load(bus)}`
    }),
    result({
      scenario: 'session-window',
      measure: "same, coherence 'strict' (the default): reads of B begun after destroy() returned that served the ended session",
      contenders: ["sessionCache destroy(), coherence 'strict'"],
      unit: 'reads',
      ...spread(strict.rounds.map((r) => r.stale)),
      rounds: strict.rounds.length,
      target: { op: '=', value: 0, of: 'max' },
      context: `ended session served after the return ${stale(strict.rounds)}; destroy() took ${took(strict.rounds)}; ${load(strict)}`
    })
  ]
}

export const sessionWindow: Scenario = {
  name: 'session-window',
  async run () {
    try {
      const bus = await rounds('bus')
      const strict = await rounds('strict')
      return figures(bus, strict)
    } finally {
      await sweepAndReport('session-window')
    }
  }
}
