import { execFileSync } from 'node:child_process'
import { availableParallelism } from 'node:os'

/**
 * Keeps the measuring client and the measured servers on cores of their own. Left to the scheduler, a server
 * process that happens to share the client's core stays there for the whole run, because servers live across
 * rounds: one run measured the same two servers at 0.74 and the next at 0.99. The client takes core 0, every
 * server and task core 1. Without `taskset` or a second core, nothing is pinned.
 */
export const pinning = availableParallelism() >= 2 && hasTaskset()

export const CLIENT_CORE = 0
export const SERVER_CORE = 1

/** Pins every thread of process `pid` to `core`. */
export function pin (pid: number | undefined, core: number): void {
  if (!pinning || pid === undefined) return
  execFileSync('taskset', ['-a', '-cp', String(core), String(pid)], { stdio: 'ignore' })
}

function hasTaskset (): boolean {
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}
