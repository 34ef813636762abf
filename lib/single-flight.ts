/**
 * One load per key at a time, in this process: callers that ask for a key while its load is running share that
 * load's promise, and with it its value or its error. Nothing is remembered once the load settles.
 */
export class SingleFlight {
  private readonly pending = new Map<string, Promise<unknown>>()

  /** True while a load for `key` is running. */
  has (key: string): boolean {
    return this.pending.has(key)
  }

  loadOnce<T> (key: string, load: () => T | PromiseLike<T>): Promise<T> {
    const running = this.pending.get(key)
    if (running !== undefined) return running as Promise<T>
    const started = run(load).finally(() => { this.pending.delete(key) })
    this.pending.set(key, started)
    return started
  }
}

async function run<T> (load: () => T | PromiseLike<T>): Promise<T> {
  return await load()
}
