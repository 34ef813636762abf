/** Heap used (bytes) after full collections: what is still held, as a leak or a cache would grow it. */
export function heapAfterGc (): number {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error('this process was started without --expose-gc')
  // Twice: the first collection's finalizers can free more.
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
