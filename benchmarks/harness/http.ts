import autocannon from 'autocannon'
import { alternate, pairedRatios, spread, type Spread } from './rounds.js'
import { startServer, type ServerHandle } from './children.js'
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
  connections: number
  method?: string
  /** One Cookie header per connection (round robin), for routes that need a session. */
  cookies?: readonly string[]
}

export interface HttpContender<C extends string> {
  name: C
  /** The name of the server builder the scenario module exports (see `startServer`). */
  server: string
  load: HttpLoad
  /** Runs once the server listens, before the warm-up: creates sessions and the like, returning the cookies. */
  prepare?: (url: string) => Promise<readonly string[]>
}

/** Runs autocannon for `seconds` against `url + load.path`; a single failed or non-2xx response fails the run. */
export async function measureHttp (server: ServerHandle, load: HttpLoad, seconds: number): Promise<HttpSample> {
  const url = server.url
  let next = 0
  const cpuBefore = await server.cpuMicros()
  const cookies = load.cookies
  const result = await autocannon({
    url: url + load.path,
    method: load.method ?? 'GET',
    connections: load.connections,
    duration: seconds,
    ...(cookies === undefined
      ? {}
      : { setupClient: (client) => { client.setHeaders({ cookie: cookies[next++ % cookies.length] as string }) } })
  })
  const failed = result.errors + result.timeouts + result.non2xx
  if (failed > 0) throw new Error(`${url + load.path}: ${failed} failed responses (errors ${result.errors}, timeouts ${result.timeouts}, non-2xx ${result.non2xx})`)
  const cpuPerRequest = (await server.cpuMicros() - cpuBefore) / result.requests.total
  return { requestsPerSecond: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, cpuPerRequest }
}

/**
 * Starts each contender's server in its own child process, warms each up, then measures them alternately for
 * `rounds` rounds in this process (the client never shares a process with a server). Stops every server.
 */
export async function compareHttp<C extends string> (
  module: string,
  contenders: ReadonlyArray<HttpContender<C>>,
  rounds: number
): Promise<Record<C, HttpSample[]>> {
  const servers: ServerHandle[] = []
  try {
    const ready = new Map<C, { server: ServerHandle, load: HttpLoad }>()
    for (const contender of contenders) {
      const server = await startServer(module, contender.server)
      servers.push(server)
      const cookies = await contender.prepare?.(server.url)
      ready.set(contender.name, { server, load: cookies === undefined ? contender.load : { ...contender.load, cookies } })
    }
    for (const { server, load } of ready.values()) await measureHttp(server, load, settings.warmupSeconds)
    return await alternate(contenders.map((c) => c.name), rounds, async (name) => {
      const { server, load } = ready.get(name) as { server: ServerHandle, load: HttpLoad }
      return await measureHttp(server, load, settings.seconds)
    })
  } finally {
    await Promise.all(servers.map((server) => server.stop()))
  }
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
