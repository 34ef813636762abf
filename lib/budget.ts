import { StoreError, messageOf } from './errors.js'

/**
 * The operations of one backend (a Redis connection, a Keyv) waiting for its answer. A time budget frees the caller,
 * not the operation: a client such as ioredis keeps each one, with its arguments and all its callbacks hold, until
 * the backend answers, and a backend stalled under load (a paused Redis with the circuit breaker off) grew the heap
 * with the load, to about 2 GB after some 240,000 operations in a red-team run. Once one of them ran out of its
 * budget (the backend is behind), no more are sent while `max` of them, or `maxBytes` of what they write, wait:
 * each fails at once, as it would have after its budget. A backend that answers in time is never refused, however
 * many operations wait on it.
 */
export class Waiting {
  /** Sent and not answered yet, within their budget or past it. */
  count = 0
  /** What those write, in bytes, as their callers counted it. */
  bytes = 0
  /** Of those waiting, the ones past their budget. */
  late = 0
  constructor (readonly max = MAX_WAITING, readonly maxBytes = MAX_WAITING_BYTES) {}

  /** The backend is behind and holds as much as it may. */
  get full (): boolean {
    return this.late > 0 && (this.count >= this.max || this.bytes >= this.maxBytes)
  }
}

/** Operations of one backend that may wait once it is behind, at most. */
export const MAX_WAITING = 1000
/** Bytes those may write, at most: 64 MiB. */
export const MAX_WAITING_BYTES = 64 * 2 ** 20

/** The bytes of a command's arguments, strings counted by their length: what a write holds while it waits. */
export function bytesOf (args: ReadonlyArray<string | number | Buffer | readonly unknown[]>): number {
  let bytes = 0
  for (const arg of args) {
    if (typeof arg === 'string' || Buffer.isBuffer(arg)) bytes += arg.length
    else if (Array.isArray(arg)) bytes += bytesOf(arg as ReadonlyArray<string | number | Buffer>)
  }
  return bytes
}

/**
 * Runs a remote store operation within a time budget, so that a stalled backend costs a caller `ms` at most
 * instead of hanging it. The operation itself is not cancelled: a write may still land later. With `waiting`, the
 * operation counts among its backend's waiting ones (with `bytes`, what it writes) until the backend answers it, and
 * fails at once, unsent, while they are full (see `Waiting`). `failed` is told of the backend's error, as it came.
 *
 * The budget measures the backend, not this process: when the timer fires late because the event loop was busy (a
 * long GC pause, a CPU-bound request), the answer may already be waiting to be read. The timeout then waits one turn
 * of the event loop, in which that answer is read, before it counts as one.
 */
export function withBudget<T> (operation: string, ms: number, run: () => Promise<T>, waiting?: Waiting, bytes = 0, failed?: (error: unknown) => void): Promise<T> {
  if (waiting?.full === true) {
    return Promise.reject(new StoreError(operation, `${waiting.count} operations (${waiting.bytes} bytes) still wait for the store, ${waiting.late} of them past their time budget`))
  }
  // A promise settled by whichever comes first, rather than an async function around a race of two: every Redis
  // command runs through here, and the race's promises and the async frame were a tenth of the package's own CPU time
  // on a session read and write.
  return new Promise<T>((resolve, reject) => {
    let late = false
    let turn: NodeJS.Immediate | undefined
    let running: Promise<T>
    try {
      running = Promise.resolve(run())
    } catch (error) {
      failed?.(error)
      reject(storeError(operation, error))
      return
    }
    const deadline = deadlinesOf(ms).add(() => {
      turn = setImmediate(() => {
        late = true
        if (waiting !== undefined) waiting.late++
        reject(new StoreError(operation, `no answer within ${ms} ms`))
      })
    })
    if (waiting !== undefined) {
      waiting.count++
      waiting.bytes += bytes
    }
    // Past its budget the operation still waits for the backend's answer: it stops counting only then.
    const answered = (): void => {
      deadline.answered()
      clearImmediate(turn)
      if (waiting === undefined) return
      waiting.count--
      waiting.bytes -= bytes
      if (late) waiting.late--
    }
    running.then((value) => {
      answered()
      resolve(value)
    }, (error: unknown) => {
      answered()
      failed?.(error)
      reject(storeError(operation, error))
    })
  })
}

/** One operation under a budget: its end in `performance.now()` ms, and what runs if it is not answered by then. */
class Deadline {
  done = false
  constructor (readonly at: number, readonly expire: () => void, private readonly deadlines: Deadlines) {}

  answered (): void {
    this.done = true
    this.deadlines.answered()
  }
}

/**
 * The operations under budgets of one length, in the order they started, which is the order their budgets end in,
 * with one timer for the first unanswered. A timer of their own, set and cleared per operation, made node create and
 * drop its list of timers of that length each time (at most one command in flight, as on a lightly loaded server):
 * about 3 µs a command in a profile of a session read and write at 1,000 req/s, as much as a tenth of the package's
 * own code there.
 */
class Deadlines {
  private readonly queue: Deadline[] = []
  private head = 0
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly ms: number) {}

  add (expire: () => void): Deadline {
    const deadline = new Deadline(performance.now() + this.ms, expire, this)
    this.queue.push(deadline)
    if (this.timer === undefined) this.arm(this.ms)
    else this.timer.ref()
    return deadline
  }

  /** Drops the answered operations at the front; the timer, set for one of them, finds the next when it fires. */
  answered (): void {
    const queue = this.queue
    while (this.head < queue.length && (queue[this.head] as Deadline).done) this.head++
    if (this.head === queue.length) {
      queue.length = 0
      this.head = 0
      // Left set, it fires once for nothing rather than be cleared and set again for the next operation; while nothing
      // is under way it does not keep the process alive.
      this.timer?.unref()
    } else if (this.head >= 1024 && this.head * 2 >= queue.length) {
      queue.splice(0, this.head)
      this.head = 0
    }
  }

  private arm (ms: number): void {
    this.timer = setTimeout(() => { this.fire() }, Math.max(1, Math.ceil(ms)))
  }

  private fire (): void {
    this.timer = undefined
    const now = performance.now()
    const queue = this.queue
    while (this.head < queue.length) {
      const first = queue[this.head] as Deadline
      if (!first.done && first.at > now) break
      this.head++
      if (first.done) continue
      first.done = true
      first.expire()
    }
    this.answered()
    if (this.head < queue.length) this.arm((queue[this.head] as Deadline).at - now)
    // Nothing under way: forgotten, so that budgets of many lengths (a wait a caller gives) leave nothing behind.
    else if (deadlinesByLength.get(this.ms) === this) deadlinesByLength.delete(this.ms)
  }
}

/** The deadlines of each budget's length in use. */
const deadlinesByLength = new Map<number, Deadlines>()

function deadlinesOf (ms: number): Deadlines {
  let deadlines = deadlinesByLength.get(ms)
  if (deadlines === undefined) {
    deadlines = new Deadlines(ms)
    deadlinesByLength.set(ms, deadlines)
  }
  return deadlines
}

function storeError (operation: string, error: unknown): Error {
  if (error instanceof StoreError) return error
  return new StoreError(operation, messageOf(error, 'the store failed with a value that cannot be printed'), { cause: error })
}
