// The soak's traffic: one visit of the shop, which every autocannon connection repeats with a cookie jar of its own.
import type { Context, RequestSpec } from 'autocannon'

/** Products the soak's shop holds: product pages ask for one of them, or for one of `MISSING` ids past them. */
export const PRODUCTS = 3000
const MISSING = 100
const USERS = ['alice', 'bob', 'carol']

interface Step {
  method: 'GET' | 'POST' | 'DELETE'
  path: string | (() => string)
  body?: () => unknown
  /** The status the shop must answer: a missing product is a 404, a refused login a 401. Any other is a failure. */
  expect: number
  /** Sends the cookie the visit held before its logout instead of its current one. */
  replay?: boolean
}

const pick = <T>(values: readonly T[]): T => values[Math.floor(Math.random() * values.length)] as T
const anyProduct = (): number => 1 + Math.floor(Math.random() * PRODUCTS)
const cartLine = (): unknown => ({ productId: anyProduct(), quantity: 1 + Math.floor(Math.random() * 5) })

/**
 * A visitor browses, fills a cart anonymously (the session is created there), fails a login and logs in (the id is
 * regenerated, the cart kept), writes, reads and empties the cart, sees its orders and logs out. Then the cookie it
 * had is replayed and must be refused: logout ended the session on the server, not just in the jar. Every visit
 * ends the sessions it opened, so memory held between visits should stay flat; the catalog and the product pages
 * are cached for minutes and are all loaded during the warm-up.
 */
const STEPS: readonly Step[] = [
  { method: 'GET', path: '/products', expect: 200 },
  { method: 'GET', path: () => `/products/${anyProduct()}`, expect: 200 },
  { method: 'GET', path: () => `/products/${anyProduct()}`, expect: 200 },
  { method: 'GET', path: () => `/products/${PRODUCTS + 1 + Math.floor(Math.random() * MISSING)}`, expect: 404 },
  { method: 'POST', path: '/cart', body: cartLine, expect: 200 },
  { method: 'POST', path: '/login', body: () => ({ username: 'mallory' }), expect: 401 },
  { method: 'POST', path: '/login', body: () => ({ username: pick(USERS) }), expect: 200 },
  { method: 'POST', path: '/cart', body: cartLine, expect: 200 },
  { method: 'GET', path: '/cart', expect: 200 },
  { method: 'GET', path: '/orders', expect: 200 },
  { method: 'DELETE', path: '/cart', expect: 200 },
  { method: 'POST', path: '/logout', expect: 200 },
  { method: 'GET', path: '/orders', expect: 401, replay: true }
]

/** Responses that did not answer what their step expects, by step and status (`POST /cart → 500`). */
export type Unexpected = Map<string, number>

interface Jar { cookie?: string, beforeLogout?: string }

/** Keeps the `name=value` of each Set-Cookie; a cookie cleared by the server (empty, `Max-Age=0`) goes. */
function remember (jar: Jar, header: string | string[] | undefined): void {
  for (const line of [header ?? []].flat()) {
    const pair = line.split(';', 1)[0] as string
    if (pair.endsWith('=') || /;\s*max-age=0/i.test(line)) delete jar.cookie
    else jar.cookie = pair
  }
}

/** The autocannon requests of one visit; each response that is not the expected one is counted in `unexpected`. */
export function visit (unexpected: Unexpected): RequestSpec[] {
  return STEPS.map((step) => {
    const label = `${step.method} ${typeof step.path === 'string' ? step.path : step.path().replace(/\d+$/, ':id')}`
    return {
      method: step.method,
      setupRequest: (request, context: Context) => {
        const jar = context as Jar
        if (step.path === '/logout') jar.beforeLogout = jar.cookie
        const cookie = step.replay === true ? jar.beforeLogout : jar.cookie
        const headers: Record<string, string> = { ...request.headers }
        if (cookie !== undefined) headers.cookie = cookie
        if (step.body !== undefined) headers['content-type'] = 'application/json'
        return {
          ...request,
          path: typeof step.path === 'string' ? step.path : step.path(),
          headers,
          ...(step.body === undefined ? {} : { body: JSON.stringify(step.body()) })
        }
      },
      onResponse: (status, _body, context, headers) => {
        remember(context as Jar, headers['set-cookie'])
        if (status !== step.expect) {
          const key = `${label} → ${status}`
          unexpected.set(key, (unexpected.get(key) ?? 0) + 1)
        }
      }
    }
  })
}
