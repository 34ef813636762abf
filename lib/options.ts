import { parseDuration } from './durations.js'
import { InvalidOptionError, describe } from './errors.js'

/**
 * Option readers shared by every level: each returns the normalised value or throws an error that names the
 * plugin, the option and what was expected. The caller's object is never modified.
 */
export class OptionReader {
  constructor (readonly name: string, private readonly options: object) {}

  private raw (name: string): unknown {
    return (this.options as Record<string, unknown>)[name]
  }

  fail (name: string, expected: string, value: unknown = this.raw(name)): never {
    throw new InvalidOptionError(this.name, name, expected, describe(value))
  }

  duration (name: string, fallback: number): number {
    const value = this.raw(name)
    if (value === undefined) return fallback
    const ms = parseDuration(value)
    return ms === undefined ? this.fail(name, "must be a number of milliseconds >= 0 or a duration string such as '30m'") : ms
  }

  positiveInteger (name: string, fallback: number): number {
    const value = this.raw(name)
    if (value === undefined) return fallback
    return Number.isSafeInteger(value) && (value as number) > 0 ? value as number : this.fail(name, 'must be a positive integer')
  }

  boolean (name: string, fallback: boolean): boolean {
    const value = this.raw(name)
    if (value === undefined) return fallback
    return typeof value === 'boolean' ? value : this.fail(name, 'must be true or false')
  }

  /** One of `choices`; the first when absent. */
  oneOf<T extends string> (name: string, choices: readonly [T, ...T[]]): T {
    const value = this.raw(name)
    if (value === undefined) return choices[0]
    return choices.includes(value as T) ? value as T : this.fail(name, `must be one of ${choices.map((choice) => `'${choice}'`).join(', ')}`)
  }

  optionalFunction<F> (name: string): F | undefined {
    const value = this.raw(name)
    if (value === undefined) return undefined
    return typeof value === 'function' ? value as F : this.fail(name, 'must be a function')
  }

  only (allowed: readonly string[]): void {
    for (const name of Object.keys(this.options)) {
      if (!allowed.includes(name)) this.fail(name, `is not an option (expected one of ${allowed.join(', ')})`)
    }
  }
}

/** Reads the options object itself: undefined means defaults, anything but a plain object is an error. */
export function readOptions (plugin: string, options: unknown): OptionReader {
  if (options === undefined || options === null) return new OptionReader(plugin, {})
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionError(plugin, 'options', 'must be an object', describe(options))
  }
  return new OptionReader(plugin, options)
}

/** The `ttl` of one call (`set`, `getOrLoad`, `define`): milliseconds or a duration string; `fallback` when absent. */
export function callTtl (method: string, options: { ttl?: unknown } | undefined, fallback: number): number {
  return callDuration(method, 'ttl', options?.ttl, fallback)
}

/** A duration option of one call, named `name` in the error: milliseconds or a duration string; `fallback` when absent. */
export function callDuration (method: string, name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback
  const ms = parseDuration(value)
  if (ms === undefined) {
    throw new InvalidOptionError(method, name, "must be a number of milliseconds >= 0 or a duration string such as '30m'", describe(value))
  }
  return ms
}
