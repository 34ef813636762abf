import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

export const REDIS_URL = (process.env.REDIS_URL ?? 'redis://127.0.0.1:6379') as `redis://${string}`

/**
 * A client of the test Redis, closed with the test. Outside CI a missing Redis skips the test with the reason;
 * in CI it fails the run, because the Redis guarantees must be proven there.
 */
export async function redisFor (t: Test): Promise<Redis | undefined> {
  const client = new Redis(REDIS_URL, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
  try {
    await client.connect()
  } catch (error) {
    client.disconnect()
    if (process.env.CI === 'true') throw new Error(`no Redis answers at ${REDIS_URL} (CI must have one)`, { cause: error })
    t.plan(0, `no Redis answers at ${REDIS_URL}; start one to run this test`)
    return undefined
  }
  t.teardown(() => { client.disconnect() })
  return client
}

/**
 * A prefix no other test uses, and a teardown that removes its keys: the prefix's own, and its fences and locks, which
 * live under namespaces of their own (a store-wide fence has no expiry, and would stay in the shared Redis for good).
 */
export function uniquePrefix (t: Test): string {
  const prefix = `fmc-test:${randomUUID()}:`
  t.teardown(async () => {
    const cleaner = new Redis(REDIS_URL)
    for (const pattern of [prefix, `fmc-fence:${prefix}`, `fmc-lock:${prefix}`]) {
      let cursor = '0'
      do {
        const [next, keys] = await cleaner.scan(cursor, 'MATCH', pattern + '*', 'COUNT', 500)
        if (keys.length > 0) await cleaner.unlink(...keys)
        cursor = next
      } while (cursor !== '0')
    }
    cleaner.disconnect()
  })
  return prefix
}

/** A redis-server of the test's own; see `privateRedis`. */
export interface PrivateRedis {
  url: `redis://${string}`
  /** SIGSTOP: connections stay open, nothing answers. */
  pause: () => void
  resume: () => void
  /** SIGKILL, resolved once the process is gone: every connection drops, and what it held is lost. */
  kill: () => Promise<void>
  /** A new server on the same port, empty (there is no persistence), resolved once it answers. */
  restart: () => Promise<void>
  /** FLUSHALL: every key gone while every connection stays, subscriptions included. */
  flushAll: () => Promise<void>
  /** Whether `key` exists in it. */
  exists: (key: string) => Promise<boolean>
  /**
   * Starts a Sentinel (`redis-server --sentinel`) that monitors this server as `mymaster`, stopped with the test, and
   * answers its port once it names the master.
   */
  sentinel: () => Promise<number>
}

/**
 * A redis-server of the test's own on a free port, to pause, kill, restart or flush without touching the shared one.
 * It keeps nothing on disk, so a restart starts empty, as a Redis without persistence does. Without the binary the
 * test skips with the reason outside CI, and fails in CI.
 */
export async function privateRedis (t: Test): Promise<PrivateRedis | undefined> {
  if (spawnSync('redis-server', ['--version']).error !== undefined) {
    if (process.env.CI === 'true') throw new Error('redis-server is not installed (CI must have it)')
    t.plan(0, 'redis-server is not installed; install it to run this test')
    return undefined
  }
  const port = await freePort()
  const url = `redis://127.0.0.1:${port}` as const
  let server: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    server = started
    await answering(url)
  }
  const kill = async (): Promise<void> => {
    const running = server
    server = undefined
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise((resolve) => running.once('exit', resolve))
    running.kill('SIGCONT')
    running.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  await start()
  return {
    url,
    pause: () => { server?.kill('SIGSTOP') },
    resume: () => { server?.kill('SIGCONT') },
    kill,
    restart: async () => { await kill(); await start() },
    flushAll: async () => {
      const admin = new Redis(url, { maxRetriesPerRequest: 0 })
      try {
        await admin.flushall()
      } finally {
        admin.disconnect()
      }
    },
    exists: async (key) => {
      const admin = new Redis(url, { maxRetriesPerRequest: 0 })
      try {
        return await admin.exists(key) === 1
      } finally {
        admin.disconnect()
      }
    },
    sentinel: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'fmc-sentinel-'))
      const sentinelPort = await freePort()
      const config = join(dir, 'sentinel.conf')
      // A sentinel rewrites its configuration file: it must be its own.
      await writeFile(config, `port ${sentinelPort}\nbind 127.0.0.1\nsentinel monitor mymaster 127.0.0.1 ${port} 1\n`)
      const sentinel = spawn('redis-server', [config, '--sentinel'], { stdio: 'ignore' })
      t.teardown(async () => {
        sentinel.kill('SIGKILL')
        await rm(dir, { recursive: true, force: true })
      })
      for (let i = 0; i < 100; i++) {
        const probe = new Redis(sentinelPort, '127.0.0.1', { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
        probe.on('error', () => {}) // refused until the sentinel listens
        const master = await probe.connect().then(async () => await probe.call('SENTINEL', 'get-master-addr-by-name', 'mymaster'), () => null)
        probe.disconnect()
        if (master !== null) return sentinelPort
        await sleep(20)
      }
      throw new Error(`the sentinel on ${sentinelPort} never named its master`)
    }
  }
}

/** Resolves once a server answers at `url` (refused until it listens), within 2 s. */
async function answering (url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    probe.on('error', () => {}) // refused until the server listens: that is what the loop waits for
    try {
      await probe.connect()
      probe.disconnect()
      return
    } catch {
      probe.disconnect()
      await sleep(20)
    }
  }
}

/**
 * A TCP proxy in front of the Redis at `url` that hands on everything Redis sends `ms` later, in order: a Redis far
 * from the instance that uses it. What the instance sends goes through at once. Closed with the test.
 */
export async function distantRedis (t: Test, url: string, ms: number): Promise<`redis://${string}`> {
  const { hostname, port } = new URL(url)
  const sockets = new Set<Socket>()
  const server = createServer((client) => {
    const redis = connect(Number(port), hostname)
    for (const socket of [client, redis]) {
      sockets.add(socket)
      socket.on('error', () => { /* the other side goes too, on close */ })
      socket.on('close', () => {
        sockets.delete(socket)
        client.destroy()
        redis.destroy()
      })
    }
    client.on('data', (chunk) => { redis.write(chunk) })
    // Timers of one duration fire in the order they were set: the bytes arrive in the order Redis sent them.
    redis.on('data', (chunk) => { setTimeout(() => { if (!client.destroyed) client.write(chunk) }, ms) })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return `redis://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** A loopback port free at the time of asking. */
export async function freePort (): Promise<number> {
  // Below the kernel's ephemeral range (32768 and up on Linux): a port the kernel handed out could be handed again, to
  // another test's listen(0) or to an outgoing connection, before the server that was to take it binds it.
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000)
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer()
      server.once('error', () => { resolve(false) })
      server.listen(port, '127.0.0.1', () => { server.close(() => { resolve(true) }) })
    })
    if (free) return port
  }
}

/**
 * The calls of each command Redis ran since the last `CONFIG RESETSTAT` (those a script ran included), without the
 * INFO and CONFIG that ask for them.
 */
export async function commandCalls (client: Redis): Promise<Record<string, number>> {
  const stats = await client.call('INFO', 'commandstats') as string
  const calls = [...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map(([, name, count]) => [name, Number(count)] as const)
  return Object.fromEntries(calls.filter(([name]) => name !== 'info' && name !== 'config'))
}
