/** Full collections, twice (the first one's finalizers can free more): the process must run with `--expose-gc`. */
export function collectGarbage (): void {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('this process was started without --expose-gc')
  gc()
  gc()
}

/** Heap used (bytes) after full collections: what is still held, as a leak or a cache would grow it. */
export function heapAfterGc (): number {
  collectGarbage()
  return process.memoryUsage().heapUsed
}
