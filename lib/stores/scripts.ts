// Lua scripts sent by their SHA-1 where Redis is known to hold them. The session's write script is 2 KB, and ioredis
// measures and copies every argument of every command it sends: about 5 µs of CPU a write on the EPYC VM of the
// benchmarks, where a SHA-1 is 40 bytes.
import { createHash } from 'node:crypto'
import { scriptRefused } from '../errors.js'
import type { Argument, RedisConnection } from './redis.js'
import { send } from './send.js'

/**
 * The scripts one connection sends by SHA-1: those Redis answered `SCRIPT LOAD` for since the connection was made.
 * Until then a script goes by its text, so that its first use after a connect, a restart or a failover never meets a
 * Redis without it; a `SCRIPT LOAD` refused (an ACL without `SCRIPT`) leaves it going by its text on that connection.
 * Redis drops loaded scripts only on `SCRIPT FLUSH` and restarts: the commands sent by SHA-1 then fail with NOSCRIPT
 * (those in flight: ioredis sends unanswered commands again to a restarted server), as does each where an ACL refuses
 * `EVALSHA`; their caller tells `failed`, and the connection sends every script by its text until it is made again.
 * Not loaded again at once: behind a proxy that loads a script on one server and routes the next command to another,
 * every other command would fail. A refused one is not sent again by its text in its place: the commands sent after
 * it on the connection have run by then, and a change must not run after them.
 */
class ConnectionScripts {
  private readonly loaded = new Set<string>()
  /** Asked to load on this connection: once each, refused or not. */
  private readonly asked = new Set<string>()
  /** Moves when the connection closes: an answer to a `SCRIPT LOAD` of an earlier connection proves nothing now. */
  private connection = 0
  /** Set by a script refused by SHA-1: no script goes by SHA-1 on this connection any more. */
  private refused = false

  constructor (private readonly client: RedisConnection) {
    client.on('close', () => {
      this.connection++
      this.loaded.clear()
      this.asked.clear()
      this.refused = false
    })
  }

  /** `EVALSHA` of `script` where this connection has it, else `EVAL`; `buffers`: the reply's strings as Buffers. */
  run (script: string, args: readonly Argument[], buffers: boolean): Promise<unknown> {
    const sha = shaOf(script)
    const client = this.client
    if (this.loaded.has(sha)) return send(client, 'EVALSHA', [sha, ...args], buffers)
    if (!this.asked.has(sha) && !this.refused) this.load(script, sha)
    return send(client, 'EVAL', [script, ...args], buffers)
  }

  /** A command of the connection failed with `error`: after a script refused, scripts go by their text until it is made again. */
  readonly failed = (error: unknown): void => {
    if (!scriptRefused(error)) return
    this.refused = true
    this.loaded.clear()
  }

  private load (script: string, sha: string): void {
    this.asked.add(sha)
    const connection = this.connection
    send(this.client, 'SCRIPT', ['LOAD', script]).then((answer) => {
      if (answer === sha && connection === this.connection && !this.refused) this.loaded.add(sha)
    }, () => {})
  }
}

const byConnection = new WeakMap<RedisConnection, ConnectionScripts>()

/** The scripts `client` sends by SHA-1: one record per connection, whichever stores share it. */
export function scriptsOf (client: RedisConnection): ConnectionScripts {
  let scripts = byConnection.get(client)
  if (scripts === undefined) {
    scripts = new ConnectionScripts(client)
    byConnection.set(client, scripts)
  }
  return scripts
}

const shas = new Map<string, string>()

function shaOf (script: string): string {
  let sha = shas.get(script)
  if (sha === undefined) {
    sha = createHash('sha1').update(script).digest('hex')
    shas.set(script, sha)
  }
  return sha
}
