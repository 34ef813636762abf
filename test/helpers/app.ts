import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'

export const secret = 'a-test-secret-that-is-at-least-32-chars'

/** A fresh Fastify closed when the test ends. */
export function fresh (t: Test, options: FastifyServerOptions = {}): FastifyInstance {
  const app = Fastify(options)
  t.teardown(() => app.close())
  return app
}

/** The `name=value` part of the first Set-Cookie of a response, or undefined. */
export function cookieOf (headers: Record<string, unknown>): string | undefined {
  const header = headers['set-cookie']
  const first = Array.isArray(header) ? header[0] : header
  return typeof first === 'string' ? first.split(';')[0] : undefined
}

/** Lines a test logger captured, for asserting warnings. */
export function captureLogs (): { lines: Array<Record<string, unknown>>, stream: { write: (line: string) => void } } {
  const lines: Array<Record<string, unknown>> = []
  return { lines, stream: { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } } }
}
