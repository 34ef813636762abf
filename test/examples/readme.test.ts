import { spawn } from 'node:child_process'
import { readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { test, type Test } from 'tap'
import { sessionStoreKey } from '../../lib/keys.js'
import { hashKey } from '../../lib/level-log.js'
import { cookieOf, secret } from '../helpers/app.js'
import { built, outside, root } from '../helpers/package.js'
import { privateCluster } from '../helpers/cluster.js'
import { REDIS_URL, privateRedis, redisFor } from '../helpers/redis.js'
import { until } from '../helpers/until.js'

// Every js and ts block of the README is a whole file of examples/readme, named in a comment above the block, so
// that a reader who pastes one into a file has a program that runs (beside a db.js of their own): the files run
// here, and the README cannot drift from them.
const examples = join(root, 'examples/readme')
const MARKER = /^<!-- example: (examples\/readme\/[\w.-]+) -->$/

async function shown (file: string): Promise<string> {
  return (await readFile(join(root, file), 'utf8')).trimEnd()
}

test('every js and ts block of the README is a whole example file, as it is there', async (t) => {
  const lines = (await readFile(join(root, 'README.md'), 'utf8')).split('\n')
  const named: string[] = []
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(js|ts)$/.test(lines[i] as string)) continue
    const file = MARKER.exec(lines[i - 1] ?? '')?.[1]
    const end = lines.indexOf('```', i + 1)
    if (file === undefined) {
      t.fail(`README line ${i + 1}: a code block without <!-- example: examples/readme/… --> above it`)
      continue
    }
    named.push(file)
    t.equal(lines.slice(i + 1, end).join('\n'), await shown(file), `README line ${i + 1} is ${file}`)
  }
  const files = (await readdir(examples)).filter((file) => file !== 'db.js' && /\.(js|ts)$/.test(file)).map((file) => `examples/readme/${file}`)
  t.same(named.toSorted(), files.toSorted(), 'and every example file is in the README')
})

// npm shows the README without the repository around it: a relative link to a file goes nowhere there.
test('every link of the README works on the npm page: anchors of its own headings, and files of the repository by absolute URL', async (t) => {
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { repository: { url: string }, homepage: string, bugs: { url: string } }
  const repository = manifest.repository.url.replace(/^git\+/, '').replace(/\.git$/, '')
  t.equal(manifest.homepage, `${repository}#readme`)
  t.equal(manifest.bugs.url, `${repository}/issues`)
  const readme = await readFile(join(root, 'README.md'), 'utf8')
  const prose = readme.replace(/^```[\s\S]*?^```$/gm, '')
  // GitHub's and npm's heading ids: lower case, punctuation dropped, spaces as hyphens.
  const anchors = new Set([...prose.matchAll(/^#+ (.+)$/gm)].map(([, heading = '']) => heading.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, '').replaceAll(' ', '-')))
  const links = [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map(([, target = '']) => target)
  t.ok(links.length > 20, `${links.length} links`)
  for (const target of links) {
    if (target.startsWith('#')) {
      t.ok(anchors.has(target.slice(1)), `${target} is a heading of the README`)
    } else if (target.startsWith(repository + '/')) {
      const [, kind, path = ''] = /^\/(blob|tree)\/main\/(.+)$/.exec(target.slice(repository.length)) ?? []
      const found = await stat(join(root, path)).catch(() => undefined)
      t.ok(kind === 'tree' ? found?.isDirectory() : found?.isFile(), `${target} is a ${kind === 'tree' ? 'folder' : 'file'} of the repository`)
    } else {
      t.match(target, /^https:\/\//, `${target} is absolute`)
    }
  }
})

/**
 * Starts an example as `node <file>` on a free port and returns its URL; it is stopped with the test. Every line it
 * prints goes to `lines`, read for as long as it runs.
 */
async function serve (t: Test, file: string, env: Record<string, string> = {}, lines: string[] = []): Promise<string> {
  await built()
  // A TypeScript example runs as its reader runs one, through tsx.
  const child = spawn(process.execPath, [...(file.endsWith('.ts') ? ['--import', 'tsx'] : []), file], { cwd: examples, env: { ...outside, PORT: '0', SESSION_SECRET: secret, ...env }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill() })
  const output = createInterface({ input: child.stdout })
  return await new Promise((resolve, reject) => {
    output.on('line', (line) => {
      lines.push(line)
      const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)?.[1]
      if (url !== undefined) resolve(url)
    })
    output.on('close', () => { reject(new Error(`${file} ended without listening`)) })
  })
}

async function call (url: string, init: { method?: string, body?: unknown, cookie?: string | undefined } = {}): Promise<{ status: number, body: unknown, cookie: string | undefined }> {
  const headers: Record<string, string> = init.cookie === undefined ? {} : { cookie: init.cookie }
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(url, { method: init.method ?? 'GET', headers, ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }) })
  return { status: response.status, body: await response.json(), cookie: cookieOf({ 'set-cookie': response.headers.getSetCookie() }) }
}

test('the Usage example runs as written: catalog, cart, login and orders', async (t) => {
  const url = await serve(t, 'usage.js')
  t.same((await call(url + '/products')).body, [{ id: 1, name: 'apple', price: 3 }, { id: 2, name: 'pear', price: 4 }])
  const first = await call(url + '/cart', { method: 'POST', body: { productId: 1 } })
  t.same(first.body, { lines: 1 })
  t.same((await call(url + '/cart', { method: 'POST', body: { productId: 2 }, cookie: first.cookie })).body, { lines: 2 })
  t.same(await call(url + '/orders', { cookie: first.cookie }), { status: 401, body: { error: 'log in first' }, cookie: undefined })
  const login = await call(url + '/login', { method: 'POST', body: { name: 'ada' }, cookie: first.cookie })
  t.same(login.body, { id: 7 })
  t.not(login.cookie, first.cookie, 'a new session id at login')
  t.same((await call(url + '/orders', { cookie: login.cookie })).body, [{ id: 100, userId: 7, productId: 2 }])
  t.equal((await call(url + '/login', { method: 'POST', body: { name: 'eve' } })).status, 401)
})

test('the partial adoption and route caching examples run as written', async (t) => {
  t.same((await call(await serve(t, 'partial.js') + '/answer')).body, 42)
  const url = await serve(t, 'route.js')
  const first = await fetch(url + '/products')
  const again = await fetch(url + '/products')
  t.same([first.headers.get('x-cache'), again.headers.get('x-cache')], ['MISS', 'HIT-APP'])
  t.same(await again.json(), await first.json())
})

test('typed-route.ts: the typed key and tags callbacks run as written', async (t) => {
  const url = await serve(t, 'typed-route.ts')
  const first = await fetch(url + '/products/KETTLE')
  const again = await fetch(url + '/products/kettle')
  t.same([first.headers.get('x-cache'), again.headers.get('x-cache')], ['MISS', 'HIT-APP'], 'one entry for both spellings, by the key')
  t.same(await again.json(), await first.json())
})

test('ignore-cookies.js: a browser with analytics and consent cookies is served the shared copy', async (t) => {
  const url = await serve(t, 'ignore-cookies.js')
  const cookie = '_ga=GA1.1.1.1; _ga_X=GS1; _gid=GA1.2.3; CookieConsent={necessary:true}; theme=dark'
  const first = await fetch(url + '/products', { headers: { cookie } })
  const again = await fetch(url + '/products', { headers: { cookie } })
  t.same([first.headers.get('x-cache'), again.headers.get('x-cache')], ['MISS', 'HIT-APP'])
  t.match(again.headers.get('cache-status'), /^fastify-multi-cache; hit; ttl=\d+$/)
  const login = await fetch(url + '/products', { headers: { cookie: cookie + '; remember=1' } })
  t.equal(login.headers.get('cache-status'), 'fastify-multi-cache; fwd=bypass; detail=credentials-cookie')
})

test('the freshness and tags examples run as written', async (t) => {
  t.same((await call(await serve(t, 'freshness.js') + '/catalog')).body, [{ id: 1, name: 'apple', price: 3 }, { id: 2, name: 'pear', price: 4 }])
  const url = await serve(t, 'tags.js')
  const first = await fetch(url + '/products')
  const again = await fetch(url + '/products')
  t.same([first.headers.get('x-cache'), again.headers.get('x-cache')], ['MISS', 'HIT-APP'])
  t.same((await call(url + '/products/1')).body, { id: 1, name: 'apple', price: 3 })
  t.equal((await call(url + '/products/1/price', { method: 'PUT', body: { price: 5 } })).status, 200)
  t.same((await call(url + '/products/1')).body, { id: 1, name: 'apple', price: 5 }, 'the tagged entry went with its tag')
  const after = await fetch(url + '/products')
  t.equal(after.headers.get('x-cache'), 'MISS', 'and so did the tagged route response')
  t.same(await after.json(), [{ id: 1, name: 'apple', price: 5 }, { id: 2, name: 'pear', price: 4 }])
})

test('the batch examples run as written: products by key in one call, and the request\'s loader of products', async (t) => {
  const url = await serve(t, 'batch.js')
  t.same((await call(url + '/products?ids=2&ids=9&ids=1')).body, [{ id: 2, name: 'pear', price: 4 }, null, { id: 1, name: 'apple', price: 3 }], 'a product the query did not find stays a miss')
  t.same((await call(url + '/products?ids=1')).body, [{ id: 1, name: 'apple', price: 3 }])
  t.equal((await call(url + '/products?' + Array.from({ length: 101 }, (_, i) => `ids=${i}`).join('&'))).status, 400, 'a list past the schema\'s bound')
  const orders = (await call(await serve(t, 'loader.js') + '/orders')).body as Array<{ id: number, product: { name: string } }>
  t.same(orders.map((order) => [order.id, order.product.name]), [[100, 'pear'], [101, 'apple'], [102, 'pear']])
})

test('the several-instances example: two instances on one Redis share a cart', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const [one, two] = await Promise.all([serve(t, 'instances.js', { REDIS_URL }), serve(t, 'instances.js', { REDIS_URL })])
  const made = await call(one + '/cart', { method: 'POST', body: ['apple'] })
  t.teardown(async () => { await client.unlink('fmc:session:' + sessionStoreKey((made.body as { id: string }).id)) })
  t.same((await call(two + '/cart', { cookie: made.cookie })).body, { cart: ['apple'] })
})

test('the Redis Cluster example: two instances on a cluster share a cart, and cache a value', async (t) => {
  const cluster = await privateCluster(t)
  if (cluster === undefined) return
  const [one, two] = await Promise.all([serve(t, 'cluster.js', { REDIS_CLUSTER: cluster.url }), serve(t, 'cluster.js', { REDIS_CLUSTER: cluster.url })])
  const made = await call(one + '/cart', { method: 'POST', body: ['apple'] })
  t.same((await call(two + '/cart', { cookie: made.cookie })).body, { cart: ['apple'] })
  t.same((await call(two + '/rates')).body, { eur: 1, usd: 1.08 })
  t.same([...(await cluster.keysByMaster('fmc:app:*')).values()].flat(), ['fmc:app:rates'], 'kept in the cluster')
})

test('the Sentinel example: the client asks a sentinel for the master, and the levels use it', async (t) => {
  const master = await privateRedis(t)
  if (master === undefined) return
  const url = await serve(t, 'sentinel.js', { SENTINELS: `127.0.0.1:${await master.sentinel()}` })
  t.same((await call(url + '/rates')).body, { eur: 1, usd: 1.08 })
  t.ok(await master.exists('fmc:app:rates'), 'kept in the master the sentinel named')
})

test('the Prometheus example serves the series at /metrics', async (t) => {
  const url = await serve(t, 'metrics.js')
  await fetch(url + '/products')
  const text = await (await fetch(url + '/metrics')).text()
  t.match(text, /^multicache_requests_total\{level="app",result="miss"\} 1$/m)
  t.match(text, /^multicache_loads_total\{level="app",outcome="ok"\} 1$/m)
})

test('the tracing example: an APM-like subscriber of the channel logs the load, in-process sampling serves its counts', async (t) => {
  const lines: string[] = []
  const url = await serve(t, 'tracing.js', {}, lines)
  t.same((await call(url + '/products')).body, [{ id: 1, name: 'apple', price: 3 }, { id: 2, name: 'pear', price: 4 }])
  await until(() => lines.some((line) => line.includes('"msg":"cache load"')), 2000)
  const logged = JSON.parse(lines.find((line) => line.includes('"msg":"cache load"')) as string) as Record<string, unknown>
  t.match(logged, { level: 30, cacheLevel: 'app', key: 'catalog', ms: Number })
  t.equal((await call(url + '/misses')).status, 200)
})

test('the OpenTelemetry example: the cache spans of a request, nested in @fastify/otel\'s, on the console', async (t) => {
  const lines: string[] = []
  const url = await serve(t, 'otel.js', {}, lines)
  await fetch(url + '/products')
  // ConsoleSpanExporter prints each span as an object, over several lines.
  await until(() => lines.some((line) => line.includes("name: 'cache.getOrLoad'")), 2000)
  const output = lines.join('\n')
  t.match(output, /name: 'cache\.load'/)
  t.match(output, /'cache\.level': 'app',\s+'cache\.operation': 'getOrLoad',\s+'cache\.hit': false/)
  t.notMatch(output, /'cache\.key'/, 'no keys by default')
  // The getOrLoad span's parent is a span @fastify/otel made for the request.
  const spans = [...output.matchAll(/\{\s*resource:[\s\S]*?\n\}/g)].map(([text]) => ({
    // The span's own fields, at the first indentation (the instrumentation scope has a name too).
    name: /\n {2}name: '([^']+)'/.exec(text)?.[1],
    id: /\n {2}id: '([0-9a-f]+)'/.exec(text)?.[1],
    parent: /parentSpanContext: \{[^}]*?spanId: '([0-9a-f]+)'/.exec(text)?.[1]
  }))
  const lookup = spans.find((span) => span.name === 'cache.getOrLoad')
  const parent = spans.find((span) => span.id === lookup?.parent)
  t.match(parent?.name, /^handler/, `the lookup's parent: ${String(parent?.name)}`)
  t.equal(spans.find((span) => span.name === 'cache.load')?.parent, lookup?.id, "the load's parent is the lookup")
})

test('the logs example logs misses and loads at debug, with hashed keys', async (t) => {
  const lines: string[] = []
  const url = await serve(t, 'logs.js', {}, lines)
  await fetch(url + '/user/ada@example.com')
  const cacheLines = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => /^(reqCache|appCache): /.test(String(line.msg)))
  await until(() => cacheLines().some((line) => line.msg === 'appCache: loaded'), 2000)
  const logged = cacheLines()
  t.match(logged.find((line) => line.msg === 'reqCache: miss'), { level: 20, cacheLevel: 'request', key: hashKey('user:ada@example.com'), reqId: String })
  t.match(logged.find((line) => line.msg === 'appCache: miss'), { level: 20, cacheLevel: 'app', key: hashKey('user:ada@example.com') })
  t.match(logged.find((line) => line.msg === 'appCache: loaded'), { level: 20, ms: Number })
  t.notOk(JSON.stringify(logged).includes('ada@example.com'), 'no cache line shows the key')
})

test('the admin API example: a bearer token, then stats, defined keys and a refresh', async (t) => {
  const url = await serve(t, 'admin.js', { ADMIN_TOKEN: 'open-sesame' })
  const auth = { authorization: 'Bearer open-sesame' }
  t.equal((await fetch(url + '/_cache/stats')).status, 403)
  t.equal((await fetch(url + '/_cache/stats', { headers: auth })).status, 200)
  t.match(await (await fetch(url + '/_cache/defined', { headers: auth })).json(), { keys: [{ key: 'catalog', lastError: null }] })
  const refreshed = await fetch(url + '/_cache/refresh', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ key: 'catalog' }) })
  t.match(await refreshed.json(), { key: 'catalog', lastRefresh: Number })
})

test('the dashboard example: a browser is asked for a password, then gets the page', async (t) => {
  const url = await serve(t, 'dashboard.js', { ADMIN_TOKEN: 'open-sesame' })
  const prompted = await fetch(url + '/_cache/')
  t.same([prompted.status, prompted.headers.get('www-authenticate')], [401, 'Basic realm="cache"'])
  const page = await fetch(url + '/_cache/', { headers: { authorization: 'Basic ' + Buffer.from('ops:open-sesame').toString('base64') } })
  t.equal(page.status, 200)
  t.match(await page.text(), '<script src="/_cache/dashboard.js" defer></script>')
})
