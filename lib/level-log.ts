import { digest } from './digest.js'
import { BurstLog, type Logger } from './burst-log.js'

/**
 * What a level tells the logs: at `debug` its misses, its loads with their duration and its invalidations; at `warn`
 * its store faults, once per burst (while a store is down every request would meet one). A line names the level and
 * the key, or a short hash of the key with `logKeys: false` (keys that carry an email or a user id), and never a
 * value, a cookie or a session id. Lines go through the logger of the request that caused them when the level knows
 * it (its `reqId` is then on the line), the app's otherwise.
 */
export class LevelLog {
  private readonly faults: BurstLog

  /** `name`: the plugin, as messages say it (`appCache`); `level`: the level, as the `level` field says it (`app`). */
  constructor (readonly name: string, readonly level: string, readonly logger: Logger, private readonly logKeys = true) {
    this.faults = new BurstLog(logger)
  }

  /** The key as lines show it. */
  key (key: string): string {
    return this.logKeys ? key : hashKey(key)
  }

  miss (key: string, through: Logger = this.logger): void {
    if (debugging(through)) through.debug?.({ cacheLevel: this.level, key: this.key(key) }, `${this.name}: miss`)
  }

  loaded (key: string, ms: number, error: unknown, through: Logger = this.logger): void {
    if (debugging(through)) this.load({ key: this.key(key) }, ms, error, through)
  }

  /** One call of a batch loader, for `keys`. */
  loadedMany (keys: readonly string[], ms: number, error: unknown, through: Logger = this.logger): void {
    if (debugging(through)) this.load({ keys: keys.map((key) => this.key(key)) }, ms, error, through)
  }

  /** `keys`: what was dropped, or undefined for everything. */
  invalidated (keys: readonly string[] | undefined, through: Logger = this.logger): void {
    if (!debugging(through)) return
    const details = keys === undefined ? { cacheLevel: this.level, all: true } : { cacheLevel: this.level, keys: keys.map((key) => this.key(key)) }
    through.debug?.(details, `${this.name}: invalidated`)
  }

  /**
   * `error` as lines show it: with `logKeys: false`, where its message names `key` (this package's errors do: a value
   * too large, a load past `hardTimeout`), a copy of it that names the key's hash instead.
   */
  err (error: unknown, key: string): unknown {
    if (this.logKeys || !(error instanceof Error) || !error.message.includes(key)) return error
    const shown: Error & { code?: unknown } = new Error(error.message.replaceAll(key, hashKey(key)))
    shown.name = error.name
    if ('code' in error) shown.code = error.code
    return shown
  }

  /**
   * A fault that may repeat on every request: logged once per burst. `details.key`, if any, is shown as `key()` shows
   * it, and `details.err` as `err()` does.
   */
  warn (details: { key?: string, err?: unknown, [name: string]: unknown }, message: string, through: Logger = this.logger): void {
    const { key, err } = details
    const shown = key === undefined ? details : { ...details, key: this.key(key), ...(err === undefined ? {} : { err: this.err(err, key) }) }
    this.faults.warn({ cacheLevel: this.level, ...shown }, message, through)
  }

  private load (named: object, ms: number, error: unknown, through: Logger): void {
    const details = { cacheLevel: this.level, ...named, ms: Math.round(ms * 1000) / 1000 }
    if (error === undefined) through.debug?.(details, `${this.name}: loaded`)
    else through.debug?.({ ...details, err: error }, `${this.name}: the loader failed; nothing was cached`)
  }
}

/** 12 hex digits of the key's SHA-256: the same on every instance, so that the lines of one key can be matched. */
export function hashKey (key: string): string {
  return digest('sha256', key, 'hex').slice(0, 12)
}

function debugging (logger: Logger): boolean {
  return logger.debug !== undefined && logger.isLevelEnabled?.('debug') !== false
}
