import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { test } from 'tap'

const run = promisify(execFile)
const root = resolve(import.meta.dirname, '..')

async function built (): Promise<void> {
  if (!existsSync(join(root, 'dist/cjs/index.js'))) await run('npm', ['run', 'build'], { cwd: root })
}

// What a user installs with the package is what its code imports at run time, nothing more: Fastify, which only the
// types name, is the app's (fastify-plugin's `fastify: '5.x'` checks its version), so that no second copy of it can
// appear under the package; the client of a shared store is an optional peer.
test('dependencies are exactly the packages the built code imports, optional peers aside', async (t) => {
  await built()
  const manifest = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as Record<string, Record<string, unknown>>
  const imported = new Set<string>()
  for (const file of await readdir(join(root, 'dist/esm'), { recursive: true })) {
    if (!file.endsWith('.js')) continue
    for (const [, specifier = ''] of (await readFile(join(root, 'dist/esm', file), 'utf8')).matchAll(/(?:from |import\()'([^'.][^']*)'/g)) {
      if (!specifier.startsWith('node:')) imported.add(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'))
    }
  }
  const peers = Object.keys(manifest.peerDependencies ?? {})
  t.same(Object.keys(manifest.dependencies ?? {}).sort(), [...imported].filter((name) => !peers.includes(name)).sort())
  t.same(peers.filter((name) => imported.has(name)).filter((name) => manifest.peerDependenciesMeta?.[name] === undefined), [], 'imported peers are optional')
  t.equal(manifest.dependencies?.fastify, undefined, 'fastify is not a runtime dependency')
  t.type(manifest.devDependencies?.fastify, 'string', 'fastify is a devDependency')
})

// The built package, installed by name through its package.json exports, from both module systems.
test('import and require of the built package, with its entry points', async (t) => {
  await built()
  const dir = await mkdtemp(join(tmpdir(), 'fmc-package-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, 'node_modules'))
  await symlink(root, join(dir, 'node_modules/fastify-multi-cache'), 'dir')
  const check = `
    const app = fastify()
    await app.register(multiCache, { session: { secret: 's'.repeat(32) } })
    app.get('/', async (request) => request.cache.getOrLoad('k', () => 'v', { level: 'app' }))
    const body = (await app.inject('/')).body
    await app.close()
    console.log(JSON.stringify({ body, kinds: [typeof multiCache, typeof requestCache, typeof sessionCache, typeof appCache, typeof subRequest, typeof subSession, typeof subApp] }))`
  await writeFile(join(dir, 'esm.mjs'), `
    import fastify from '${join(root, 'node_modules/fastify/fastify.js')}'
    import multiCache, { requestCache, sessionCache, appCache } from 'fastify-multi-cache'
    import subRequest from 'fastify-multi-cache/request'
    import subSession from 'fastify-multi-cache/session'
    import subApp from 'fastify-multi-cache/app'
    ${check}`)
  await writeFile(join(dir, 'cjs.cjs'), `
    const fastify = require('${join(root, 'node_modules/fastify/fastify.js')}')
    const pkg = require('fastify-multi-cache')
    const { requestCache, sessionCache, appCache } = pkg
    const multiCache = pkg.multiCache
    const subRequest = require('fastify-multi-cache/request').default
    const subSession = require('fastify-multi-cache/session').sessionCache
    const subApp = require('fastify-multi-cache/app').appCache
    ;(async () => { ${check} })().catch((error) => { console.error(error); process.exit(1) })`)
  const expected = { body: 'v', kinds: Array(7).fill('function') }
  for (const file of ['esm.mjs', 'cjs.cjs']) {
    const { stdout } = await run(process.execPath, [file], { cwd: dir })
    t.same(JSON.parse(stdout), expected, file)
  }
  await writeFile(join(dir, 'register-module.cjs'), `
    const app = require('${join(root, 'node_modules/fastify/fastify.js')}')()
    app.register(require('fastify-multi-cache')).ready().then(() => { console.log(app.hasRequestDecorator('cache')); return app.close() })`)
  t.equal((await run(process.execPath, ['register-module.cjs'], { cwd: dir })).stdout.trim(), 'true', 'fastify.register(require(...)) works as with any plugin')
})
