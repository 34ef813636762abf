import type { FastifyInstance } from 'fastify'
import { Advisor, type AdviceFinding } from '../lib/advisor.js'
import { feedAdvisor } from '../lib/advisor-feed.js'
import { hashKey } from '../lib/level-log.js'
import { readOptions, type OptionReader } from '../lib/options.js'
import { levelsOf } from './levels.js'

/** The `advisor` option of `multiCache` as an object. */
export interface AdvisorOptions {
  /**
   * The share sampled, 0 < rate ≤ 1: of the session and application entries, each followed whole (per session at that
   * level) or not at all; a quarter of it (`countSampleRate`), of the operations counted in the totals, lookups in runs
   * of 16 in a row at 0.01 (`advisorRunLength`), and of the requests, each read whole, in runs as the lookups. Default
   * 0.01.
   */
  sampleRate?: number
}

/** What `advisor: true` samples: 1 in 100. */
export const DEFAULT_SAMPLE_RATE = 0.01

/**
 * How often the advisor is asked for findings when nobody asks, so that a new one reaches the log: a walk over at
 * most `ADVISOR_BOUNDS.patterns` patterns, on a timer that keeps no process alive.
 */
export const ADVICE_LOG_INTERVAL_MS = 60_000

/** Reads `multiCache`'s `advisor` option: undefined when it is off. */
export function readAdvisor (read: OptionReader, option: unknown): number | undefined {
  if (option === undefined || option === false) return undefined
  if (option === true) return DEFAULT_SAMPLE_RATE
  // A Date or a Map is an object with no `sampleRate`, and would have been read as the default.
  if (typeof option !== 'object' || option === null || !isPlain(option)) read.fail('advisor', 'must be true, false or an object { sampleRate }')
  const advisor = readOptions(`${read.name} (advisor)`, option)
  advisor.only(['sampleRate'])
  const { sampleRate = DEFAULT_SAMPLE_RATE } = option as AdvisorOptions
  if (typeof sampleRate !== 'number' || !(sampleRate > 0 && sampleRate <= 1)) advisor.fail('sampleRate', 'must be a number greater than 0 and at most 1 (the share of keys watched; 0.01 is 1 in 100)')
  return sampleRate
}

function isPlain (value: object): boolean {
  const prototype: unknown = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/**
 * Gives the app's levels an advisor fed from the one stream of cache operations (lib/advisor-feed.ts), and logs each finding at `info` the first time it is found (by `advice()` or
 * by the timer). With `logKeys: false` the line shows a hash of the pattern, as other lines show keys.
 */
export function startAdvisor (fastify: FastifyInstance, sampleRate: number, logKeys: boolean): Advisor {
  const tell = (finding: AdviceFinding): void => {
    const { level, key, kind, evidence } = finding
    fastify.log.info({ cacheLevel: level, key: logKeys ? key : hashKey(key), advice: kind, evidence },
      logKeys ? `multiCache advisor: ${finding.message}` : `multiCache advisor: ${kind} at the ${level} level (the pattern is in fastify.multiCache.advice())`)
  }
  const advisor = new Advisor({ sampleRate, onFinding: tell })
  const levels = levelsOf(fastify)
  levels.advisor = advisor
  // This app's levels only, those registered later included: other apps in the process publish on the same stream.
  const stop = feedAdvisor(advisor, { from: (origin) => origin !== undefined && (origin === levels.app || origin === levels.request || origin === levels.session || origin === levels.route) })
  const timer = setInterval(() => { advisor.advice() }, ADVICE_LOG_INTERVAL_MS).unref()
  fastify.addHook('onClose', async () => {
    clearInterval(timer)
    stop()
  })
  return advisor
}
