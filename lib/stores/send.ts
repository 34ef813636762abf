// How the store, the bus and the lock send a command: straight to the connection, as ioredis's own `Command`, past
// what the client's `call` does on the way.
import type { Argument, RedisCommands } from './redis.js'

interface CommandOptions {
  keyPrefix?: string
  replyEncoding: 'utf8' | null
  errorStack?: Error
}
interface Command {
  args: Argument[]
  stringifyArguments: () => void
}
type CommandClass = new (name: string, args: Argument[], options: CommandOptions) => Command

/** What a sender reads of an ioredis client (5 or 6, one connection or a cluster), beside `RedisCommands`. */
interface CommandSending {
  options?: { keyPrefix?: string, showFriendlyErrorStack?: boolean, enableAutoPipelining?: boolean }
  sendCommand?: (command: Command) => Promise<unknown>
  /** One connection's state and socket (a cluster has neither). */
  status?: string
  stream?: { cork?: () => void, uncork: () => void }
  pipeline?: () => { call: (command: string) => unknown, _queue?: Array<{ constructor: unknown }> }
}

type Sender = (command: string, args: Argument[], buffers: boolean) => Promise<unknown>

const senders = new WeakMap<object, Sender>()
/** Taken as the module loads: fake timers a test installs later (Jest's fake `setImmediate`) do not hold commands back. */
const atTurnEnd = setImmediate
const NO_ARGUMENTS: Argument[] = []

/**
 * Sends `command` with `args` (a fresh array, which the command takes over) on `client`, answering its reply, its
 * strings as Buffers with `buffers`. Straight to the connection:
 * - ioredis's `call` copies the arguments with `Array.prototype.flat`, which V8 runs element by element through its
 *   generic path: about 1.2 µs for a session write's 17 arguments on the EPYC VM of the benchmarks, a tenth of the
 *   instructions of the whole request. The command is made with no arguments here and given them after.
 * - Under ioredis's automatic pipelining (`enableAutoPipelining: true`, a common @fastify/redis option) `call` holds a
 *   command back until the event loop turns, while it sends a transaction (`MULTI`) or a `SCRIPT` at once: a read could
 *   reach Redis before the write sent just before it, where the store's fences and the bus's lease rely on the order
 *   they send in. And it sends `callBuffer` without its command's name (ioredis#1923: every session read failed). The
 *   application's own commands on the client keep its pipelining.
 * A client with a `keyPrefix` has its arguments go through the constructor, which puts the prefix on the keys.
 */
export function send (client: RedisCommands, command: string, args: Argument[], buffers = false): Promise<unknown> {
  let sender = senders.get(client)
  if (sender === undefined) {
    sender = senderOf(client)
    senders.set(client, sender)
  }
  return sender(command, args, buffers)
}

function senderOf (client: RedisCommands): Sender {
  const target = client as RedisCommands & CommandSending
  const Command = commandClassOf(target)
  if (Command === undefined || target.sendCommand === undefined) {
    if (target.options?.enableAutoPipelining === true) throw new TypeError('fastify-multi-cache: the Redis client pipelines automatically (enableAutoPipelining), and its commands cannot be sent past the pipeline: pass a client without enableAutoPipelining')
    return (command, args, buffers) => buffers ? client.callBuffer(command, ...args) : client.call(command, ...args)
  }
  const sendCommand = target.sendCommand.bind(target)
  const { keyPrefix, showFriendlyErrorStack } = target.options ?? {}
  const coalesce = coalescer(target)
  return (command, args, buffers) => {
    coalesce()
    const options: CommandOptions = { replyEncoding: buffers ? null : 'utf8' }
    if (showFriendlyErrorStack === true) options.errorStack = new Error()
    if (keyPrefix !== undefined && keyPrefix !== '') {
      options.keyPrefix = keyPrefix
      return sendCommand(new Command(command, args, options))
    }
    const made = new Command(command, NO_ARGUMENTS, options)
    made.args = args
    made.stringifyArguments()
    return sendCommand(made)
  }
}

/**
 * Holds the writes to a connection's socket from the first command sent in a turn of the event loop until the turn's
 * immediates run, then writes them together: the commands that requests handled in one turn send (a burst of session
 * writes) go to Redis in one system call, not one each. On a loopback socket the kernel delivers to Redis in the
 * writer's own time, and on the VMs of the benchmarks that write was a fifth of the CPU a session read and write
 * costs. Every write to the socket is held in order, the application's own commands on a shared client included, so
 * nothing overtakes what was sent before it (ioredis's `enableAutoPipelining` also waits for the immediates, but sends
 * transactions at once). A connection that is not ready (its commands wait in ioredis's offline queue) and a cluster
 * are left as they are. A turn that goes on for long after a command holds it back as long.
 */
function coalescer (client: CommandSending): () => void {
  let held: CommandSending['stream']
  const flush = (): void => {
    const stream = held as NonNullable<CommandSending['stream']>
    held = undefined
    stream.uncork()
  }
  return () => {
    if (held !== undefined || client.status !== 'ready') return
    const stream = client.stream
    if (typeof stream?.cork !== 'function') return
    held = stream
    stream.cork()
    atTurnEnd(flush)
  }
}

/**
 * ioredis's `Command`, the client's own copy of it (5 or 6, a single Redis or a cluster): the class a command must be
 * made with to go through `sendCommand`. The client's class does not lead to it (ioredis mixes EventEmitter into
 * `Redis.prototype`, its `constructor` included), and importing ioredis here might find another copy than the
 * application's: it is read off a command queued in a pipeline that is never sent. Undefined for a client that is not
 * ioredis's, whose `call` is then used.
 */
function commandClassOf (client: CommandSending): CommandClass | undefined {
  if (typeof client.pipeline !== 'function') return undefined
  const probe = client.pipeline()
  probe.call('PING')
  const Command = probe._queue?.[0]?.constructor
  return typeof Command === 'function' ? Command as CommandClass : undefined
}
