import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster, Redis } from 'ioredis'
import type { Test } from 'tap'
import { freePort } from './redis.js'

/** One redis-server of a test's cluster. */
export interface ClusterNode {
  port: number
  url: `redis://${string}`
}

/** A Redis Cluster of a test's or a benchmark's own; see `startCluster`. */
export interface PrivateCluster {
  /** Every node, masters and replicas, in the order they were started. */
  readonly nodes: readonly ClusterNode[]
  /** The option form the plugins take: `redis+cluster://127.0.0.1:<port>,…`, every node. */
  readonly url: `redis+cluster://${string}`
  /** An ioredis `Cluster` client of it, closed with the test. */
  client: (options?: Record<string, unknown>) => Cluster
  /** The ports of the masters now, as the cluster itself says. */
  masters: () => Promise<number[]>
  /** Every key of every master that matches `pattern` (a `SCAN MATCH` glob), by master port. */
  keysByMaster: (pattern: string) => Promise<Map<number, string[]>>
  /** The port of the master that serves `key` now. */
  masterOf: (key: string) => Promise<number>
  /** Resolves once the replicas of the master on `port` have every write it took, as a replica must to replace it. */
  synced: (port: number) => Promise<void>
  /** SIGKILL of the node on `port`, resolved once its process is gone. */
  kill: (port: number) => Promise<void>
  /** SIGSTOP of the node on `port`: connections stay open, nothing answers (past 2 s, its replica replaces it). */
  pause: (port: number) => void
  resume: (port: number) => void
  /** Resolves once every slot is served again (`cluster_state:ok` on every node still running), within `ms`. */
  healthy: (ms?: number) => Promise<void>
  /** Kills every node and removes their files; the clients it made are closed first. */
  stop: () => Promise<void>
}

/**
 * A Redis Cluster of three masters with one replica each, on free loopback ports, started for the test and torn down
 * with it (see `startCluster`). Without `redis-server` and `redis-cli` the test skips with the reason outside CI, and
 * fails in CI.
 */
export async function privateCluster (t: Test): Promise<PrivateCluster | undefined> {
  const missing = ['redis-server', 'redis-cli'].filter((binary) => spawnSync(binary, ['--version']).error !== undefined)
  if (missing.length > 0) {
    if (process.env.CI === 'true') throw new Error(`${missing.join(' and ')} not installed (CI must have them)`)
    t.plan(0, `${missing.join(' and ')} not installed; install redis-server and redis-tools to run this test`)
    return undefined
  }
  const cluster = await startCluster()
  t.teardown(cluster.stop)
  return cluster
}

/**
 * Starts a Redis Cluster of three masters with one replica each on free loopback ports (about 2 s):
 * `--cluster-node-timeout 2000`, so that a killed master is replaced by its replica within a few seconds, and no
 * persistence. Stopped by `stop()`, and killed in any case when this process exits.
 */
export async function startCluster (): Promise<PrivateCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'fmc-cluster-'))
  const servers = new Map<number, ChildProcess>()
  const clients: Array<Cluster | Redis> = []
  const kill = async (port: number): Promise<void> => {
    const server = servers.get(port)
    servers.delete(port)
    if (server === undefined || server.exitCode !== null || server.signalCode !== null) return
    const exited = new Promise((resolve) => server.once('exit', resolve))
    server.kill('SIGCONT')
    server.kill('SIGKILL')
    await exited
  }
  const stop = async (): Promise<void> => {
    process.off('exit', killAll)
    for (const client of clients) client.disconnect()
    await Promise.all([...servers.keys()].map(kill))
    rmSync(dir, { recursive: true, force: true })
  }
  const killAll = (): void => { for (const server of servers.values()) server.kill('SIGKILL') }
  process.once('exit', killAll)
  const admin = (port: number): Redis => {
    const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    client.on('error', () => {})
    return client
  }
  const ask = async <T>(port: number, ...command: [string, ...Array<string | number>]): Promise<T> => {
    const client = admin(port)
    try {
      await client.connect()
      return await client.call(...command) as T
    } finally {
      client.disconnect()
    }
  }
  // A node whose port was taken between the asking and the binding exits at once: it starts again on other ports.
  const startNode = async (tries = 5): Promise<ClusterNode> => {
    // The cluster bus gets a port of its own: port + 10000 may be taken, or past 65535.
    const [port, bus] = [await freePort(), await freePort()]
    const server = spawn('redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(bus),
      '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', '2000', '--dir', dir,
      '--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0'
    ], { stdio: 'ignore' })
    servers.set(port, server)
    // Six redis-servers start at once beside the rest of the suite on two cores: one took over 5 s in a full run.
    // Asked for its process id: another server on the port would answer a PING.
    await until(async () => server.exitCode !== null ||
      (await ask<string>(port, 'INFO', 'server')).includes(`process_id:${String(server.pid)}\r\n`), 20_000, `node ${port} to answer`)
    if (server.exitCode === null) return { port, url: `redis://127.0.0.1:${port}` }
    servers.delete(port)
    if (tries === 1) throw new Error('the test cluster: every try to start a node exited at once (its ports taken?)')
    return await startNode(tries - 1)
  }
  const nodes = await Promise.all(Array.from({ length: 6 }, async () => await startNode()))
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map(({ port }) => `127.0.0.1:${port}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8' })
  if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`)

  const running = (): number[] => [...servers.keys()]
  const masters = async (): Promise<number[]> => {
    for (const port of running()) {
      try {
        const shards = await ask<Array<[number, number, [string, number]]>>(port, 'CLUSTER', 'SLOTS')
        return [...new Set(shards.map((shard) => shard[2][1]))].filter((master) => servers.has(master))
      } catch { /* that node is not answering: ask the next */ }
    }
    return []
  }
  const healthy = async (ms = 15_000): Promise<void> => {
    await until(async () => {
      const states = await Promise.all(running().map(async (port) => await ask<string>(port, 'CLUSTER', 'INFO').catch(() => '')))
      return states.every((info) => info.includes('cluster_state:ok')) && (await masters()).length === 3
    }, ms, 'every slot to be served')
  }
  await healthy()
  // A replica that has not synced yet cannot replace its master.
  await until(async () => {
    const infos = await Promise.all(running().map(async (port) => await ask<string>(port, 'INFO', 'replication')))
    return infos.filter((info) => info.includes('role:slave')).every((info) => info.includes('master_link_status:up'))
  }, 10_000, 'every replica to sync')
  return {
    nodes,
    url: `redis+cluster://${nodes.map(({ port }) => `127.0.0.1:${port}`).join(',')}`,
    client: (options = {}) => {
      const client = new Cluster(nodes.map(({ port }) => ({ host: '127.0.0.1', port })), options)
      client.on('error', () => {})
      clients.push(client)
      return client
    },
    masters,
    keysByMaster: async (pattern) => {
      const found = new Map<number, string[]>()
      for (const port of await masters()) {
        const client = admin(port)
        await client.connect()
        const keys: string[] = []
        let cursor = '0'
        do {
          const [next, page] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000)
          keys.push(...page)
          cursor = next
        } while (cursor !== '0')
        client.disconnect()
        found.set(port, keys)
      }
      return found
    },
    masterOf: async (key) => {
      const slot = await ask<number>(running()[0] as number, 'CLUSTER', 'KEYSLOT', key)
      for (const port of running()) {
        const shards = await ask<Array<[number, number, [string, number]]>>(port, 'CLUSTER', 'SLOTS').catch(() => undefined)
        const shard = shards?.find(([from, to]) => slot >= from && slot <= to)
        if (shard !== undefined) return shard[2][1]
      }
      throw new Error(`no master serves ${key}`)
    },
    synced: async (port) => {
      await until(async () => {
        const info = await ask<string>(port, 'INFO', 'replication')
        const offset = /master_repl_offset:(\d+)/.exec(info)?.[1]
        const replicas = [...info.matchAll(/slave\d+:.*offset=(\d+)/g)].map((match) => match[1])
        return replicas.length > 0 && replicas.every((replica) => replica === offset)
      }, 5000, `the replicas of ${port} to sync`)
    },
    kill,
    pause: (port) => { servers.get(port)?.kill('SIGSTOP') },
    resume: (port) => { servers.get(port)?.kill('SIGCONT') },
    healthy,
    stop
  }
}

async function until (check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return
    await sleep(50)
  }
  throw new Error(`the test cluster: waited ${ms} ms for ${what}`)
}
