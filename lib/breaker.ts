import { EntryTooLargeError, SerializeError, StoreError, scriptRefused } from './errors.js'
import type { Logger } from './burst-log.js'
import type { FenceOperations, GroupOperations, Store, TagOperations } from './store.js'

export type BreakerState = 'closed' | 'open' | 'half-open'

export interface BreakerOptions {
  /** Consecutive failures (errors or timeouts) that open the breaker. */
  failures: number
  /** How long it stays open before one probe may go through, in ms. */
  coolDown: number
  /** Told once when the breaker opens, and once when it closes again. */
  log?: Logger
  /** Names the store in those lines. */
  name: string
}

/**
 * A circuit breaker for a shared store. While the store keeps failing, every operation pays the store's time budget:
 * after `failures` in a row the breaker opens and operations fail at once, without reaching the store, so that the
 * memory tier and the loaders answer at their own speed. After `coolDown` one operation at a time probes the store:
 * a success closes the breaker, a failure opens it for another `coolDown`.
 */
export class Breaker {
  private current: BreakerState = 'closed'
  private streak = 0
  private until = 0
  private probing = false

  constructor (private readonly options: BreakerOptions) {}

  get state (): BreakerState {
    return this.current
  }

  /** Runs `command`, unless the breaker is open; rejects, never throws. */
  run<T> (operation: string, command: () => T | PromiseLike<T>): Promise<T> {
    if (this.current !== 'closed') {
      if (this.current === 'open' && Date.now() >= this.until) this.current = 'half-open'
      if (this.current === 'open' || this.probing) {
        const error = new StoreError(operation, `skipped: the circuit breaker is open after ${this.options.failures} failures in a row`)
        // Open, it knows when it lets the next probe through: a client is told when to try again (a probe under way
        // may close it at any moment, so then nothing is promised).
        if (this.current === 'open') Object.assign(error, { headers: { 'retry-after': String(Math.max(1, Math.ceil((this.until - Date.now()) / 1000))) } })
        return Promise.reject(error)
      }
      this.probing = true
    }
    // One promise settled by the command's, rather than an async function awaiting it: every command to a shared store
    // runs through here.
    let running: T | PromiseLike<T>
    try {
      running = command()
    } catch (error) {
      return Promise.reject(this.ended(error))
    }
    return Promise.resolve(running).then((result) => {
      this.probing = false
      this.succeeded()
      return result
    }, (error: unknown) => { throw this.ended(error) })
  }

  /** Counts a command that failed, and answers its error. */
  private ended (error: unknown): unknown {
    this.probing = false
    // A value the serializer or the size bound refused never reached the store: it tells nothing of the store's
    // health, and a client that can make a route cache what it sends must not open the breaker for everyone. Nor does
    // a script Redis would not run by its SHA-1: every command in flight meets it at once (`SCRIPT FLUSH`, a restart),
    // and the connection goes by the scripts' text from then on.
    if (!(error instanceof EntryTooLargeError || error instanceof SerializeError || scriptRefused(error))) this.failed(error)
    return error
  }

  private succeeded (): void {
    this.streak = 0
    if (this.current === 'closed') return
    this.current = 'closed'
    this.options.log?.info?.({ store: this.options.name }, `fastify-multi-cache: the ${this.options.name} store answers again; circuit breaker closed`)
  }

  private failed (error: unknown): void {
    this.streak++
    if (this.current === 'closed' && this.streak < this.options.failures) return
    const opening = this.current === 'closed'
    this.current = 'open'
    this.until = Date.now() + this.options.coolDown
    if (opening) {
      this.options.log?.warn({ err: error, store: this.options.name }, `fastify-multi-cache: the ${this.options.name} store failed ${this.streak} times in a row; circuit breaker open, operations skip it for ${this.options.coolDown} ms at a time`)
    }
  }
}

/** `store` with every operation that reaches it run through `breaker`. */
export function guardStore (store: Store, breaker: Breaker): Store {
  // `run` catches what the method throws, at once or later, and always answers a promise.
  const guard: Guard = (operation, method, self) =>
    method === undefined ? undefined : (...args) => breaker.run(operation, () => method.apply(self, args))
  const guarded: Store = {
    get: guard('get', store.get as Method, store) as Store['get'],
    set: guard('set', store.set as Method, store) as Store['set'],
    delete: guard('delete', store.delete as Method, store) as Store['delete'],
    clear: guard('clear', store.clear as Method, store) as Store['clear'],
    get size () { return store.size }
  }
  const optional = {
    getMany: guard('getMany', store.getMany as Method | undefined, store),
    getTimed: guard('getTimed', store.getTimed as Method | undefined, store),
    getTimedMany: guard('getTimedMany', store.getTimedMany as Method | undefined, store),
    setMany: guard('setMany', store.setMany as Method | undefined, store),
    deleteMany: guard('deleteMany', store.deleteMany as Method | undefined, store),
    keys: guard('keys', store.keys as Method | undefined, store),
    stored: store.stored?.bind(store),
    close: store.close?.bind(store),
    watch: store.watch?.bind(store),
    groups: store.groups === undefined ? undefined : guardAll<GroupOperations>('groups', store.groups, guard),
    fences: store.fences === undefined ? undefined : guardAll<FenceOperations>('fences', store.fences, guard),
    tags: store.tags === undefined ? undefined : guardAll<TagOperations>('tags', store.tags, guard)
  }
  for (const [name, value] of Object.entries(optional)) if (value !== undefined) Object.defineProperty(guarded, name, { value, enumerable: true })
  return guarded
}

type Method = (...args: never[]) => unknown
type Guard = (operation: string, method: Method | undefined, self: object) => ((...args: never[]) => Promise<unknown>) | undefined

function guardAll<T extends object> (prefix: string, operations: T, guard: Guard): T {
  const guarded: Record<string, unknown> = {}
  for (const [name, method] of Object.entries(operations)) guarded[name] = guard(`${prefix}.${name}`, method as Method, operations)
  return guarded as T
}
