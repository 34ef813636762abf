// A client with ioredis's automatic pipelining (`enableAutoPipelining: true`, a common @fastify/redis option) as the
// store, the bus and the lock need it: each command of theirs sent at once, in the order they send them.
import type { Argument, RedisClient } from './redis.js'

interface CommandOptions {
  keyPrefix?: string
  replyEncoding: 'utf8' | null
  errorStack?: Error
}
type CommandClass = new (name: string, args: Argument[], options: CommandOptions) => { promise: Promise<unknown> }

interface Pipelining {
  options?: { enableAutoPipelining?: boolean, keyPrefix?: string, showFriendlyErrorStack?: boolean }
  sendCommand: (command: unknown) => Promise<unknown>
  pipeline: () => { call: (command: string) => unknown, _queue?: Array<{ constructor: unknown }> }
}

const wrapped = new WeakMap<object, RedisClient>()

/**
 * `client` itself, unless it pipelines automatically: then a view of it whose `call` and `callBuffer` send the command
 * at once, past the pipeline. Under automatic pipelining ioredis holds a command back until the event loop turns,
 * except the ones it never pipelines (`MULTI`, `SCRIPT`, `SUBSCRIBE`): a store's transaction or a script's load would
 * then reach Redis before a write sent earlier, where the store's fences and the bus's lease rely on the order they
 * are sent in. And it sends `callBuffer` without its command's name (ioredis#1923: every session read failed with
 * "unknown command"). Measured on a session read and write, the pipeline also cost more CPU than it saved (the
 * commands of one turn are few). The application's own commands on the client keep its pipelining.
 */
export function sendingAtOnce<C extends RedisClient> (client: C): C {
  if ((client as unknown as Pipelining).options?.enableAutoPipelining !== true) return client
  const known = wrapped.get(client)
  if (known !== undefined) return known as C
  const target = client as unknown as Pipelining
  const Command = commandClassOf(target)
  const send = (encoding: 'utf8' | null) => (command: string, ...args: Argument[]): Promise<unknown> => {
    const options = target.options ?? {}
    return target.sendCommand(new Command(command, args, {
      replyEncoding: encoding,
      ...(options.keyPrefix === undefined ? {} : { keyPrefix: options.keyPrefix }),
      ...(options.showFriendlyErrorStack === true ? { errorStack: new Error() } : {})
    }))
  }
  const replaced: Record<PropertyKey, unknown> = {
    call: send('utf8'),
    callBuffer: send(null),
    duplicate: (...args: unknown[]) => sendingAtOnce((client as unknown as { duplicate: (...a: unknown[]) => RedisClient }).duplicate(...args))
  }
  const bound = new Map<PropertyKey, unknown>()
  const view = new Proxy(client, {
    get (object, property) {
      if (Object.hasOwn(replaced, property)) return replaced[property]
      const value: unknown = Reflect.get(object, property, object)
      if (typeof value !== 'function') return value
      // Bound once each: the client's own methods see the client, not this view, as `this`.
      let method = bound.get(property)
      if (method === undefined) {
        method = (value as (...args: unknown[]) => unknown).bind(object)
        bound.set(property, method)
      }
      return method
    }
  })
  wrapped.set(client, view)
  wrapped.set(view, view)
  return view
}

/**
 * ioredis's `Command`, the client's own copy of it (5 or 6, a single Redis or a cluster): the one class a command must
 * be built with to go through `sendCommand`. The client's class does not lead to it (ioredis mixes EventEmitter into
 * `Redis.prototype`, its `constructor` included), and importing ioredis here might find another copy than the
 * application's: it is read off a command queued in a pipeline that is never sent.
 */
function commandClassOf (client: Pipelining): CommandClass {
  const probe = client.pipeline()
  probe.call('PING')
  const Command = probe._queue?.[0]?.constructor
  if (typeof Command !== 'function') throw new TypeError('fastify-multi-cache: the Redis client pipelines automatically (enableAutoPipelining), and its commands cannot be sent past the pipeline: pass a client without enableAutoPipelining')
  return Command as CommandClass
}
