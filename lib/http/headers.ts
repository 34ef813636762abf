/** A header as Node gives it, on a request (`string | string[]`) or a response (numbers too). */
export type HeaderValue = string | number | readonly string[] | undefined

/** Request or response headers, names lowercased as Node keeps them. */
export type HeaderMap = Readonly<Record<string, HeaderValue>>

/** One header's value as one string: repeated fields joined with `, ` (RFC 9110 §5.3), undefined when absent. */
export function headerText (value: HeaderValue): string | undefined {
  if (value === undefined) return undefined
  return typeof value === 'object' ? value.join(', ') : String(value)
}

/** The comma-separated elements of a list header, trimmed, empty ones dropped. */
export function listOf (value: HeaderValue): string[] {
  const text = headerText(value)
  if (text === undefined) return []
  return text.split(',').map((element) => element.trim()).filter((element) => element !== '')
}

/**
 * The directives of a `Cache-Control` header, names lowercased: `max-age=60, private` → `{ max-age: '60', private:
 * true }`. A quoted value holding a comma (`private="a, b"`) is cut at the comma; only its name matters here.
 */
export function cacheDirectives (value: HeaderValue): Map<string, string | true> {
  const directives = new Map<string, string | true>()
  for (const element of listOf(value)) {
    const equals = element.indexOf('=')
    if (equals === -1) directives.set(element.toLowerCase(), true)
    else directives.set(element.slice(0, equals).trim().toLowerCase(), element.slice(equals + 1).trim().replace(/^"|"$/g, ''))
  }
  return directives
}

/** A delta-seconds directive in ms; undefined when absent, 0 when malformed (RFC 9111 §1.2.2: treat as stale). */
export function secondsOf (directive: string | true | undefined): number | undefined {
  if (directive === undefined) return undefined
  return typeof directive === 'string' && /^\d+$/.test(directive) ? Number(directive) * 1000 : 0
}
