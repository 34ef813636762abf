import { setTimeout as sleep } from 'node:timers/promises'

/**
 * A database stand-in that costs what a real one costs under load: each query takes `latencyMs` AND holds one of
 * `poolSize` connections meanwhile, so it serves at most poolSize ÷ latency queries per second. A loader that only
 * slept would be free under concurrency, and a cache compared against it would seem to gain nothing.
 */
export class SimulatedDatabase {
  /** Queries answered so far. */
  queries = 0
  private busy = 0
  private readonly waiting: Array<() => void> = []

  constructor (readonly latencyMs: number, readonly poolSize = 10) {}

  async query<T> (answer: () => T): Promise<T> {
    if (this.busy < this.poolSize) this.busy++
    else await new Promise<void>((resolve) => { this.waiting.push(resolve) })
    try {
      await sleep(this.latencyMs)
      this.queries++
      return answer()
    } finally {
      // The connection passes straight to the next waiter; `busy` only drops when nobody waits.
      const next = this.waiting.shift()
      if (next !== undefined) next()
      else this.busy--
    }
  }
}
