import { existsSync } from 'node:fs'
import { cp, mkdtemp, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'tap'
import * as errorModule from '../lib/errors.js'
import { built, outside, root, run } from './helpers/package.js'
import { REDIS_URL, redisFor, uniquePrefix } from './helpers/redis.js'

async function versionOf (installed: string): Promise<string> {
  return (JSON.parse(await readFile(join(root, 'node_modules', installed, 'package.json'), 'utf8')) as { version: string }).version
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
  t.same(await reachable('index.js', /^@opentelemetry\//), [], 'the root never imports OpenTelemetry, not even through a file it imports')
  t.ok((await reachable('lib/otel.js', /^@opentelemetry\//)).length > 0, 'which the otel entry does')
  t.type(manifest.devDependencies?.fastify, 'string', 'fastify is a devDependency')
})

/** The packages matching `pattern` that `entry` of the ESM build imports, itself or through the files it imports. */
async function reachable (entry: string, pattern: RegExp): Promise<string[]> {
  const found = new Set<string>()
  const seen = new Set<string>()
  const walk = async (file: string): Promise<void> => {
    if (seen.has(file)) return
    seen.add(file)
    const source = await readFile(join(root, 'dist/esm', file), 'utf8')
    for (const [, specifier = ''] of source.matchAll(/(?:from |import\(|import )'([^']+)'/g)) {
      if (specifier.startsWith('.')) await walk(join(file, '..', specifier))
      else if (pattern.test(specifier)) found.add(specifier)
    }
  }
  await walk(entry)
  return [...found]
}

// The packed tarball installed into an app as a user installs it, beside the newest majors of what it works with
// (ioredis 6, @fastify/redis 9, whose ranges npm resolves against the package's peers); only TypeScript and Node's
// types come from this repository. `npm test` runs this file on its own (test:package), after the other files: its
// installs and type checks would take the CPU that tests with 100 ms store budgets need.
test('the packed tarball installs beside the newest majors, type-checks under every resolution, and runs from ESM and CJS', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  await built()
  const dir = await mkdtemp(join(tmpdir(), 'fmc-tarball-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const packed = JSON.parse((await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root, env: outside })).stdout) as Array<{ filename: string }>
  const app = join(dir, 'app')
  await cp(join(import.meta.dirname, 'fixtures/consumer'), app, { recursive: true })
  await writeFile(join(app, 'package.json'), JSON.stringify({
    private: true,
    type: 'module',
    dependencies: {
      'fastify-multi-cache': `file:../${packed[0]?.filename ?? ''}`,
      // The versions installed here, which npm ci left in npm's cache.
      fastify: await versionOf('fastify'),
      ioredis: await versionOf('ioredis-6'),
      '@fastify/redis': await versionOf('fastify-redis-9'),
      // The optional peers of fastify-multi-cache/otel, and an SDK to see its spans.
      '@opentelemetry/api': await versionOf('@opentelemetry/api'),
      '@opentelemetry/instrumentation': await versionOf('@opentelemetry/instrumentation'),
      '@opentelemetry/sdk-trace-node': await versionOf('@opentelemetry/sdk-trace-node')
    }
  }))
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', '--no-package-lock'], { cwd: app, env: outside })
  t.notOk(existsSync(join(app, 'node_modules/fastify-multi-cache/node_modules/fastify')), "one Fastify: the app's")
  await mkdir(join(app, 'node_modules/@types'))
  await symlink(join(root, 'node_modules/@types/node'), join(app, 'node_modules/@types/node'), 'dir')

  // The root alone from ESM under each resolution, the other entry points alone from CommonJS (node16 resolves
  // `require` as nodenext does): one program per module system, since a program holding both would see two
  // declarations of each decorator (the ESM and the CJS one) and refuse them. One `tsc -b` shares what the programs
  // have in common; skipDefaultLibCheck leaves out TypeScript's own lib files, which are not what is tested.
  const programs = {
    node16: { module: 'node16', moduleResolution: 'node16', file: 'types.ts' },
    nodenext: { module: 'nodenext', moduleResolution: 'nodenext', file: 'types.ts' },
    bundler: { module: 'esnext', moduleResolution: 'bundler', file: 'types.ts' },
    commonjs: { module: 'nodenext', moduleResolution: 'nodenext', file: 'subpaths.cts' },
    // Declared keys (typed-keys.ts), in programs of their own: a declaration holds for its whole program.
    'typed-node16': { module: 'node16', moduleResolution: 'node16', file: 'typed-keys.ts', noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true },
    'typed-bundler': { module: 'esnext', moduleResolution: 'bundler', file: 'typed-keys.ts', noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true }
  }
  for (const [name, { file, ...resolution }] of Object.entries(programs)) {
    const compilerOptions = { ...resolution, target: 'ES2022', strict: true, skipLibCheck: false, skipDefaultLibCheck: true, noEmit: true, types: ['node'] }
    await writeFile(join(app, `tsconfig.${name}.json`), JSON.stringify({ compilerOptions, files: [file] }))
  }
  const configs = Object.keys(programs).map((name) => `tsconfig.${name}.json`)
  const errors = await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b', ...configs], { cwd: app })
    .then(() => '', (error: { stdout: string }) => error.stdout)
  t.equal(errors, '', 'types.ts under node16, nodenext and bundler resolution, subpaths.cts under nodenext and typed-keys.ts under node16 and bundler, with skipLibCheck: false')

  const expected = {
    ioredis: '6',
    cart: { cart: ['apple'], catalog: ['pear'] },
    pages: [[1, 'MISS'], [1, 'HIT-APP']],
    levels: ['request', 'session', 'app', 'route'],
    admin: [403, 1],
    plugins: ['appCache', 'requestCache', 'routeCache', 'sessionCache', 'admin', 'app', 'request', 'route', 'session'].map((name) => `${name}: function`)
  }
  for (const consumer of ['esm.mjs', 'cjs.cjs']) {
    const { stdout } = await run(process.execPath, [consumer], { cwd: app, env: { ...outside, REDIS_URL, PREFIX: `${prefix}${consumer}:` } })
    t.same(JSON.parse(stdout), expected, consumer)
  }

  // The OpenTelemetry entry point from both module systems; the root, required alone, loads nothing of OpenTelemetry.
  const spans = { base: true, spans: ['cache.load', 'cache.getOrLoad', 'parent'] }
  t.same(JSON.parse((await run(process.execPath, ['otel.cjs'], { cwd: app, env: outside })).stdout), { before: [], ...spans }, 'otel.cjs')
  t.same(JSON.parse((await run(process.execPath, ['otel.mjs'], { cwd: app, env: outside })).stdout), spans, 'otel.mjs')

  // An app that imports the package and requires it too holds two copies of each error class: `instanceof` holds
  // across them, from a real error handler and for every class the root exports.
  const mixed = JSON.parse((await run(process.execPath, ['mixed.mjs'], { cwd: app, env: outside })).stdout) as { answers: unknown, classes: string[], across: string[] }
  t.same(mixed.answers, [
    [504, { code: 'FST_MULTICACHE_LOAD_TIMEOUT', matched: ['LoadTimeoutError'] }],
    [500, { code: 'FST_MULTICACHE_INVALID_KEY', matched: ['InvalidKeyError'] }]
  ], "an error of the required copy, matched with the imported copy's classes")
  const made = Object.keys(errorModule).filter((name) => name.endsWith('Error')).sort()
  t.same(mixed.classes, made, 'every error class is exported from the package root')
  t.same(mixed.across, made, 'and is an instance of its own class only, whichever copy made it and whichever copy asks')
})
