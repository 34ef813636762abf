// The package as the benchmarks measure it: compiled (`dist/esm`, built by `npm run bench`), as users run it. TypeScript
// through tsx names every closure and changes what the hot paths cost; `BENCH_SOURCE=1` loads the source instead, for
// profiles whose frames point at the TypeScript. tsx leaves the compiled JavaScript as it is.
const root = process.env.BENCH_SOURCE === '1' ? '../..' : '../../dist/esm'

async function load<T> (path: string): Promise<T> {
  return await import(new URL(`${root}/${path}`, import.meta.url).href) as T
}

export const { default: multiCache, appCache, requestCache, sessionCache, MemoryStore, RedisStore } = await load<typeof import('../../index.js')>('index.js')
export const { SessionLevel } = await load<typeof import('../../lib/scopes/session.js')>('lib/scopes/session.js')
export const { RequestLevel } = await load<typeof import('../../lib/scopes/request.js')>('lib/scopes/request.js')
export const { AppCache } = await load<typeof import('../../lib/scopes/application.js')>('lib/scopes/application.js')
export const { sessionStoreKey } = await load<typeof import('../../lib/keys.js')>('lib/keys.js')
export const { ResponseCache } = await load<typeof import('../../lib/response-cache.js')>('lib/response-cache.js')
export const { responseTime, toCachedResponse } = await load<typeof import('../../lib/http/response.js')>('lib/http/response.js')
