import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
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

/** A prefix no other test uses, and a teardown that removes its keys. */
export function uniquePrefix (t: Test): string {
  const prefix = `fmc-test:${randomUUID()}:`
  t.teardown(async () => {
    const cleaner = new Redis(REDIS_URL)
    let cursor = '0'
    do {
      const [next, keys] = await cleaner.scan(cursor, 'MATCH', prefix + '*', 'COUNT', 500)
      if (keys.length > 0) await cleaner.unlink(...keys)
      cursor = next
    } while (cursor !== '0')
    cleaner.disconnect()
  })
  return prefix
}

/**
 * A redis-server of the test's own on a free port, to pause and kill without touching the shared one. Without the
 * binary the test skips with the reason outside CI, and fails in CI.
 */
export async function privateRedis (t: Test): Promise<{ url: `redis://${string}`, pause: () => void, resume: () => void } | undefined> {
  if (spawnSync('redis-server', ['--version']).error !== undefined) {
    if (process.env.CI === 'true') throw new Error('redis-server is not installed (CI must have it)')
    t.plan(0, 'redis-server is not installed; install it to run this test')
    return undefined
  }
  const port = await freePort()
  const server: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(() => { server.kill('SIGCONT'); server.kill('SIGKILL') })
  const url = `redis://127.0.0.1:${port}` as const
  for (let i = 0; i < 100; i++) {
    const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    probe.on('error', () => {}) // refused until the server listens: that is what the loop waits for
    try {
      await probe.connect()
      probe.disconnect()
      break
    } catch {
      probe.disconnect()
      await sleep(20)
    }
  }
  return { url, pause: () => { server.kill('SIGSTOP') }, resume: () => { server.kill('SIGCONT') } }
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

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
    server.on('error', reject)
  })
}
