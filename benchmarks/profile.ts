// `npm run bench:profile [-- <checkout>]`: where the server's CPU goes on a session read and a session read+write.
// A server of the checkout given (this one by default, so an older commit's worktree can be profiled the same way)
// is profiled (the inspector's sampling profiler) at a fixed offered load, after a warm-up; its self time is summed per part of the stack and divided
// by the requests served, in µs per request. Used for the before/after table of benchmarks/README.md.
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { Session } from 'node:inspector/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import autocannon from 'autocannon'
import type { FastifyInstance } from 'fastify'
import { SECRET, openSessions } from './harness/fixtures.js'
import { CLIENT_CORE, SERVER_CORE, pin, pinning } from './harness/cores.js'
import { autocannonOptions } from './harness/http.js'
import { cartRoutes } from './scenarios/session-level.js'

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

/** The server, in the child: the session scenario's routes on the checkout's own multiCache. */
async function serve (root: string): Promise<void> {
  const { default: Fastify } = await import('fastify')
  const { default: multiCache } = await import(pathToFileURL(join(root, 'index.ts')).href) as { default: (app: FastifyInstance, options: unknown) => Promise<void> }
  const app = Fastify()
  await app.register(multiCache, { session: { secret: SECRET } })
  cartRoutes(app)
  await app.listen({ host: '127.0.0.1', port: 0 })
  // Only the requests are profiled: start-up (compiling the TypeScript, importing) would weigh on every figure.
  const inspector = new Session()
  inspector.connect()
  await inspector.post('Profiler.enable')
  process.on('message', (message) => {
    if (message === 'start') {
      inspector.post('Profiler.start').then(() => process.send?.('started'), (error: unknown) => { throw error })
    } else if (message === 'stop') {
      inspector.post('Profiler.stop').then(({ profile }) => process.send?.({ profile }), (error: unknown) => { throw error })
    }
  })
  process.send?.({ port: (app.server.address() as { port: number }).port })
  process.once('disconnect', () => { process.exit(0) })
}

/** The child's next message. */
async function reply (child: ChildProcess): Promise<unknown> {
  return await new Promise((resolve, reject) => {
    child.once('message', resolve)
    child.once('exit', (code) => { reject(new Error(`the server exited with ${String(code)}`)) })
  })
}

async function profile (root: string, method: 'GET' | 'POST', path: string): Promise<{ requests: number, perRequest: Map<string, number> }> {
  const child = fork(fileURLToPath(import.meta.url), ['serve', root], { execArgv: ['--import', 'tsx'], cwd: root })
  try {
    const { port } = await reply(child) as { port: number }
    if (pinning) {
      pin(child.pid, SERVER_CORE)
      pin(process.pid, CLIENT_CORE)
    }
    const url = `http://127.0.0.1:${port}`
    const cookies = await openSessions(url, '/login', CONNECTIONS)
    const load = { path, method, connections: CONNECTIONS, rate: RATE, cookies }
    await autocannon(autocannonOptions(url, load, 2))
    child.send('start')
    await reply(child)
    const result = await autocannon(autocannonOptions(url, load, SECONDS))
    child.send('stop')
    const { profile } = await reply(child) as { profile: Profile }
    const requests = result.requests.total
    return { requests, perRequest: new Map([...parts(profile)].map(([part, µs]) => [part, µs / requests])) }
  } finally {
    child.kill()
  }
}

const [mode, rootArgument] = process.argv.slice(2)
if (mode === 'serve') {
  await serve(rootArgument as string)
} else {
  const root = resolve(mode ?? fileURLToPath(new URL('..', import.meta.url)))
  const commit = execFileSync('git', ['-C', root, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim()
  console.log(`checkout ${root} (${commit}); ${RATE} req/s for ${SECONDS} s, ${CONNECTIONS} connections, µs of server CPU per request`)
  for (const [method, path, what] of [['GET', '/cart', 'read'], ['POST', '/cart/views', 'read+write']] as const) {
    const { requests, perRequest } = await profile(root, method, path)
    const busy = [...perRequest].filter(([part]) => part !== IDLE).reduce((sum, [, µs]) => sum + µs, 0)
    console.log(`\nsession ${what} (${requests} requests): ${busy.toFixed(1)} µs busy per request`)
    for (const [part, µs] of perRequest) console.log(`  ${part.padEnd(50)} ${µs.toFixed(2).padStart(7)}`)
  }
}
