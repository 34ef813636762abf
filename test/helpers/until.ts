import { setTimeout as sleep } from 'node:timers/promises'

/** Polls every 2 ms until `done`, returning the ms it took; throws after `ms`. */
export async function until (done: () => boolean, ms = 1000): Promise<number> {
  const started = performance.now()
  while (!done()) {
    if (performance.now() - started > ms) throw new Error(`not done within ${ms} ms`)
    await sleep(2)
  }
  return performance.now() - started
}
