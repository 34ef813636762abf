import { StoreError } from './errors.js'

/**
 * Runs a remote store operation within a time budget, so that a stalled backend costs a caller `ms` at most
 * instead of hanging it. The operation itself is not cancelled: a write may still land later.
 */
export async function withBudget<T> (operation: string, ms: number, run: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new StoreError(operation, `no answer within ${ms} ms`)) }, ms)
  })
  try {
    return await Promise.race([run(), timeout])
  } catch (error) {
    if (error instanceof StoreError) throw error
    throw new StoreError(operation, error instanceof Error ? error.message : String(error), { cause: error })
  } finally {
    clearTimeout(timer)
  }
}
