/** One load in flight, as its load function sees it. */
export interface Flight {
  /**
   * True once an invalidation of its key happened while it ran: it still answers the callers that joined it, but
   * must not write its value anywhere, because that value may be older than the invalidation.
   */
  readonly fenced: boolean
}

interface Running {
  promise: Promise<unknown>
  flight: { fenced: boolean }
  /** The tags of the value it loads: invalidating one of them fences it. */
  tags: readonly string[]
}

const UNTAGGED: readonly string[] = []

/**
 * One load per key at a time, in this process: callers that ask for a key while its load is running share that
 * load's promise, and with it its value or its error. Nothing is remembered once the load settles. `fence` detaches
 * a running load: callers that come after it start a new one.
 */
export class SingleFlight {
  private readonly pending = new Map<string, Running>()

  loadOnce<T> (key: string, load: (flight: Flight) => T | PromiseLike<T>, tags?: readonly string[]): Promise<T> {
    return this.join(key, load, tags).value
  }

  /**
   * Like `loadOnce`, with the flight joined: after it settles, tells whether it was fenced meanwhile. `tags` are those
   * of the value a new load would bring (see `fenceTagged`); a caller that joins a running load leaves them as they are.
   */
  join<T> (key: string, load: (flight: Flight) => T | PromiseLike<T>, tags: readonly string[] = UNTAGGED): { value: Promise<T>, flight: Flight } {
    const running = this.pending.get(key)
    if (running !== undefined) return { value: running.promise as Promise<T>, flight: running.flight }
    const flight = { fenced: false }
    const entry: Running = { promise: Promise.resolve(), flight, tags }
    const promise = run(load, flight).finally(() => {
      if (this.pending.get(key) === entry) this.pending.delete(key)
    })
    entry.promise = promise
    this.pending.set(key, entry)
    return { value: promise, flight }
  }

  /** True while a load of `key` runs that a caller would join. */
  has (key: string): boolean {
    return this.pending.has(key)
  }

  /** Fences the load running for `key`, if any. */
  fence (key: string): void {
    const running = this.pending.get(key)
    if (running === undefined) return
    running.flight.fenced = true
    this.pending.delete(key)
  }

  /** Fences every running load whose value has one of `tags`. */
  fenceTagged (tags: readonly string[]): void {
    for (const [key, running] of this.pending) {
      if (running.tags.some((tag) => tags.includes(tag))) this.fence(key)
    }
  }

  /** Fences every running load. */
  fenceAll (): void {
    for (const running of this.pending.values()) running.flight.fenced = true
    this.pending.clear()
  }
}

async function run<T> (load: (flight: Flight) => T | PromiseLike<T>, flight: Flight): Promise<T> {
  return await load(flight)
}
