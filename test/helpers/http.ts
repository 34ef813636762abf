import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'

export interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  /** The bytes as they came over the wire, still encoded. */
  body: Buffer
}

/**
 * One request over a real socket to an app listening on a free port (started on first use): what a client sees,
 * where `inject` could differ (HEAD, encodings, connections).
 */
export async function overHttp (app: FastifyInstance, path: string, options: { method?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
  if (app.server.address() === null) await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return await new Promise((resolve, reject) => {
    const sent = request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers ?? {} }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }) })
      response.on('error', reject)
    })
    sent.on('error', reject)
    sent.end()
  })
}
