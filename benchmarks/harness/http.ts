import { performance } from 'node:perf_hooks'
import autocannon, { type Options } from 'autocannon'
import { acrossStarts, alternate, pairedRatios, spread, type Spread } from './rounds.js'
import { startServer, type ServerHandle, type ServerParams } from './children.js'
import { settings } from './settings.js'

/** One autocannon measurement. Absolute figures are printed, never claimed: only ratios between contenders are. */
export interface HttpSample {
  requestsPerSecond: number
  /** Latency percentiles in ms. */
  p50: number
  p99: number
  /**
   * Server CPU time per request, µs. Where the client saturates first (one autocannon process, small responses,
   * two cores), throughput ratios understate the difference between servers and this figure shows it.
   */
  cpuPerRequest: number
}

/** What autocannon sends to one contender. */
export interface HttpLoad {
  path: string
  /** A path per request instead of `path`, for routes read over many keys. */
  paths?: () => string
  connections: number
  method?: string
  /** One Cookie header per connection (round robin), for routes that need a session. */
  cookies?: readonly string[]
  /**
   * A fixed offered load, requests per second over all connections, below every contender's limit: each server then
   * does the same work, and its CPU per request measures what it adds, whatever the machine's speed.
   */
  rate?: number
}

export interface HttpContender<C extends string> {
  name: C
  /** The name of the server builder the scenario module exports (see `startServer`). */
  server: string
  /** Given to the server's builder (a Redis URL, a key prefix). */
  params?: ServerParams
  load: HttpLoad
  /** Runs once the server listens, before the warm-up: creates sessions and the like, returning the cookies. */
  prepare?: (url: string) => Promise<readonly string[]>
}

/** What autocannon is told for `load` against `url` during `seconds`. */
export function autocannonOptions (url: string, load: HttpLoad, seconds: number): Options {
  let next = 0
  const { cookies, paths } = load
  return {
    url: url + load.path,
    method: load.method ?? 'GET',
    connections: load.connections,
    duration: seconds,
    ...(load.rate === undefined ? {} : { overallRate: load.rate }),
    ...(cookies === undefined
      ? {}
      : { setupClient: (client) => { client.setHeaders({ cookie: cookies[next++ % cookies.length] as string }) } }),
    ...(paths === undefined ? {} : { requests: [{ setupRequest: (request) => ({ ...request, path: paths() }) }] })
  }
}

/** A measurement in which some responses failed or were not 2xx. */
export class FailedResponses extends Error {}

/**
 * Runs autocannon for `seconds` against `url + load.path`; a single failed or non-2xx response fails the measurement
 * (`FailedResponses`).
 */
export async function measureHttp (server: ServerHandle, load: HttpLoad, seconds: number): Promise<HttpSample> {
  const url = server.url
  const cpuBefore = await server.cpuMicros()
  const result = await autocannon(autocannonOptions(url, load, seconds))
  const failed = result.errors + result.timeouts + result.non2xx
  if (failed > 0) {
    // autocannon counts each status it saw; its types leave the table out.
    const statuses = Object.entries((result as { statusCodeStats?: Record<string, { count: number }> }).statusCodeStats ?? {}).map(([status, { count }]) => `${status}: ${count}`).join(', ')
    throw new FailedResponses(`${url + load.path}: ${failed} failed responses (errors ${result.errors}, timeouts ${result.timeouts}, non-2xx ${result.non2xx}; statuses ${statuses})`)
  }
  const cpuPerRequest = (await server.cpuMicros() - cpuBefore) / result.requests.total
  return { requestsPerSecond: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, cpuPerRequest }
}

/**
 * Starts each contender's server in its own child process, warms each up, then measures them for `rounds` rounds in
 * this process (the client never shares a process with a server). Stops every server. Where every load is a fixed
 * rate, a round measures all contenders at the same time: on a virtual machine the CPU a request costs moves by a
 * third from one second to the next (neighbours, the host), and only measurements taken at once see the same
 * machine. Otherwise they take turns (see `alternate`), since a saturating load must have the cores to itself.
 */
export async function compareHttp<C extends string> (
  module: string,
  contenders: ReadonlyArray<HttpContender<C>>,
  rounds: number,
  nodeFlags: string[] = []
): Promise<Record<C, HttpSample[]>> {
  const servers: ServerHandle[] = []
  try {
    const ready = new Map<C, { server: ServerHandle, load: HttpLoad }>()
    for (const contender of contenders) {
      const server = await startServer(module, contender.server, contender.params, nodeFlags)
      servers.push(server)
      const cookies = await contender.prepare?.(server.url)
      ready.set(contender.name, { server, load: cookies === undefined ? contender.load : { ...contender.load, cookies } })
    }
    for (const { server, load } of ready.values()) await measureHttp(server, load, settings.warmupSeconds)
    const names = contenders.map((c) => c.name)
    const measure = async (name: C): Promise<HttpSample> => {
      const { server, load } = ready.get(name) as { server: ServerHandle, load: HttpLoad }
      try {
        return await measureHttp(server, load, settings.seconds)
      } catch (error) {
        throw error instanceof FailedResponses ? new FailedResponses(`contender "${name}": ${error.message}`) : error
      }
    }
    // A round with failed responses is measured again, said on stderr with the cause the server logged (see
    // benchmarks/harness/child.ts): on the EPYC VM a stall of the machine past a store's 100 ms budget failed 2
    // session writes in 740 (503), and with them a whole run. A failure that comes back in every attempt still fails it.
    const again = (error: unknown, round: number): boolean => {
      if (!(error instanceof FailedResponses)) return false
      console.error(`round ${round + 1} measured again: ${error.message}`)
      return true
    }
    return await alternate(names, rounds, measure, contenders.every((c) => c.load.rate !== undefined), again)
  } finally {
    await Promise.all(servers.map((server) => server.stop()))
  }
}

/**
 * `compareHttp` over `starts` fresh starts of the servers, `roundsPerStart` rounds each (see `acrossStarts`): with one
 * start each, two processes of the same server read 0.98× and 1.02× in one run.
 */
export async function compareHttpAcrossStarts<C extends string> (
  module: string,
  contenders: ReadonlyArray<HttpContender<C>>,
  starts: number,
  roundsPerStart: number
): Promise<Record<C, HttpSample[]>> {
  return await acrossStarts(contenders.map((contender) => contender.name), starts, async (hashSeed) => await compareHttp(module, contenders, roundsPerStart, [hashSeed]))
}

function medianOf (samples: readonly HttpSample[], figure: 'requestsPerSecond' | 'p50' | 'cpuPerRequest'): number {
  return spread(samples.map((s) => s[figure])).median
}

/** The absolute medians of a contender, as printed beside a ratio. */
export function describeHttp (name: string, samples: readonly HttpSample[]): string {
  return `${name} ${medianOf(samples, 'requestsPerSecond').toFixed(0)} req/s p50 ${medianOf(samples, 'p50')} ms ` +
    `server CPU ${medianOf(samples, 'cpuPerRequest').toFixed(1)} µs/req`
}

/** `subject ÷ baseline` throughput, paired round by round, with both contenders' absolute medians as context. */
export function throughputRatio<C extends string> (samples: Record<C, HttpSample[]>, subject: C, baseline: C): Spread & { rounds: number, contenders: string[], unit: string, context: string } {
  const rps = (name: C): number[] => samples[name].map((s) => s.requestsPerSecond)
  return {
    ...spread(pairedRatios(rps(subject), rps(baseline))),
    rounds: samples[subject].length,
    contenders: [subject, baseline],
    unit: 'req/s ratio',
    context: `${describeHttp(baseline, samples[baseline])}; ${describeHttp(subject, samples[subject])}`
  }
}

/** `baseline ÷ subject` server CPU per request, paired round by round: how many times cheaper the subject is to serve. */
export function cpuSaving<C extends string> (samples: Record<C, HttpSample[]>, subject: C, baseline: C): Spread & { rounds: number, contenders: string[], unit: string, context: string } {
  const cpu = (name: C): number[] => samples[name].map((s) => s.cpuPerRequest)
  return {
    ...spread(pairedRatios(cpu(baseline), cpu(subject))),
    rounds: samples[subject].length,
    contenders: [subject, baseline],
    unit: 'server CPU per request (other ÷ subject)',
    context: `${describeHttp(baseline, samples[baseline])}; ${describeHttp(subject, samples[subject])}`
  }
}

/**
 * Server CPU per request added over a bare route (`floor`), of `subject` ÷ of `other`, paired round by round: what the
 * subject's work costs against what the other's does, which does not depend on how fast the machine is.
 */
export function cpuAddedRatio<C extends string> (samples: Record<C, HttpSample[]>, subject: C, other: C, floor: C): Spread & { rounds: number, contenders: string[], unit: string, context: string } {
  const added = (name: C): number[] => samples[name].map((s, round) => s.cpuPerRequest - (samples[floor][round] as HttpSample).cpuPerRequest)
  return {
    ...spread(pairedRatios(added(subject), added(other))),
    rounds: samples[subject].length,
    contenders: [subject, other],
    unit: `server CPU per request added over ${floor} (subject ÷ other)`,
    context: `${describeHttp(floor, samples[floor])}; ${describeHttp(other, samples[other])}; ${describeHttp(subject, samples[subject])}`
  }
}

/** `subject ÷ baseline` server CPU per request, paired round by round: what the subject costs over the baseline. */
export function cpuRatio<C extends string> (samples: Record<C, HttpSample[]>, subject: C, baseline: C): Spread & { rounds: number, contenders: string[], unit: string, context: string } {
  const cpu = (name: C): number[] => samples[name].map((s) => s.cpuPerRequest)
  return {
    ...spread(pairedRatios(cpu(subject), cpu(baseline))),
    rounds: samples[subject].length,
    contenders: [subject, baseline],
    unit: 'server CPU per request (subject ÷ baseline)',
    context: `${describeHttp(baseline, samples[baseline])}; ${describeHttp(subject, samples[subject])}`
  }
}

/** Every response of one run, for figures over time (throughput per bucket, latency per phase). */
export interface Timeline<M extends string> {
  /** When each response arrived, ms from the start of the run. */
  at: number[]
  /** How long each took, ms (it was sent at `at - latency`). */
  latency: number[]
  /** Responses that were not 2xx. */
  non2xx: number
  /** Requests that failed (connection errors) or timed out. */
  errors: number
  /** When each scheduled action ran, ms from the start of the run. */
  marks: Record<M, number>
}

/**
 * Runs autocannon like `measureHttp`, but records every response and runs `actions` at their times (ms from the
 * start): a failed response is counted, not thrown, since counting them is the point of such a run.
 */
export async function recordTimeline<M extends string> (
  server: ServerHandle,
  load: HttpLoad,
  seconds: number,
  actions: Record<M, { at: number, run: () => void }>
): Promise<Timeline<M>> {
  const timeline: Timeline<M> = { at: [], latency: [], non2xx: 0, errors: 0, marks: {} as Record<M, number> }
  const start = performance.now()
  const timers = Object.entries<{ at: number, run: () => void }>(actions).map(([mark, action]) => setTimeout(() => {
    timeline.marks[mark as M] = performance.now() - start
    action.run()
  }, action.at))
  try {
    const instance = autocannon(autocannonOptions(server.url, load, seconds))
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      timeline.at.push(performance.now() - start)
      timeline.latency.push(responseTime)
      if (statusCode < 200 || statusCode > 299) timeline.non2xx++
    })
    const result = await instance
    timeline.errors = result.errors + result.timeouts
  } finally {
    for (const timer of timers) clearTimeout(timer)
  }
  const missing = Object.keys(actions).filter((mark) => timeline.marks[mark as M] === undefined)
  if (missing.length > 0) throw new Error(`the run ended before ${missing.join(', ')}`)
  return timeline
}

/** GET `url` and parse its JSON; any answer but 2xx fails. */
export async function getJson<T> (url: string, cookie?: string): Promise<T> {
  const response = await fetch(url, cookie === undefined ? {} : { headers: { cookie } })
  if (!response.ok) throw new Error(`${url} answered ${response.status}`)
  return await response.json() as T
}
