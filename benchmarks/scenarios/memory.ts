// 9. Heap per idle session holding one small entry, with 100,000 sessions in the memory store.
import { fileURLToPath } from 'node:url'
import { runTask, type TaskFunctions } from '../harness/children.js'
import { result } from '../harness/results.js'
import { spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { SessionLevel, MemoryStore } from '../harness/package.js'
import { heapAfterGc } from '../harness/heap.js'

const SESSIONS = 100_000
const ROUNDS = 3
const SKU = 'SKU-0001'

interface Footprint {
  bytesPerSession: number
  sessions: number
}

/**
 * Creates the sessions through the session level's own objects, built as `plugins/session-cache.ts` builds them by
 * default (a rolling MemoryStore of maxSessions 100,000, ttl 30 min, 100 entries per session): the same store, the
 * same record shape. Measured from before the store exists, so its preallocated arrays count.
 */
async function footprint (): Promise<Footprint> {
  const before = heapAfterGc()
  const ttl = 30 * 60_000
  const store = new MemoryStore({ max: SESSIONS, ttl, rolling: true, onEvict: () => { level.stats.evictions++ } })
  const level: InstanceType<typeof SessionLevel> = new SessionLevel({ ttl, maxEntriesPerSession: 100, store })
  for (let i = 0; i < SESSIONS; i++) {
    // One request of a new visitor: no cookie presented, one write creates the session.
    await level.open(() => undefined).set('cart', { sku: SKU, quantity: 1 + (i % 5) })
  }
  const after = heapAfterGc()
  if (store.size !== SESSIONS) throw new Error(`expected ${SESSIONS} sessions, the store holds ${store.size}`)
  return { bytesPerSession: (after - before) / SESSIONS, sessions: store.size }
}

export const tasks: TaskFunctions = { footprint }

export const memory: Scenario = {
  name: 'memory',
  async run () {
    const rounds: Footprint[] = []
    for (let round = 0; round < ROUNDS; round++) {
      rounds.push(await runTask<Footprint>(fileURLToPath(import.meta.url), 'footprint', ['--expose-gc']))
    }
    return [result({
      scenario: 'memory',
      measure: `heap per idle session with one small entry, ${SESSIONS.toLocaleString('en')} sessions, after GC`,
      contenders: ['sessionCache (memory store)'],
      unit: 'bytes per session',
      ...spread(rounds.map((r) => r.bytesPerSession)),
      rounds: rounds.length,
      target: { op: '<=', value: 1024 },
      context: `${rounds[0]?.sessions ?? 0} sessions held; each round a fresh process`
    })]
  }
}
