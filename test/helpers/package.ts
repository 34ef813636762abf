import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { resolve, join } from 'node:path'
import { promisify } from 'node:util'

export const run = promisify(execFile)

/** The repository, whose package.json the built package and the README examples are found through. */
export const root = resolve(import.meta.dirname, '../..')

/**
 * The environment of a shell outside this project: npm's script settings would point an inner npm at this project
 * (npm_config_local_prefix), and tap's loaders and coverage have no business in a user's app.
 */
export const outside = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|TAP|NODE_OPTIONS$|NODE_V8_COVERAGE$)/.test(name)))

/** Builds the package unless it is built: what users import, `fastify-multi-cache` by name, is dist/. */
export async function built (): Promise<void> {
  if (!existsSync(join(root, 'dist/cjs/index.js'))) await run('npm', ['run', 'build'], { cwd: root, env: outside })
}
