import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

const CHILD = fileURLToPath(new URL('../fixtures/instance.ts', import.meta.url))
const MAJORS = fileURLToPath(new URL('./majors.mjs', import.meta.url))

/** An app running in a process of its own, as a second server of a deployment would. */
export interface Instance {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Closes the app (`fastify.close()`) and waits for the process to exit. */
  stop (): Promise<void>
  /** SIGSTOP: the process runs nothing, its sockets stay open (a stalled instance: a long GC, a frozen VM). */
  pause (): void
  /** SIGCONT. */
  resume (): void
}

/**
 * Starts the app `name` exported by `module` (a path relative to `test/fixtures/apps/`) in a child process, with
 * `params` given to its builder; stopped with the test. The test talks to it over real HTTP, so that two instances
 * share nothing but the Redis they are given: no memory, no event loop, no module state.
 */
export async function forkInstance (t: Test, module: string, name: string, params: Record<string, unknown> = {}): Promise<Instance> {
  const path = fileURLToPath(new URL(`../fixtures/apps/${module}`, import.meta.url))
  // TypeScript through tsx (it starts a process in a fraction of the test runner's time) and the ioredis major the
  // run chose. Not counted for coverage: tsx compiles the sources otherwise than the test runner, and the two source
  // maps of one file would be merged line by line into nonsense (left out, the variable would be set again).
  const env = { ...process.env, NODE_V8_COVERAGE: '' }
  const child = fork(CHILD, [path, name, JSON.stringify(params)], { env, execArgv: ['--import', 'tsx', '--import', MAJORS], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGCONT')
    const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
    if (child.connected) child.disconnect()
    const killer = setTimeout(() => child.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(killer)
  }
  t.teardown(stop)
  const { port } = await firstMessage<{ port: number }>(child, `${module} ${name}`)
  return { url: `http://127.0.0.1:${port}`, stop, pause: () => { child.kill('SIGSTOP') }, resume: () => { child.kill('SIGCONT') } }
}

function firstMessage<T> (child: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`instance ${what} exited with code ${String(code)} before it listened`)) })
    child.once('error', reject)
    child.once('message', (message) => { resolve(message as T) })
  })
}

/** A client with a cookie jar of its own, over real HTTP: one browser. */
export class Browser {
  private readonly cookies = new Map<string, string>()

  async request (url: string, options: { method?: string, body?: unknown, headers?: Record<string, string> } = {}): Promise<{ status: number, headers: Headers, body: string, json: () => Record<string, unknown> }> {
    const headers: Record<string, string> = { ...options.headers }
    if (this.cookies.size > 0) headers.cookie = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ')
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    const response = await fetch(url, { method: options.method ?? 'GET', headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }) })
    for (const line of response.headers.getSetCookie()) {
      const [pair = '', ...attributes] = line.split(';')
      const at = pair.indexOf('=')
      const name = pair.slice(0, at).trim()
      const value = pair.slice(at + 1).trim()
      const expired = value === '' || attributes.some((attribute) => /^\s*(max-age=0|expires=thu, 01 jan 1970)/i.test(attribute))
      if (expired) this.cookies.delete(name)
      else this.cookies.set(name, value)
    }
    const body = await response.text()
    return { status: response.status, headers: response.headers, body, json: () => JSON.parse(body) as Record<string, unknown> }
  }

  /** A copy of this browser's cookies: the same session, as a stolen or second tab would hold it. */
  clone (): Browser {
    const copy = new Browser()
    for (const [name, value] of this.cookies) copy.cookies.set(name, value)
    return copy
  }
}
