import { StoreError } from './errors.js'

/**
 * The operations of one backend (a Redis connection, a Keyv) that ran out of their time budget and still wait for its
 * answer. The budget frees the caller, not the operation: a client such as ioredis keeps each one, with its arguments
 * and all its callbacks hold, until the backend answers, and a backend stalled under load (a paused Redis with the
 * circuit breaker off) grew the heap with the load, to about 2 GB after some 240,000 operations in a red-team run.
 * Past `max` of them, an operation fails at once, as it would have after its budget.
 */
export class Overdue {
  /** Overdue now: counted when the budget runs out, no longer once the backend answered. */
  count = 0
  constructor (readonly max = MAX_OVERDUE) {}
}

/** Operations of one backend that may wait past their budget, at most: a few MB of what they hold. */
export const MAX_OVERDUE = 1000

/**
 * Runs a remote store operation within a time budget, so that a stalled backend costs a caller `ms` at most
 * instead of hanging it. The operation itself is not cancelled: a write may still land later. With `overdue`, the
 * operations of its backend that ran out of time and still wait are counted, and past its `max` this one fails at once.
 *
 * The budget measures the backend, not this process: when the timer fires late because the event loop was busy (a
 * long GC pause, a CPU-bound request), the answer may already be waiting to be read. The timeout then waits one turn
 * of the event loop, in which that answer is read, before it counts as one.
 */
export async function withBudget<T> (operation: string, ms: number, run: () => Promise<T>, overdue?: Overdue): Promise<T> {
  if (overdue !== undefined && overdue.count >= overdue.max) {
    throw new StoreError(operation, `${overdue.count} operations that ran out of their time budget still wait for the store to answer`)
  }
  let timer: NodeJS.Timeout | undefined
  let turn: NodeJS.Immediate | undefined
  let running: Promise<T> | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      turn = setImmediate(() => {
        if (overdue !== undefined && running !== undefined) {
          overdue.count++
          const answered = (): void => { overdue.count-- }
          running.then(answered, answered)
        }
        reject(new StoreError(operation, `no answer within ${ms} ms`))
      })
    }, ms)
  })
  try {
    running = run()
    return await Promise.race([running, timeout])
  } catch (error) {
    if (error instanceof StoreError) throw error
    throw new StoreError(operation, error instanceof Error ? error.message : String(error), { cause: error })
  } finally {
    clearTimeout(timer)
    clearImmediate(turn)
  }
}
