import { headerText, type HeaderMap } from './headers.js'

/** Which part of the query string is part of the key: all of it, none of it, or the parameters named. */
export type QueryRule = 'all' | 'none' | readonly string[]

/**
 * Cookies that say nothing of who the client is (analytics, consent, preferences), by name or by a pattern of names:
 * a request that carries only those is still anonymous. `always` are cookies that are credentials whatever the list
 * says (a session level's own).
 */
export interface IgnoredCookies {
  names: ReadonlySet<string>
  patterns: readonly RegExp[]
  always: ReadonlySet<string>
}

/** Why a request is not anonymous: it has an `Authorization` header, or a cookie that is not ignored. */
export type Credentials = 'authorization' | 'credentials-cookie'

/**
 * What identifies the sender of a request to a shared cache, if anything: an `Authorization` header, or any cookie
 * but the ignored ones. A shared response is only ever stored from and served to requests without either.
 */
export function credentialsOf (headers: HeaderMap, ignored?: IgnoredCookies): Credentials | undefined {
  if (headers.authorization !== undefined) return 'authorization'
  const cookie = headers.cookie
  if (cookie === undefined) return undefined
  if (ignored === undefined) return 'credentials-cookie'
  // Several Cookie fields are one list of pairs separated by semicolons (RFC 6265 §5.4), not commas.
  for (const pair of (typeof cookie === 'object' ? cookie.join(';') : String(cookie)).split(';')) {
    // Only an empty pair is nothing: one without a name (`=value`) is a cookie, which @fastify/cookie names ''.
    if (pair.trim() === '') continue
    const equals = pair.indexOf('=')
    const name = (equals === -1 ? pair : pair.slice(0, equals)).trim()
    if (ignored.always.has(name) || (!ignored.names.has(name) && !ignored.patterns.some((pattern) => pattern.test(name)))) return 'credentials-cookie'
  }
  return undefined
}

// A key is four fields joined by line feeds, which no route URL, method, origin or constraint can contain; the
// target comes last because a custom key may contain anything.

/** The key of a stored response. HEAD shares GET's entry: it is answered from the same response, without the body. */
export function responseKey (route: string, method: string, origin: string, target: string): string {
  return route + '\n' + (method === 'HEAD' ? 'GET' : method) + '\n' + origin + '\n' + target
}

/** What `responseKey` put together: the route and the target, for invalidation. */
export function keyParts (key: string): { route: string, target: string } {
  const afterRoute = key.indexOf('\n')
  const afterOrigin = key.indexOf('\n', key.indexOf('\n', afterRoute + 1) + 1)
  return { route: key.slice(0, afterRoute), target: key.slice(afterOrigin + 1) }
}

/**
 * A route's identity in its keys: its URL, and its constraints when it has any (two routes on one URL with different
 * `version` constraints answer differently).
 */
export function routeIdentity (url: string, constraints: object | undefined): string {
  return constraints === undefined || Object.keys(constraints).length === 0 ? url : url + ' ' + JSON.stringify(constraints)
}

/**
 * The path and the part of the query that is keyed: the query as sent (`'all'`), none of it, or the values of the
 * parameters named as the app's query string parser read them (`query`, `request.query`), in the order the rule
 * names them. Not their raw names: a parser may read `q[]=x` or `q.x=1` as `q`, and a parameter left out by name
 * would then set one that is keyed.
 */
export function targetOf (url: string, rule: QueryRule, query: unknown): string {
  if (rule === 'all') return url
  const mark = url.indexOf('?')
  const path = mark === -1 ? url : url.slice(0, mark)
  if (rule === 'none') return path
  const parsed = Object(query) as Record<string, unknown>
  return path + '?' + JSON.stringify(rule.map((name) => Object.hasOwn(parsed, name) ? parsed[name] : null))
}

/**
 * The path of a target as invalidation compares it: up to its query, a `;` (where a router's `useSemicolonDelimiter`
 * starts the query) or a fragment (which a router ignores), percent-decoded, lowercased, without repeated or trailing
 * slashes, so that every spelling a router may take for the same one (`ignoreTrailingSlash`, `caseSensitive: false`)
 * is dropped with it. Two paths only a case-sensitive router tells apart are dropped together: too much, never too
 * little.
 */
export function pathOf (target: string): string {
  const mark = target.search(/[?;#]/)
  const path = mark === -1 ? target : target.slice(0, mark)
  return decoded(path).toLowerCase().replace(/\/{2,}/g, '/').replace(/(.)\/$/, '$1')
}

function decoded (path: string): string {
  try {
    return decodeURIComponent(path)
  } catch {
    return path
  }
}

/**
 * The values of the request headers a stored response's `Vary` names, as one string that tells its variants apart.
 * An absent header differs from an empty one. Values are compared as the handler reads them: RFC 9111 §4.1 lets a cache
 * drop whitespace inside a list header, but not inside a quoted string or a header that is no list, and a handler that
 * echoes `Smith,  John` must not be served to a client who sent `Smith, John`.
 */
export function variantOf (names: readonly string[], headers: HeaderMap): string {
  if (names.length === 0) return ''
  return JSON.stringify(names.map((name) => headerText(headers[name])?.trim() ?? null))
}
