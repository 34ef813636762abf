/**
 * Why a request of a cached route was not answered from the cache, or why its response was not stored: the
 * `detail` of its `Cache-Status` header, a label of the stats and of the Prometheus series, and the log line. A fixed
 * list, so that neither the series nor the stats can grow with what clients send.
 */
export const ROUTE_REASONS = [
  // Not looked up (Cache-Status fwd=method or fwd=bypass).
  'method', 'authorization', 'credentials-cookie', 'no-session', 'invalid-key', 'invalid-tags',
  // Looked up and missed, and the response not stored.
  'status', 'set-cookie', 'no-store', 'no-cache', 'private', 'vary-star', 'expired', 'stream', 'too-large', 'error', 'head',
  'invalidated', 'session'
] as const

export type RouteReason = typeof ROUTE_REASONS[number]

/** The cache's name in `Cache-Status` (RFC 9211 §2). */
const NAME = 'fastify-multi-cache'

/** A response served from the cache, with `ttl` seconds of freshness left (negative when served stale). */
export function hitStatus (ttl: number): string {
  return `${NAME}; hit; ttl=${ttl}`
}

/**
 * A response the handler produced: `fwd` says why the cache forwarded the request (RFC 9211 §2.2), and `outcome`
 * whether the response was stored, or why not.
 */
export function forwardStatus (fwd: 'uri-miss' | 'stale' | 'bypass' | 'method', outcome: 'stored' | RouteReason): string {
  return outcome === 'stored' ? `${NAME}; fwd=${fwd}; stored` : `${NAME}; fwd=${fwd}; detail=${outcome}`
}
