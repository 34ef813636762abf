import { test } from 'tap'
import { isNotModified, matchesEtag, notModifiedHeaders } from '../../lib/http/conditional.js'
import { cacheDirectives, headerText, secondsOf, type HeaderMap } from '../../lib/http/headers.js'
import { credentialsOf, keyParts, pathOf, responseKey, routeIdentity, targetOf, variantOf, type IgnoredCookies, type QueryRule } from '../../lib/http/request.js'
import { forwardStatus, hitStatus } from '../../lib/http/cache-status.js'
import { HEADER_SETS, ageOf, etagOf, fromRecord, heldHeaderSets, privateCacheControl, responseTime, storable, toCachedResponse, toRecord, varyOf, type CachedResponse, type Storable, type StorePolicy } from '../../lib/http/response.js'
import { findVariant, sizeOf, withVariant } from '../../lib/http/variants.js'

// The HTTP policy of route caching, without Fastify: each rule as a table of cases.

const NOW = Date.parse('2025-01-01T00:00:00Z')

function response (headers: Record<string, string | string[]> = {}, extra: Partial<CachedResponse> = {}): CachedResponse {
  return { status: 200, headers, body: Buffer.from('body'), etag: '"e1"', stored: NOW, expires: NOW + 60_000, ...extra }
}

test('eligibility: only requests without Authorization and without any cookie are anonymous', async (t) => {
  const cases: Array<[HeaderMap, string | undefined]> = [
    [{}, undefined],
    [{ accept: 'text/html', 'x-api-key': 'k' }, undefined],
    [{ authorization: 'Bearer x' }, 'authorization'],
    [{ authorization: 'Bearer x', cookie: '_ga=1' }, 'authorization'],
    [{ cookie: 'sid=1' }, 'credentials-cookie'],
    [{ cookie: 'theme=dark' }, 'credentials-cookie'],
    [{ cookie: '' }, 'credentials-cookie']
  ]
  for (const [headers, credentials] of cases) t.equal(credentialsOf(headers), credentials, JSON.stringify(headers))
})

test('eligibility with ignored cookies: only the names listed, never the session cookie', async (t) => {
  const ignored: IgnoredCookies = { names: new Set(['theme', 'cookieconsent_status']), patterns: [/^_ga(_.*)?$/, /^_gid$/], always: new Set(['sid']) }
  const cases: Array<[HeaderMap, string | undefined]> = [
    [{ cookie: '_ga=GA1.1.2; _ga_X1=GS1; _gid=3; theme=dark; cookieconsent_status=allow' }, undefined],
    [{ cookie: 'theme=dark; login=abc' }, 'credentials-cookie'],
    [{ cookie: 'theme=dark; sid=s%3Aabc' }, 'credentials-cookie'],
    [{ cookie: 'Theme=dark' }, 'credentials-cookie'],
    [{ cookie: '_gax=1' }, 'credentials-cookie'],
    [{ cookie: 'theme' }, undefined],
    [{ cookie: ' ; ;theme=dark' }, undefined],
    // A cookie without a name is one: @fastify/cookie gives it to the app as `cookies['']`.
    [{ cookie: '=credential123' }, 'credentials-cookie'],
    [{ cookie: '_ga=1; =credential123' }, 'credentials-cookie'],
    [{ cookie: '_ga=1;  = x' }, 'credentials-cookie'],
    [{ cookie: ['theme=dark', 'other=1'] }, 'credentials-cookie'],
    [{ cookie: 'theme=dark', authorization: 'Basic x' }, 'authorization']
  ]
  for (const [headers, credentials] of cases) t.equal(credentialsOf(headers, ignored), credentials, JSON.stringify(headers))
  t.equal(credentialsOf({ cookie: 'sid=1' }, { names: new Set(['sid']), patterns: [/.*/], always: new Set(['sid']) }), 'credentials-cookie', 'the session cookie counts, whatever the list says')
})

test('key: HEAD shares GET, every part is kept apart, and a key splits back into route and target', async (t) => {
  t.equal(responseKey('/p', 'HEAD', 'http://a', '/p'), responseKey('/p', 'GET', 'http://a', '/p'))
  const keys = [
    responseKey('/p', 'GET', 'http://a', '/p'),
    responseKey('/p', 'POST', 'http://a', '/p'),
    responseKey('/p', 'GET', 'https://a', '/p'),
    responseKey('/p', 'GET', 'http://b', '/p'),
    responseKey('/p', 'GET', 'http://a', '/p?x=1'),
    responseKey('/q', 'GET', 'http://a', '/p')
  ]
  t.equal(new Set(keys).size, keys.length)
  t.same(keyParts(responseKey('/p/:id {"version":"2"}', 'GET', 'http://a:80', 'custom\nkey')), { route: '/p/:id {"version":"2"}', target: 'custom\nkey' })
  t.equal(routeIdentity('/p', undefined), '/p')
  t.equal(routeIdentity('/p', {}), '/p')
  t.equal(routeIdentity('/p', { version: '2.0.0' }), '/p {"version":"2.0.0"}')
})

test('key: the query rule decides which parameters count, as the app\'s parser read them', async (t) => {
  const cases: Array<[string, QueryRule, unknown, string]> = [
    ['/p', 'all', {}, '/p'],
    ['/p?b=2&a=1', 'all', { b: '2', a: '1' }, '/p?b=2&a=1'],
    ['/p?b=2&a=1', 'none', { b: '2', a: '1' }, '/p'],
    ['/p?utm=x&page=2', ['page'], { utm: 'x', page: '2' }, '/p?["2"]'],
    ['/p?utm=x', ['page'], { utm: 'x' }, '/p?[null]'],
    ['/p?b=2&a=1&a=3', ['a', 'b'], { b: '2', a: ['1', '3'] }, '/p?[["1","3"],"2"]'],
    ['/p?page', ['page'], { page: '' }, '/p?[""]'],
    ['/p?q[]=x', ['q'], { q: ['x'] }, '/p?[["x"]]'],
    ['/p?constructor=1', ['constructor', '__proto__'], { constructor: '1' }, '/p?["1",null]'],
    ['/p', ['q'], null, '/p?[null]']
  ]
  for (const [url, rule, query, target] of cases) t.equal(targetOf(url, rule, query), target, `${url} with ${JSON.stringify(rule)}`)
  t.not(targetOf('/p?q=x', ['q'], { q: 'x' }), targetOf('/p?q[]=x', ['q'], { q: ['x'] }), 'a value and a list of it stay apart')
  t.not(targetOf('/p?q=null', ['q'], { q: 'null' }), targetOf('/p', ['q'], {}), 'the text null is not an absent parameter')
})

test('invalidation: every spelling a router may take for one path is one path', async (t) => {
  const cases: Array<[string, string]> = [
    ['/p/42', '/p/42'],
    ['/p/42/', '/p/42'],
    ['/P/42', '/p/42'],
    ['/p/%34%32', '/p/42'],
    ['//p//42', '/p/42'],
    ['/p/42?utm=x', '/p/42'],
    ['/p/42?', '/p/42'],
    ['/p/42#f', '/p/42'],
    ['/p/42;x=1', '/p/42'],
    ['/p/42;', '/p/42'],
    ['/', '/'],
    ['/p/%E0%A4%A', '/p/%e0%a4%a']
  ]
  for (const [target, path] of cases) t.equal(pathOf(target), path, target)
})

test('variants: the values of the headers Vary names tell responses apart', async (t) => {
  t.equal(variantOf([], { 'accept-language': 'fr' }), '')
  t.equal(variantOf(['accept-language'], { 'accept-language': 'en, fr' }), variantOf(['accept-language'], { 'accept-language': ' en, fr ' }), 'whitespace around the value is not part of it')
  t.not(variantOf(['x-name'], { 'x-name': 'Smith, John' }), variantOf(['x-name'], { 'x-name': 'Smith,  John' }), 'whitespace inside it is, as the handler reads it')
  t.not(variantOf(['x-lang'], { 'x-lang': '"a, b"' }), variantOf(['x-lang'], { 'x-lang': '"a,b"' }), 'a quoted string included')
  const distinct = [
    variantOf(['accept-language'], {}),
    variantOf(['accept-language'], { 'accept-language': '' }),
    variantOf(['accept-language'], { 'accept-language': 'en' }),
    variantOf(['accept-language'], { 'accept-language': 'fr' }),
    variantOf(['accept-language', 'x-tenant'], { 'accept-language': 'en' }),
    variantOf(['accept-language', 'x-tenant'], { 'accept-language': 'en', 'x-tenant': 'b' })
  ]
  t.equal(new Set(distinct).size, distinct.length)
  t.equal(variantOf(['x-list'], { 'x-list': ['a', 'b'] }), variantOf(['x-list'], { 'x-list': 'a, b' }), 'a repeated header is its joined value')
})

test('Cache-Control directives', async (t) => {
  t.same([...cacheDirectives('Max-Age=60, private, s-maxage="30"')], [['max-age', '60'], ['private', true], ['s-maxage', '30']])
  t.same([...cacheDirectives(['no-cache', 'max-age=0'])], [['no-cache', true], ['max-age', '0']])
  t.same([...cacheDirectives(undefined)], [])
  t.same([...cacheDirectives(' , ')], [])
  t.same([...cacheDirectives('S-MaxAge = 30,ext="a"b"')], [['s-maxage', '30'], ['ext', 'a"b']], 'spaces around = go; only the outer quotes')
  t.equal(headerText(['a', 'b']), 'a, b', 'a repeated field is its values joined')
  t.equal(headerText(7), '7')
})

test('delta-seconds: digits only, anything else is stale', async (t) => {
  const cases: Array<[string | true | undefined, number | undefined]> = [
    [undefined, undefined],
    ['60', 60_000],
    ['0', 0],
    [true, 0],
    ['10s', 0],
    ['x10', 0],
    ['-5', 0],
    ['1.5', 0]
  ]
  for (const [directive, ms] of cases) t.equal(secondsOf(directive), ms, String(directive))
})

test('storability at the application level (shared) and at the session level', async (t) => {
  const shared: StorePolicy = { shared: true, statusCodes: new Set([200]), ttl: 60_000 }
  const session: StorePolicy = { ...shared, shared: false }
  const soon = new Date(NOW + 10_000).toUTCString()
  // A lifetime in ms, or why the response is refused.
  const cases: Array<[string, number, Record<string, string | string[] | number>, number | string, number | string]> = [
    // name, status, headers, shared, session
    ['plain', 200, {}, 60_000, 60_000],
    ['status not listed', 404, {}, 'status', 'status'],
    ['Set-Cookie', 200, { 'set-cookie': 'a=1' }, 'set-cookie', 'set-cookie'],
    ['no-store', 200, { 'cache-control': 'no-store' }, 'no-store', 'no-store'],
    ['no-cache', 200, { 'cache-control': 'public, no-cache' }, 'no-cache', 'no-cache'],
    ['private', 200, { 'cache-control': 'private' }, 'private', 60_000],
    ['private with fields', 200, { 'cache-control': 'private="x-a, x-b", max-age=5' }, 'private', 5000],
    ['Vary: *', 200, { vary: 'accept, *' }, 'vary-star', 'vary-star'],
    ['max-age shortens', 200, { 'cache-control': 'max-age=10' }, 10_000, 10_000],
    ['max-age cannot lengthen', 200, { 'cache-control': 'max-age=3600' }, 60_000, 60_000],
    ['max-age=0', 200, { 'cache-control': 'max-age=0' }, 'expired', 'expired'],
    ['malformed max-age is stale', 200, { 'cache-control': 'max-age=ten' }, 'expired', 'expired'],
    ['s-maxage counts in a shared cache only', 200, { 'cache-control': 'max-age=30, s-maxage=5' }, 5000, 30_000],
    ['Expires', 200, { expires: soon }, 10_000, 10_000],
    ['Expires in the past', 200, { expires: new Date(NOW - 1000).toUTCString() }, 'expired', 'expired'],
    ['invalid Expires', 200, { expires: '0' }, 'expired', 'expired'],
    ['max-age wins over Expires', 200, { expires: soon, 'cache-control': 'max-age=20' }, 20_000, 20_000]
  ]
  const outcome = (verdict: Storable | string): number | string => typeof verdict === 'string' ? verdict : verdict.lifetime
  for (const [name, status, headers, atApp, atSession] of cases) {
    t.equal(outcome(storable(status, headers, shared, NOW)), atApp, `${name}, shared`)
    t.equal(outcome(storable(status, headers, session, NOW)), atSession, `${name}, per session`)
  }
  const produced = { 'cache-control': 'max-age=30' }
  t.equal(storable(200, { 'cache-control': 'private, no-store' }, shared, NOW, produced), 'no-store', 'the headers as sent decide')
  t.equal(storable(200, { 'set-cookie': 'a=1' }, session, NOW, produced), 'set-cookie', 'a cookie a hook set after the handler')
  t.equal(outcome(storable(200, produced, shared, NOW, { 'cache-control': 'no-store' })), 30_000, 'not what a hook changed')
})

test('a page of a session says private to every cache in front, unless it says something as strict', async (t) => {
  const cases: Array<[string | string[] | undefined, string]> = [
    [undefined, 'private'],
    ['max-age=60', 'private, max-age=60'],
    ['public, max-age=60, s-maxage=600', 'private, max-age=60'],
    ['Public, S-Maxage=5', 'private'],
    ['private, max-age=5', 'private, max-age=5'],
    ['no-store', 'no-store'],
    [['no-cache', 'max-age=0'], 'private, no-cache, max-age=0']
  ]
  for (const [value, expected] of cases) t.equal(privateCacheControl(value), expected, String(value))
})

test('Cache-Status (RFC 9211): the cache, a hit with its ttl, or why the handler ran and what became of its response', async (t) => {
  t.equal(hitStatus(42), 'fastify-multi-cache; hit; ttl=42')
  t.equal(hitStatus(-3), 'fastify-multi-cache; hit; ttl=-3', 'a stale response served has a negative ttl')
  t.equal(forwardStatus('uri-miss', 'stored'), 'fastify-multi-cache; fwd=uri-miss; stored')
  t.equal(forwardStatus('stale', 'set-cookie'), 'fastify-multi-cache; fwd=stale; detail=set-cookie')
  t.equal(forwardStatus('bypass', 'credentials-cookie'), 'fastify-multi-cache; fwd=bypass; detail=credentials-cookie')
  t.equal(forwardStatus('method', 'method'), 'fastify-multi-cache; fwd=method; detail=method')
})

test('Vary names, and the encoding a handler chose itself or a hook applied after it', async (t) => {
  const cases: Array<[Record<string, string | string[]>, string[] | '*']> = [
    [{}, []],
    [{ vary: 'Accept-Language' }, ['accept-language']],
    [{ vary: ['Accept-Language', 'X-Tenant, accept-language'] }, ['accept-language', 'x-tenant']],
    [{ vary: '*' }, '*'],
    [{ 'content-encoding': 'gzip' }, ['accept-encoding']],
    [{ 'content-encoding': 'gzip', vary: 'Accept-Encoding' }, ['accept-encoding']],
    [{ 'content-encoding': 'identity' }, []]
  ]
  for (const [headers, vary] of cases) t.same(varyOf(headers), vary, JSON.stringify(headers))
  const compressed = { 'content-encoding': 'br', vary: 'Accept-Language, accept-encoding' }
  t.same(varyOf(compressed, { vary: 'accept-language' }), ['accept-language'], 'an encoding applied after the handler selects nothing')
  t.same(varyOf(compressed, {}), ['accept-language'], 'names a hook after the handler added count')
  t.same(varyOf(compressed, { vary: 'Accept-Encoding' }), ['accept-encoding', 'accept-language'], 'unless the handler named it')
  t.same(varyOf({ 'content-encoding': 'gzip' }, { 'content-encoding': 'gzip', vary: 'x-a' }), ['x-a', 'accept-encoding'], 'its own encoding')
  t.same(varyOf({ vary: 'accept-encoding' }, {}), ['accept-encoding'], 'no encoding after the handler: a Vary a hook added counts')
  t.equal(varyOf({ vary: '*' }, {}), '*')
})

test('a stored entry keeps the handler\'s headers but none of one transmission', async (t) => {
  const entry = toCachedResponse(200, {
    'content-type': 'text/html',
    'content-length': 4,
    'cache-control': 'max-age=60',
    vary: ['accept-language'],
    date: 'x',
    age: '3',
    'x-cache': 'MISS',
    connection: 'keep-alive',
    'transfer-encoding': 'chunked',
    'x-custom': 7,
    'x-none': undefined,
    'set-cookie': ['a=1'],
    'keep-alive': 'timeout=5',
    'proxy-authenticate': 'Basic',
    'proxy-authorization': 'Basic eA==',
    te: 'trailers',
    trailer: 'x-sum',
    upgrade: 'websocket'
  }, 'body', NOW, 5000)
  t.same(entry.headers, { 'content-type': 'text/html', 'cache-control': 'max-age=60', vary: ['accept-language'], 'x-custom': '7' })
  t.equal(entry.stored, NOW)
  t.equal(entry.expires, NOW + 5000)
  t.match(entry.etag, /^W\/"[\w-]+"$/, 'a weak validator: an encoding plugin may change the bytes per client')
  t.equal(toCachedResponse(200, { etag: '"mine"' }, 'body', NOW, 1).etag, '"mine"', "the handler's own ETag is kept")
  t.same(toCachedResponse(200, { etag: '"mine"' }, 'body', NOW, 1).headers, {}, 'as the validator, not as a header to replay')
  const before = { 'x-request-id': 'r1', 'cache-control': 'no-cache', vary: ['origin'] }
  const after = { ...before, 'cache-control': 'max-age=60', 'x-handler': 'h' }
  t.same(toCachedResponse(200, after, 'body', NOW, 1, before).headers, { 'cache-control': 'max-age=60', 'x-handler': 'h' },
    'headers the reply had at the lookup are set again by their hooks on a hit; those the handler set or changed are kept')
  t.equal(etagOf('a'), etagOf(Buffer.from('a')))
  t.not(etagOf('a'), etagOf('b'))
  t.equal(ageOf(entry, NOW + 2999), '2')
  t.equal(ageOf(entry, NOW - 5000), '0', 'a clock that went back gives 0, never a negative Age')
})

test('a stored body is its exact bytes, held once in a buffer of its own; a record keeps it in base64', async (t) => {
  const text = toCachedResponse(200, { 'content-type': 'application/json; charset=utf-8' }, '{"name":"café ☕"}', NOW, 1000)
  const handlers = Buffer.from([0, 255, 1, 254])
  const bytes = toCachedResponse(200, {}, handlers, NOW, 1000)
  t.same(text.body, Buffer.from('{"name":"café ☕"}'))
  t.equal(text.body.buffer.byteLength, text.body.length, 'not a slice of the shared pool')
  t.same(bytes.body, handlers)
  t.not(bytes.body.buffer, handlers.buffer, 'a copy: the handler may reuse its buffer')
  t.equal(text.etag, etagOf('{"name":"café ☕"}'))
  const record = toRecord(bytes)
  t.equal(record.body, 'AP8B/g==')
  t.same(JSON.parse(JSON.stringify(record)), record, 'a record survives JSON')
  t.same(fromRecord(record), bytes)
})

test('a stored response counts its times on a clock of the process; a record, read by other processes, in epoch ms', async (t) => {
  const epoch = Date.now()
  const now = responseTime(epoch)
  t.equal(now, now | 0, 'a time that fits 32 bits (V8 holds it in the response itself)')
  t.equal(responseTime(epoch + 60_000) - now, 60_000)
  const late = responseTime(epoch + 30 * 24 * 3600_000)
  t.equal(late - now, 30 * 24 * 3600_000, 'past 24 days a time no longer fits 32 bits, and is as right')
  t.equal(responseTime(epoch + 0.5), now, 'whole ms')
  const entry = toCachedResponse(200, {}, 'body', now, 5000, {}, 1000)
  const record = toRecord(entry)
  t.same([record.stored, record.fresh, record.expires], [epoch, epoch + 5000, epoch + 6000])
  t.same(fromRecord(record), entry)
  const other = { ...record, stored: epoch - 1000, fresh: epoch + 4000, expires: epoch + 9000 }
  t.same([fromRecord(other).stored, fromRecord(other).fresh, fromRecord(other).expires], [now - 1000, now + 4000, now + 9000],
    'a record another process stored is read on this clock')
  t.notOk('fresh' in toRecord(toCachedResponse(200, {}, 'body', now, 5000)), 'no staleness: no time for it')
})

test('stored responses with the same headers share one frozen set; one with a header of several values keeps its own', async (t) => {
  const json = { 'content-type': 'application/json', 'cache-control': 'max-age=60' }
  const first = toCachedResponse(200, { ...json }, 'a', NOW, 1000)
  const second = toCachedResponse(200, { ...json }, 'b', NOW, 1000)
  t.equal(first.headers, second.headers, 'one object for both')
  t.ok(Object.isFrozen(first.headers), 'frozen: nothing done with one response changes the other')
  t.throws(() => { (first.headers as Record<string, string>)['x-later'] = '1' }, TypeError)
  t.same(second.headers, json)
  const other = toCachedResponse(200, { 'content-type': 'application/json', 'cache-control': 'max-age=61' }, 'c', NOW, 1000)
  t.not(other.headers, first.headers, 'a value apart: a set apart')
  t.equal(other.headers['cache-control'], 'max-age=61')
  const listed = toCachedResponse(200, { 'content-type': 'text/html', link: ['</a.css>; rel=preload', '</b.js>; rel=preload'] }, 'd', NOW, 1000)
  const listedToo = toCachedResponse(200, { 'content-type': 'text/html', link: ['</a.css>; rel=preload', '</b.js>; rel=preload'] }, 'e', NOW, 1000)
  t.not(listed.headers, listedToo.headers, 'an array a hook may change in place is never shared')
  t.notOk(Object.isFrozen(listed.headers))
})

test('the header sets held apart from the responses are bounded, whatever a handler puts in its headers', async (t) => {
  let mixed = 0
  let most = 0
  for (let i = 0; i < HEADER_SETS * 3; i++) {
    const response = toCachedResponse(200, { 'content-type': 'text/plain', 'x-echo': `client-${i}` }, 'x', NOW, 1000)
    if (response.headers['x-echo'] !== `client-${i}`) mixed++
    most = Math.max(most, heldHeaderSets())
  }
  t.equal(mixed, 0, 'each response keeps its own value')
  t.ok(most <= HEADER_SETS, `at most ${HEADER_SETS} sets held (${most})`)
  const long = { 'content-type': 'text/plain', link: 'x'.repeat(5000) }
  const kept = toCachedResponse(200, { ...long }, 'x', NOW, 1000)
  t.not(toCachedResponse(200, { ...long }, 'y', NOW, 1000).headers, kept.headers, 'a long set is the response\'s own, not held apart')
  t.same(kept.headers, long)
})

test('a computed ETag, copied into one string when stored, is still the text of its digest (a test cannot see how V8 lays a string out)', async (t) => {
  const etag = toCachedResponse(200, {}, 'body', NOW, 1000).etag
  t.equal(etag, etagOf('body'))
  t.equal(etag.length, 'W/"'.length + 27 + 1, 'a SHA-1 in base64url between the quotes')
})

test('conditional requests: If-None-Match by weak comparison, then If-Modified-Since', async (t) => {
  const stored = response({ 'last-modified': new Date(NOW - 60_000).toUTCString() }, { etag: 'W/"e1"' })
  const cases: Array<[HeaderMap, boolean]> = [
    [{}, false],
    [{ 'if-none-match': '"e1"' }, true],
    [{ 'if-none-match': 'W/"e1"' }, true],
    [{ 'if-none-match': '"other", W/"e1"' }, true],
    [{ 'if-none-match': '*' }, true],
    [{ 'if-none-match': '"other"' }, false],
    [{ 'if-none-match': '"other"', 'if-modified-since': new Date(NOW).toUTCString() }, false],
    [{ 'if-modified-since': new Date(NOW).toUTCString() }, true],
    [{ 'if-modified-since': new Date(NOW - 60_000).toUTCString() }, true],
    [{ 'if-modified-since': new Date(NOW - 120_000).toUTCString() }, false],
    [{ 'if-modified-since': 'yesterday' }, false]
  ]
  for (const [headers, notModified] of cases) t.equal(isNotModified('GET', headers, stored), notModified, JSON.stringify(headers))
  t.equal(isNotModified('GET', { 'if-modified-since': new Date(NOW).toUTCString() }, response()), false, 'no Last-Modified')
  t.equal(isNotModified('HEAD', { 'if-none-match': '*' }, stored), true)
  t.equal(isNotModified('GET', { 'if-none-match': '*' }, { ...stored, status: 404 }), false, 'a 304 only where a 200 would be sent')
  t.equal(isNotModified('GET', { 'if-none-match': '"e1"' }, { ...stored, status: 203 }), false)
  t.equal(isNotModified('POST', { 'if-none-match': '"e1"' }, stored), false, 'only GET and HEAD')
  t.equal(matchesEtag(undefined, '"e1"'), false)
})

test('a 304 carries the validator and the caching fields the 200 would carry, nothing else', async (t) => {
  const stored = response({
    'content-type': 'text/html',
    'cache-control': 'max-age=60',
    vary: 'accept-language',
    expires: 'Wed, 01 Jan 2025 00:01:00 GMT',
    'content-location': '/p.html',
    'x-custom': '1'
  })
  t.same(notModifiedHeaders(stored), {
    etag: '"e1"',
    'cache-control': 'max-age=60',
    'content-location': '/p.html',
    expires: 'Wed, 01 Jan 2025 00:01:00 GMT',
    vary: 'accept-language'
  })
})

test('variants of one key: found by the request headers, bounded, expired ones dropped, a new Vary starts afresh', async (t) => {
  const lang = (value: string): HeaderMap => ({ 'accept-language': value })
  const en = response({}, { etag: 'en' })
  const fr = response({}, { etag: 'fr' })
  let stored = withVariant(undefined, ['accept-language'], lang('en'), en, 2, NOW)
  stored = withVariant(stored, ['accept-language'], lang('fr'), fr, 2, NOW)
  t.equal(findVariant(stored, lang('en'), NOW), en)
  t.equal(findVariant(stored, lang('fr'), NOW), fr)
  t.equal(findVariant(stored, lang('de'), NOW), undefined)
  t.equal(findVariant(stored, lang('en'), NOW + 60_000), undefined, 'expired')

  const de = response({}, { etag: 'de' })
  const bounded = withVariant(stored, ['accept-language'], lang('de'), de, 2, NOW)
  t.same(bounded.variants.map(([, held]) => held.etag), ['de', 'fr'], 'at most 2: the oldest goes')
  const replaced = withVariant(bounded, ['accept-language'], lang('fr'), response({}, { etag: 'fr2' }), 2, NOW)
  t.same(replaced.variants.map(([, held]) => held.etag), ['fr2', 'de'], 'the same variant is replaced, not added')
  const later = withVariant(replaced, ['accept-language'], lang('it'), response({}, { etag: 'it', expires: NOW + 120_000 }), 3, NOW + 60_000)
  t.same(later.variants.map(([, held]) => held.etag), ['it'], 'expired variants are dropped')
  const other = withVariant(replaced, ['x-tenant'], { 'x-tenant': 'a' }, response(), 2, NOW)
  t.same(other.vary, ['x-tenant'])
  t.equal(other.variants.length, 1)
})

test('the size of a stored value counts its key, its headers and each body once, as bytes', async (t) => {
  const body = '€'.repeat(10_000)
  const one = (key: string, headers: Record<string, string> = {}): number => sizeOf(withVariant(undefined, [], {}, toCachedResponse(200, headers, body, NOW, 1000), 2, NOW), key)
  const size = one('k')
  t.ok(size >= 30_000 && size < 31_000, `a body counts once, in UTF-8 bytes: ${size}`)
  t.equal(one('k'.repeat(15_001)) - size, 2 * 15_000, 'a key counts two bytes a character')
  t.ok(one('k', { 'x-long': 'v'.repeat(1000) }) - size >= 2000, 'headers count')
  const varying = (vary: string[], etag: string): number => sizeOf(withVariant(undefined, vary, {}, response({}, { etag }), 2, NOW), 'k')
  t.ok(varying(['x'.repeat(1000)], 'e') - varying(['x'], 'e') >= 2 * 999, 'Vary names count')
  t.ok(varying([], 'e'.repeat(1000)) - varying([], 'e') >= 2 * 999, 'validators count')
  const two = withVariant(withVariant(undefined, ['accept-language'], { 'accept-language': 'en' }, response(), 2, NOW), ['accept-language'], { 'accept-language': 'fr' }, response(), 2, NOW)
  t.ok(sizeOf(two, 'k') > sizeOf(withVariant(undefined, ['accept-language'], {}, response(), 2, NOW), 'k'), 'each variant counts')
})
