import { createHook } from 'node:async_hooks'

/**
 * Runs `run`, answering how many timers of a millisecond were set meanwhile: lru-cache's way of forgetting the time it
 * read, unless its `ttlResolution` is 0.
 */
export async function millisecondTimers (run: () => Promise<void> | void): Promise<number> {
  let set = 0
  const hook = createHook({ init (_id, type, _trigger, resource) { if (type === 'Timeout' && (resource as { _idleTimeout?: number })._idleTimeout === 1) set++ } })
  hook.enable()
  try {
    await run()
  } finally {
    hook.disable()
  }
  return set
}
