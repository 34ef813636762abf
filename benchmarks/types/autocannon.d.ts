// autocannon ships no types: only the part of its programmatic API the benchmarks use.
declare module 'autocannon' {
  interface Client {
    setHeaders (headers: Record<string, string>): void
  }

  interface Request {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string
  }

  /** State of one connection, kept from one request of `requests` to the next and reset when they start over. */
  type Context = Record<string, unknown>

  interface RequestSpec extends Request {
    /** Called before each request is sent: returns the request to send. */
    setupRequest?: (request: Request, context: Context) => Request
    /** Called with each response to this request (header names as the server sent them). */
    onResponse?: (status: number, body: string, context: Context, headers: Record<string, string | string[]>) => void
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
    requests?: RequestSpec[]
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

  /** A running load: it settles with the result, and emits every response meanwhile. */
  interface Instance extends PromiseLike<Result> {
    on (event: 'response', listener: (client: Client, statusCode: number, bytes: number, responseTime: number) => void): this
  }

  function autocannon (options: Options): Instance
  export default autocannon
  export type { Client, Context, Instance, Options, Request, RequestSpec, Result }
}
