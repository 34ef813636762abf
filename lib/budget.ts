import { StoreError } from './errors.js'

/**
 * Runs a remote store operation within a time budget, so that a stalled backend costs a caller `ms` at most
 * instead of hanging it. The operation itself is not cancelled: a write may still land later.
 *
 * The budget measures the backend, not this process: when the timer fires late because the event loop was busy (a
 * long GC pause, a CPU-bound request), the answer may already be waiting to be read. The timeout then waits one turn
 * of the event loop, in which that answer is read, before it counts as one.
 */
export async function withBudget<T> (operation: string, ms: number, run: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let turn: NodeJS.Immediate | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      turn = setImmediate(() => { reject(new StoreError(operation, `no answer within ${ms} ms`)) })
    }, ms)
  })
  try {
    return await Promise.race([run(), timeout])
  } catch (error) {
    if (error instanceof StoreError) throw error
    throw new StoreError(operation, error instanceof Error ? error.message : String(error), { cause: error })
  } finally {
    clearTimeout(timer)
    clearImmediate(turn)
  }
}
