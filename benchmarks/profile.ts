// `npm run bench:profile [-- <checkout>]`: where the server's CPU goes on a session read and a session read+write.
// The session scenario's server, on the multiCache of the checkout given (this one by default, so that an older
// commit's worktree is profiled the same way), runs under the inspector's sampling profiler at a fixed offered load
// after a warm-up; its self time is summed per part of the stack and divided by the requests served, in µs per
// request. Used for the before/after table of benchmarks/README.md.
// `npm run bench:profile -- --overhead`: the same for a route that touches no cache, on bare Fastify, each of the
// request and session levels alone, both together, and multiCache, at 3,000 req/s over 10 connections.
// `npm run bench:profile -- --session-redis`: the same for the session-redis scenario's servers (bare, sessionCache on
// the shared Redis with coherence 'strict', 'bus' and l1: false, @fastify/session on connect-redis), the cart read and
// written, at 1,000 req/s over 20 connections: where the CPU each adds goes.
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { startServer } from './harness/children.js'
import { CLIENT_CORE, pin } from './harness/cores.js'
import { openSessions } from './harness/fixtures.js'
import { autocannonOptions } from './harness/http.js'
import { namespaceFor } from './harness/redis.js'

const RATE = 2000
const SECONDS = 10
const CONNECTIONS = 20

interface ProfileNode { id: number, callFrame: { functionName: string, url: string }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const IDLE = 'idle and GC'

/**
 * Where a sample's time goes: idle; hashing (node's crypto, whoever called it: the cookie's HMAC and the id's
 * SHA-256); node and V8 themselves (http, net, streams, the socket writes); otherwise the package whose code ran.
 */
function partOf (node: ProfileNode, parent: Map<number, ProfileNode>): string {
  const { url, functionName } = node.callFrame
  if (url === '' && ['(idle)', '(program)', '(garbage collector)'].includes(functionName)) return IDLE
  for (let frame: ProfileNode | undefined = node; frame !== undefined; frame = parent.get(frame.id)) {
    const where = frame.callFrame.url
    if (where.includes('internal/crypto')) return 'crypto: HMAC of the cookie, SHA-256 of the id'
    if (where !== '' && !where.startsWith('node:')) break
  }
  if (url === '' || url.startsWith('node:')) return 'node and V8 (http, net, streams, socket writes)'
  if (!url.includes('node_modules')) return 'fastify-multi-cache and the route'
  return url.replace(/.*node_modules\/((@[^/]+\/)?[^/]+).*/, '$1')
}

/** µs of self time per part of the stack, over the whole profile. */
function parts (profile: Profile): Map<string, number> {
  const parent = new Map<number, ProfileNode>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node)
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const totals = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const part = partOf(byId.get(profile.samples[i] as number) as ProfileNode, parent)
    totals.set(part, (totals.get(part) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  return new Map([...totals].sort(([, a], [, b]) => b - a))
}

const SESSION_LEVEL = fileURLToPath(new URL('./scenarios/session-level.ts', import.meta.url))
const HERE = resolve(fileURLToPath(new URL('..', import.meta.url)))

type Started = Awaited<ReturnType<typeof startServer>>
type Load = Parameters<typeof autocannonOptions>[1]
interface Profiled { requests: number, perRequest: Map<string, number> }

/** Warms `server` up at `load`, profiles it for SECONDS at the same load, and stops it: µs per request of each part. */
async function profiled (server: Started, load: Load): Promise<Profiled> {
  try {
    await autocannon(autocannonOptions(server.url, load, 2))
    await server.startProfile()
    const result = await autocannon(autocannonOptions(server.url, load, SECONDS))
    const profile = await server.stopProfile() as Profile
    const requests = result.requests.total
    return { requests, perRequest: new Map([...parts(profile)].map(([part, µs]) => [part, µs / requests])) }
  } finally {
    await server.stop()
  }
}

/** `server`'s route profiled at `rate`, each connection with a session of its own, opened first. */
async function profileSessions (server: Started, method: 'GET' | 'POST', path: string, rate: number): Promise<Profiled> {
  let cookies: string[]
  try {
    cookies = await openSessions(server.url, '/login', CONNECTIONS)
  } catch (error) {
    await server.stop()
    throw error
  }
  return await profiled(server, { path, method, connections: CONNECTIONS, rate, cookies })
}

async function profile (root: string, method: 'GET' | 'POST', path: string): Promise<Profiled> {
  return await profileSessions(await startServer(SESSION_LEVEL, 'sessionCache', root === HERE ? {} : { root }), method, path, RATE)
}

const OVERHEAD = fileURLToPath(new URL('./scenarios/overhead.ts', import.meta.url))

/** µs per request of each part of the stack for the overhead scenario's server `name`, on its route that touches no cache. */
async function profileOverhead (name: string): Promise<Profiled> {
  return await profiled(await startServer(OVERHEAD, name), { path: '/', connections: 10, rate: 3000 })
}

function print (what: string, requests: number, perRequest: Map<string, number>): void {
  const busy = [...perRequest].filter(([part]) => part !== IDLE).reduce((sum, [, µs]) => sum + µs, 0)
  console.log(`\n${what} (${requests} requests): ${busy.toFixed(1)} µs busy per request`)
  for (const [part, µs] of perRequest) console.log(`  ${part.padEnd(50)} ${µs.toFixed(2).padStart(7)}`)
}

pin(process.pid, CLIENT_CORE)
if (process.argv.includes('--overhead')) {
  console.log(`overhead: a route that touches no cache, 3000 req/s for ${SECONDS} s, 10 connections, µs of server CPU per request`)
  // Twice each, in turn and back, so that a slow spell of the machine falls on all of them.
  const names = ['bare', 'request', 'session', 'requestAndSession', 'multiCache']
  for (const name of [...names, ...names.toReversed()]) {
    const { requests, perRequest } = await profileOverhead(name)
    print(name, requests, perRequest)
  }
  process.exit(0)
}
if (process.argv.includes('--session-redis')) {
  console.log(`session-redis: the cart read and written, 1000 req/s for ${SECONDS} s, ${CONNECTIONS} connections, µs of server CPU per request`)
  const module = fileURLToPath(new URL('./scenarios/session-redis.ts', import.meta.url))
  const names = ['bare', 'strict', 'bus', 'redisOnly', 'fastifySession']
  for (const name of [...names, ...names.toReversed()]) {
    const server = await startServer(module, name, { prefix: namespaceFor(`profile-${name}`) })
    const { requests, perRequest } = await profileSessions(server, 'POST', '/cart/views', 1000)
    print(name, requests, perRequest)
  }
  process.exit(0)
}
const root = resolve(process.argv[2] ?? HERE)
const commit = execFileSync('git', ['-C', root, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim()
console.log(`checkout ${root} (${commit}); ${RATE} req/s for ${SECONDS} s, ${CONNECTIONS} connections, µs of server CPU per request`)
for (const [method, path, what] of [['GET', '/cart', 'read'], ['POST', '/cart/views', 'read+write']] as const) {
  const { requests, perRequest } = await profile(root, method, path)
  print(`session ${what}`, requests, perRequest)
}
