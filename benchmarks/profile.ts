// `npm run bench:profile [-- <checkout>]`: where the server's CPU goes on a session read and a session read+write.
// The session scenario's server, on the multiCache of the checkout given (this one by default, so that an older
// commit's worktree is profiled the same way), runs under the inspector's sampling profiler at a fixed offered load
// after a warm-up; its self time is summed per part of the stack and divided by the requests served, in µs per
// request. Used for the before/after table of benchmarks/README.md.
// `npm run bench:profile -- --overhead`: the same for a route that touches no cache, on bare Fastify, each of the
// request and session levels alone, both together, and multiCache, at 3,000 req/s over 10 connections; with
// `--servers=a,b`, the scenario's servers named instead (`multiCacheHits,multiCacheHitsAdvisor`: the advisor's cost).
// `npm run bench:profile -- --session-redis [--servers=bare,strict]`: the same for the session-redis scenario's servers
// (bare, one SET, sessionCache on the shared Redis with coherence 'strict', 'bus' and l1: false, @fastify/session on
// connect-redis; or those named), the cart read and written, at 1,000 req/s over 20 connections: where the CPU each
// adds goes. `--functions` also lists the busiest functions of each; `--save=<dir>` keeps each profile there.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
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

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
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

/** A function by its name and where it is: `--functions` lists the busiest of those outside the parts' libraries. */
function functionOf ({ callFrame: { functionName, url, lineNumber } }: ProfileNode): string {
  return `${functionName === '' ? '(anonymous)' : functionName} ${url.replace(/.*\//, '')}:${lineNumber + 1}`
}

/** µs of self time per part of the stack (or per function, `byFunction`), over the whole profile. */
function parts (profile: Profile, byFunction = false): Map<string, number> {
  const parent = new Map<number, ProfileNode>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node)
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const totals = new Map<string, number>()
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i] as number) as ProfileNode
    const part = partOf(node, parent)
    const key = byFunction ? (part === IDLE ? IDLE : functionOf(node)) : part
    totals.set(key, (totals.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  return new Map([...totals].sort(([, a], [, b]) => b - a))
}

/** With `--save=<dir>`, each profile is also written there, for Chrome's DevTools or a script. */
const SAVE = process.argv.find((arg) => arg.startsWith('--save='))?.slice('--save='.length)
/** With `--functions`, the busiest functions are printed after the parts. */
const FUNCTIONS = process.argv.includes('--functions') ? 30 : 0

const SESSION_LEVEL = fileURLToPath(new URL('./scenarios/session-level.ts', import.meta.url))
const HERE = resolve(fileURLToPath(new URL('..', import.meta.url)))

type Started = Awaited<ReturnType<typeof startServer>>
type Load = Parameters<typeof autocannonOptions>[1]
interface Profiled { requests: number, perRequest: Map<string, number>, perFunction: Map<string, number> }

/** Warms `server` (`name`) up at `load`, profiles it for SECONDS at the same load, and stops it: µs per request of each part. */
async function profiled (name: string, server: Started, load: Load): Promise<Profiled> {
  try {
    await autocannon(autocannonOptions(server.url, load, 2))
    await server.startProfile()
    const result = await autocannon(autocannonOptions(server.url, load, SECONDS))
    const profile = await server.stopProfile() as Profile
    if (SAVE !== undefined) writeFileSync(join(SAVE, `${name}-${Date.now()}.cpuprofile`), JSON.stringify(profile))
    const requests = result.requests.total
    const perRequest = (totals: Map<string, number>): Map<string, number> => new Map([...totals].map(([part, µs]) => [part, µs / requests]))
    return { requests, perRequest: perRequest(parts(profile)), perFunction: perRequest(parts(profile, true)) }
  } finally {
    await server.stop()
  }
}

/** `server`'s route profiled at `rate`, each connection with a session of its own, opened first. */
async function profileSessions (name: string, server: Started, method: 'GET' | 'POST', path: string, rate: number): Promise<Profiled> {
  let cookies: string[]
  try {
    cookies = await openSessions(server.url, '/login', CONNECTIONS)
  } catch (error) {
    await server.stop()
    throw error
  }
  return await profiled(name, server, { path, method, connections: CONNECTIONS, rate, cookies })
}

async function profile (root: string, method: 'GET' | 'POST', path: string): Promise<Profiled> {
  return await profileSessions('sessionCache', await startServer(SESSION_LEVEL, 'sessionCache', root === HERE ? {} : { root }), method, path, RATE)
}

const OVERHEAD = fileURLToPath(new URL('./scenarios/overhead.ts', import.meta.url))

/** µs per request of each part of the stack for the overhead scenario's server `name`, on its route. */
async function profileOverhead (name: string): Promise<Profiled> {
  return await profiled(name, await startServer(OVERHEAD, name), { path: '/', connections: 10, rate: 3000 })
}

function print (what: string, { requests, perRequest, perFunction }: Profiled): void {
  const busy = [...perRequest].filter(([part]) => part !== IDLE).reduce((sum, [, µs]) => sum + µs, 0)
  console.log(`\n${what} (${requests} requests): ${busy.toFixed(1)} µs busy per request`)
  for (const [part, µs] of perRequest) console.log(`  ${part.padEnd(50)} ${µs.toFixed(2).padStart(7)}`)
  if (FUNCTIONS === 0) return
  console.log('  busiest functions:')
  for (const [name, µs] of [...perFunction].filter(([name]) => name !== IDLE).slice(0, FUNCTIONS)) console.log(`    ${name.padEnd(60)} ${µs.toFixed(2).padStart(7)}`)
}

pin(process.pid, CLIENT_CORE)
/** `--servers=a,b`: only the servers named, of the scenario's. */
const named = process.argv.find((arg) => arg.startsWith('--servers='))?.slice('--servers='.length).split(',')
if (process.argv.includes('--overhead')) {
  console.log(`overhead: the scenario's route, 3000 req/s for ${SECONDS} s, 10 connections, µs of server CPU per request`)
  // Twice each, in turn and back, so that a slow spell of the machine falls on all of them.
  const names = named ?? ['bare', 'request', 'session', 'requestAndSession', 'multiCache']
  for (const name of [...names, ...names.toReversed()]) {
    print(name, await profileOverhead(name))
  }
  process.exit(0)
}
if (process.argv.includes('--session-redis')) {
  console.log(`session-redis: the cart read and written, 1000 req/s for ${SECONDS} s, ${CONNECTIONS} connections, µs of server CPU per request`)
  const module = fileURLToPath(new URL('./scenarios/session-redis.ts', import.meta.url))
  const names = named ?? ['bare', 'oneSet', 'strict', 'bus', 'redisOnly', 'fastifySession']
  for (const name of [...names, ...names.toReversed()]) {
    const server = await startServer(module, name, { prefix: namespaceFor(`profile-${name}`) })
    print(name, await profileSessions(name, server, 'POST', '/cart/views', 1000))
  }
  process.exit(0)
}
const root = resolve(process.argv.slice(2).find((arg) => !arg.startsWith('--')) ?? HERE)
const commit = execFileSync('git', ['-C', root, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim()
console.log(`checkout ${root} (${commit}); ${RATE} req/s for ${SECONDS} s, ${CONNECTIONS} connections, µs of server CPU per request`)
for (const [method, path, what] of [['GET', '/cart', 'read'], ['POST', '/cart/views', 'read+write']] as const) {
  print(`session ${what}`, await profile(root, method, path))
}
