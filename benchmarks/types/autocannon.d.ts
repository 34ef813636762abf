// autocannon ships no types: only the part of its programmatic API the benchmarks use.
declare module 'autocannon' {
  interface Client {
    setHeaders (headers: Record<string, string>): void
  }

  interface Options {
    url: string
    connections?: number
    duration?: number
    amount?: number
    pipelining?: number
    method?: string
    headers?: Record<string, string>
    setupClient?: (client: Client) => void
  }

  interface Histogram {
    average: number
    mean: number
    p50: number
    p99: number
  }

  interface Result {
    requests: Histogram & { total: number }
    latency: Histogram
    errors: number
    timeouts: number
    non2xx: number
  }

  function autocannon (options: Options): Promise<Result>
  export default autocannon
  export type { Client, Options, Result }
}
