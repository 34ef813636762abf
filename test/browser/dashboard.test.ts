import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { chromium, type Browser } from 'playwright-core'
import { test, type Test } from 'tap'
import multiCache from '../../index.js'
import cacheAdmin from '../../plugins/admin.js'
import { fresh, secret } from '../helpers/app.js'

// Debian's chromium package (.ci/run installs it). Playwright drives it as it is: no browser is downloaded.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const FLAGS = ['--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']
const CREDENTIALS = { username: 'ops', password: 'let-me-in' }

/** Asks `check` every 100 ms until it holds; fails after 20 s (the page polls every 2 s). */
async function eventually (check: () => Promise<boolean>): Promise<void> {
  for (let tries = 0; tries < 200; tries++) {
    if (await check()) return
    await sleep(100)
  }
  throw new Error('the page never showed it')
}

/** The browser, closed with the test. Outside CI a missing Chromium skips the test with the reason; in CI it fails. */
async function browserFor (t: Test): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) {
    if (process.env.CI === 'true') throw new Error(`no Chromium at ${CHROMIUM} (CI must have it: apt-get install chromium)`)
    t.plan(0, `no Chromium at ${CHROMIUM}; apt-get install chromium (or set CHROMIUM_PATH) to run this test`)
    return undefined
  }
  // A fresh temporary profile each launch, headless, without the sandbox (root in CI).
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, chromiumSandbox: false, args: FLAGS })
  t.teardown(() => browser.close())
  return browser
}

test('the dashboard in Chromium: log in, charts move with traffic, the advice table, Refresh, invalidate, under default-src \'self\'', async (t) => {
  const browser = await browserFor(t)
  if (browser === undefined) return
  const app = fresh(t)
  // What @fastify/helmet sets on every response of the app.
  app.addHook('onSend', async (_request, reply) => { reply.header('content-security-policy', "default-src 'self'") })
  // Room for 5 entries: the reports written below push each other out unread.
  await app.register(multiCache, { session: { secret }, app: { max: 5 }, advisor: { sampleRate: 1 } })
  app.appCache.define('catalog', async () => ['pear'], { refreshInterval: '1h' })
  app.get('/products/:id', async (request) => await app.appCache.getOrLoad(`product:${(request.params as { id: string }).id}`, async () => ({ name: 'pear' })))
  app.put('/reports/:id', async (request) => {
    await app.appCache.set(`report:${(request.params as { id: string }).id}`, { rows: 3 })
    return null
  })
  const expected = 'Basic ' + Buffer.from(`${CREDENTIALS.username}:${CREDENTIALS.password}`).toString('base64')
  await app.register(cacheAdmin, {
    authorize: (request, reply) => {
      if (request.headers.authorization === expected) return true
      reply.code(401).header('www-authenticate', 'Basic realm="cache"')
      return false
    }
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })

  const anonymous = await browser.newContext()
  const refused = await anonymous.request.get(`${base}/_cache/`)
  t.same([refused.status(), refused.headers()['www-authenticate']], [401, 'Basic realm="cache"'], 'without credentials: the browser is asked for them')
  await anonymous.close()

  const context = await browser.newContext({ httpCredentials: CREDENTIALS })
  const page = await context.newPage()
  const problems: string[] = []
  page.on('pageerror', (error) => { problems.push(`page error: ${error.message}`) })
  // A CSP violation is a console error ("Refused to …"); an answer's status (the favicon's 404, the tag's 501) is not a problem.
  page.on('console', (message) => { if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) problems.push(message.text()) })
  t.equal((await page.goto(`${base}/_cache/`))?.status(), 200, 'logged in')

  // The charts: a card per level once the first stats arrive, then rates that move with traffic.
  await page.waitForSelector('[data-level="app"] polyline.hits', { state: 'attached' })
  const pointsBefore = await page.getAttribute('[data-level="app"] polyline.ratio', 'points')
  for (let i = 0; i < 20; i++) await fetch(`${base}/products/${i % 4}`)
  await eventually(async () => Number((await page.textContent('[data-level="app"] [data-figure="rates"]'))?.split(' · ')[0]) > 0)
  t.not(await page.getAttribute('[data-level="app"] polyline.ratio', 'points'), pointsBefore, 'the hit-ratio chart moved')
  t.match(await page.textContent('[data-level="app"] [data-figure="size"]'), /^\d+$/)

  // The advice table, from real traffic: 30 reports written and never read, 25 of them evicted for room.
  t.match(await page.textContent('#advice-state'), /^Nothing to say yet/)
  for (let i = 0; i < 30; i++) await fetch(`${base}/reports/${i}`, { method: 'PUT' })
  const advice = 'tr[data-advice="never-read"][data-pattern="report:*"]'
  await page.waitForSelector(advice)
  t.same(await page.$$eval(`${advice} td`, (cells) => cells.map((cell) => cell.textContent)), [
    'app', 'report:*', 'never-read', app.multiCache.advice()[0]?.message, 'writtenAndDropped 25 · neverRead 25 · writes 30 · hits 0 · countRate 1 · sampleRate 1'
  ], 'a row with the message and the evidence')

  // Refresh a defined key: its refresh time changes.
  const cell = 'tr[data-key="catalog"] td[data-last-refresh]'
  const before = await page.getAttribute(cell, 'data-last-refresh')
  await page.click('button[data-refresh="catalog"]')
  await eventually(async () => await page.getAttribute(cell, 'data-last-refresh') !== before)
  t.ok(Number(await page.getAttribute(cell, 'data-last-refresh')) > Number(before), 'a later refresh time')
  t.match(await page.textContent('#status'), /^refreshed catalog at /)
  const status = async (): Promise<string | null> => await page.textContent('#status')

  // Invalidate a key, then a tag.
  await fetch(`${base}/products/1`) // evicted by the reports: loaded again
  t.ok(await app.appCache.has('product:1'))
  await page.selectOption('#invalidate select[name="kind"]', 'key')
  await page.fill('#invalidate input[name="name"]', 'product:1')
  await page.click('#invalidate button[type="submit"]')
  await eventually(async () => await status() === 'invalidated key product:1')
  t.notOk(await app.appCache.has('product:1'), 'the key is gone')
  await page.selectOption('#invalidate select[name="kind"]', 'tag')
  await page.fill('#invalidate input[name="name"]', 'products')
  await page.click('#invalidate button[type="submit"]')
  await eventually(async () => await status() === 'invalidated tag products')
  t.equal(app.multiCache.stats().app?.tagInvalidations, 1, 'the tag form invalidated the tag')

  const screenshot = join(await mkdtemp(join(tmpdir(), 'fmc-dashboard-')), 'dashboard.png')
  await page.screenshot({ path: screenshot, fullPage: true })
  t.ok(existsSync(screenshot), `screenshot at ${screenshot}`)
  t.same(problems, [], 'no script error and no Content-Security-Policy violation')
})
