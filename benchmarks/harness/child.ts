// The entry of every child process the benchmarks start: `serve <module> <app> <params>` builds a server the module
// exports (given the JSON params), listens on loopback and answers the parent's questions (CPU, heap, profiles);
// `task <module> <task>` runs an exported task once and sends back what it returns; `work <module> <worker>` builds an
// exported worker's state and answers each `measure` of the parent with a measurement of it.
import { Session } from 'node:inspector/promises'
import type { AddressInfo } from 'node:net'
import { pathToFileURL } from 'node:url'
import type { ServerFactories, ServerParams, TaskFunctions, WorkerFactories } from './children.js'
import { heapAfterGc } from './heap.js'

const [mode, modulePath, name, params = '{}'] = process.argv.slice(2)
if (mode === undefined || modulePath === undefined || name === undefined) throw new Error('usage: child.ts serve|task|work <module> <name>')
const exported = await import(pathToFileURL(modulePath).href) as { servers?: ServerFactories, tasks?: TaskFunctions, workers?: WorkerFactories }
const send = (message: unknown): void => { process.send?.(message) }

if (mode === 'serve') {
  const build = exported.servers?.[name]
  if (build === undefined) throw new Error(`${modulePath} exports no server "${name}"`)
  const app = await build(JSON.parse(params) as ServerParams)
  // A failed response fails the run (see `measureHttp`): its cause is said here, since the servers log nothing. A
  // server its builder made ready already (to fill its cache) takes no more hooks: its failures go without their cause.
  try {
    app.addHook('onError', async (request, _reply, error) => { console.error(`server "${name}": ${request.method} ${request.url}: ${error.stack ?? error.message}`) })
  } catch {}
  await app.listen({ host: '127.0.0.1', port: 0 })
  send({ port: (app.server.address() as AddressInfo).port })
  // CPU time this process has used, so the parent can tell what a request costs the server apart from the client;
  // and, when started with --expose-gc, the heap still in use after a full collection (what a leak would grow).
  let profiler: Session | undefined
  process.on('message', (message) => {
    if (message === 'profile-start') {
      // The inspector's sampling profiler, over what the server does from now on (start-up left out).
      profiler = new Session()
      profiler.connect()
      profiler.post('Profiler.enable').then(async () => await profiler?.post('Profiler.start')).then(() => { send({ profiling: true }) }, (error: unknown) => { throw error })
    } else if (message === 'profile-stop') {
      profiler?.post('Profiler.stop').then(({ profile }) => { send({ profile }) }, (error: unknown) => { throw error })
    } else if (message === 'cpu') {
      const { user, system } = process.cpuUsage()
      send({ cpuMicros: user + system })
    } else if (message === 'heap') {
      send({ heapUsed: heapAfterGc() })
    }
  })
  // The parent going away (or stopping this child) closes the server.
  process.once('disconnect', () => { app.close().finally(() => process.exit(0)).catch(() => process.exit(1)) })
} else if (mode === 'work') {
  const build = exported.workers?.[name]
  if (build === undefined) throw new Error(`${modulePath} exports no worker "${name}"`)
  const measure = await build()
  send({ ready: true })
  // One at a time: the parent waits for each answer before it asks again.
  process.on('message', (message) => {
    if (message === 'measure') measure().then((result) => { send({ result }) }, (error: unknown) => { throw error })
  })
  process.once('disconnect', () => { process.exit(0) })
} else {
  const task = exported.tasks?.[name]
  if (task === undefined) throw new Error(`${modulePath} exports no task "${name}"`)
  send({ result: await task() })
  process.disconnect()
}
