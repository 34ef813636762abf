import { setTimeout as sleep } from 'node:timers/promises'

/** Polls `check` until it holds, for at most `ms`; false if it never did. */
export async function eventually (check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await check()) return true
    await sleep(25)
  }
  return false
}
