// npm run soak: the demo shop under 100 connections of mixed traffic, once with its caches in memory and once in
// Redis. Checks that no response failed and that the heap after a forced GC at the end is within 10 % of the heap
// after warm-up; prints a table and, after a full run (60 s, both stores), writes it to the README's Guarantees.
// SOAK_SECONDS, SOAK_WARMUP_SECONDS and SOAK_STORES (memory,redis) shorten a run; REDIS_URL picks the Redis.
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import autocannon, { type Result } from 'autocannon'
import { startServer, type ServerParams } from './harness/children.js'
import { CLIENT_CORE, pin, pinning } from './harness/cores.js'
import { SHARED_REDIS, namespaceFor, sweepRun, withRedis } from './harness/redis.js'
import { machine, met, printTable, updateReadme, type SoakRun } from './soak/report.js'
import { visit, type Unexpected } from './soak/visit.js'

const CONNECTIONS = 100
const FULL_SECONDS = 60
const STORES = ['memory', 'redis'] as const
type Store = typeof STORES[number]

function seconds (name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number of seconds, not ${process.env[name]}`)
  return value
}

const runSeconds = seconds('SOAK_SECONDS', FULL_SECONDS)
// Long enough for the bounded caches to fill (the verified-cookie memo holds 10,000 cookies: about 45 s of visits on
// a slow machine), so that the heap after warm-up is their steady state and only a leak grows it further.
const warmupSeconds = seconds('SOAK_WARMUP_SECONDS', 60)
const stores = (process.env.SOAK_STORES ?? STORES.join(',')).split(',') as Store[]
if (stores.length === 0 || stores.some((s) => !STORES.includes(s))) throw new Error(`SOAK_STORES must list ${STORES.join(' or ')}`)
const redisUrl = process.env.REDIS_URL ?? SHARED_REDIS
const SHOP = fileURLToPath(new URL('./soak/shop.ts', import.meta.url))

/** Runs the visit on every connection for `duration` s; failed responses go to `unexpected`, errors are returned. */
async function load (url: string, duration: number, unexpected: Unexpected): Promise<{ result: Result, errors: number }> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration, requests: visit(unexpected) })
  return { result, errors: result.errors + result.timeouts }
}

async function soak (store: Store): Promise<SoakRun> {
  // A loopback Redis only (withRedis refuses any other), under a prefix of this run, swept afterwards.
  if (store === 'redis') await withRedis(redisUrl, async (client) => await client.ping())
  const params: ServerParams = store === 'redis' ? { redisUrl, redisPrefix: namespaceFor('shop') } : {}
  const server = await startServer(SHOP, 'shop', params, ['--expose-gc'])
  const unexpected: Unexpected = new Map()
  try {
    console.log(`${store}: ${warmupSeconds} s of warm-up, then ${runSeconds} s…`)
    const warmup = await load(server.url, warmupSeconds, unexpected)
    const heapWarm = await server.heapUsed()
    const cpuBefore = await server.cpuMicros()
    const { result, errors } = await load(server.url, runSeconds, unexpected)
    const cpu = await server.cpuMicros() - cpuBefore
    const heapEnd = await server.heapUsed()
    const failures = [...unexpected].map(([what, count]) => `${count} × ${what}`)
    if (warmup.errors + errors > 0) failures.push(`${warmup.errors + errors} errors or timeouts`)
    for (const failure of failures) console.warn(`${store}: ${failure}`)
    return {
      store,
      requests: result.requests.total,
      requestsPerSecond: result.requests.average,
      p50: result.latency.p50,
      p99: result.latency.p99,
      cpuPerRequest: cpu / result.requests.total,
      failed: [...unexpected.values()].reduce((sum, n) => sum + n, warmup.errors + errors),
      failures,
      heapWarm,
      heapEnd
    }
  } finally {
    await server.stop()
    if (store === 'redis') console.log(`redis: ${await sweepRun(redisUrl)} keys of the run deleted from ${redisUrl}`)
  }
}

pin(process.pid, CLIENT_CORE)
// Other processes on the machine take CPU from the server and stall its event loop: say how busy it was.
const busy = `load average ${(loadavg()[0] as number).toFixed(2)} at the start`
console.log(`${machine()}, ${busy}; ${pinning ? 'load generator on core 0, server on core 1' : 'not pinned (no taskset or one core)'}`)
const runs: SoakRun[] = []
for (const store of stores) runs.push(await soak(store))
printTable(runs)

if (runSeconds === FULL_SECONDS && STORES.every((s) => stores.includes(s))) {
  const setup = `The demo shop ([examples/shop](https://github.com/fastify-multi-cache/fastify-multi-cache/tree/main/examples/shop)) in a child process, ${CONNECTIONS} connections on loopback for ` +
    `${runSeconds} s per store after ${warmupSeconds} s of warm-up${pinning ? ', the server and the load generator on cores of their own' : ''}, ${busy}. ` +
    'Each connection repeats one visit with a cookie jar of its own: the catalog, two product pages and a missing one (404), ' +
    'a cart line added anonymously, a refused login (401) and a login, a cart line, the cart, the orders, the cart emptied, ' +
    'the logout, and the cookie from before the logout replayed (401). Failed: any other status, errors and timeouts. ' +
    'Heap: used after a forced GC in the server, after the warm-up and at the end (target: at most 10 % more).'
  await updateReadme(runs, 'npm run soak', setup)
  console.log('\nwritten: README.md (Guarantees)')
} else {
  console.log(`\nshort run: README.md not written (it takes ${FULL_SECONDS} s on both stores)`)
}
if (!runs.every(met)) process.exitCode = 1
