/** The Redis the scenarios use: the shared one on loopback, or a `redis-server` of their own. */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { freePort } from '../../test/helpers/redis.js'

/** The shared Redis of the machine (loopback only). */
export const SHARED_REDIS = 'redis://127.0.0.1:6379'

/** Host and port of a loopback Redis URL, for clients configured by options (bentocache's drivers). */
export function redisAddress (url: string): { host: string, port: number } {
  const { hostname, port } = new URL(url)
  return { host: hostname, port: Number(port) }
}

/**
 * This run's mark in every key it writes, so that runs and other users of the shared Redis never meet. The processes
 * a run forks (servers, tasks) inherit it, so that the run's sweep finds their keys too (fences included).
 */
const RUN = process.env.FMC_BENCH_RUN ?? randomBytes(4).toString('hex')
process.env.FMC_BENCH_RUN = RUN

/** A key prefix of this run that no other contender shares: `fmc-bench:<run>:<contender>:`. */
export function namespaceFor (contender: string): string {
  return `fmc-bench:${RUN}:${contender}:`
}

/** Opens a client (loopback only), runs `use` with it and closes it. */
export async function withRedis<T> (url: string, use: (client: Redis) => Promise<T>): Promise<T> {
  if (!url.startsWith('redis://127.0.0.1:')) throw new Error(`benchmarks only talk to a loopback Redis, not ${url}`)
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  client.on('error', () => { /* the command or connect() that failed reports it */ })
  try {
    await client.connect()
    return await use(client)
  } finally {
    client.disconnect()
  }
}

/**
 * Deletes every key this run left in `url` (lock keys included, which live under `fmc-lock:` + prefix) and returns
 * how many there were: 0 when every contender cleaned up after itself, as each is meant to.
 */
export async function sweepRun (url = SHARED_REDIS): Promise<number> {
  return await deleteMatching(`*fmc-bench:${RUN}:*`, url)
}

/**
 * Deletes every key of `url` that matches `pattern` (a `SCAN` pattern, such as a contender's prefix and `*`) and
 * returns how many there were: for servers whose library has no way to empty its namespace.
 */
export async function deleteMatching (pattern: string, url = SHARED_REDIS): Promise<number> {
  // A server process has a run mark of its own: it is given its prefix by the scenario, under this mark.
  if (!pattern.includes('fmc-bench:')) throw new Error(`benchmarks delete only keys of their own, not ${pattern}`)
  return await withRedis(url, async (client) => {
    let cursor = '0'
    let found = 0
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
      if (keys.length > 0) await client.unlink(...keys)
      found += keys.length
      cursor = next
    } while (cursor !== '0')
    return found
  })
}

/** Sweeps this run's keys and says so when a contender left some behind. */
export async function sweepAndReport (scenario: string, url = SHARED_REDIS): Promise<void> {
  const left = await sweepRun(url)
  if (left > 0) console.warn(`${scenario}: ${left} keys of this run were left in ${url}, now deleted`)
}

export interface RedisServer {
  readonly url: string
  /** SIGSTOP: the server keeps its connections open and answers nothing, as a Redis stalled by a long command or a VM pause. */
  pause (): void
  /** SIGCONT. */
  resume (): void
  /** Ends the server (paused or not) and waits for it to exit. */
  stop (): Promise<void>
}

/**
 * Starts a `redis-server` of the scenario's own on a free loopback port, persisting nothing, and waits until it
 * answers. It is killed by `stop()`, and in any case when this process exits.
 */
export async function startRedisServer (): Promise<RedisServer> {
  const port = await freePort()
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmpdir()
  ], { stdio: 'ignore' })
  const kill = (): void => { if (child.exitCode === null) child.kill('SIGKILL') }
  process.once('exit', kill)
  const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
  const url = `redis://127.0.0.1:${port}`
  const server: RedisServer = {
    url,
    pause: () => { child.kill('SIGSTOP') },
    resume: () => { child.kill('SIGCONT') },
    stop: async () => {
      process.off('exit', kill)
      if (child.exitCode !== null || child.signalCode !== null) return
      // A stopped process only acts on SIGTERM once continued.
      child.kill('SIGCONT')
      child.kill('SIGTERM')
      const late = setTimeout(kill, 2000)
      await exited
      clearTimeout(late)
    }
  }
  const deadline = Date.now() + 5000
  for (;;) {
    try {
      await withRedis(url, async (client) => await client.ping())
      return server
    } catch (error) {
      if (Date.now() > deadline || child.exitCode !== null) {
        await server.stop()
        throw new Error(`redis-server on port ${port} did not answer: ${error instanceof Error ? error.message : String(error)}`)
      }
      await sleep(50)
    }
  }
}
