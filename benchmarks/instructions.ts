// `npm run bench:instructions [-- --seeds=<n>]`: the advisor's cost (issue 25) on the hot-path scenario's two rows (a
// request's request-level work, an appCache hit), counted in instructions by valgrind's callgrind instead of timed.
// A count moves far less than a time on this noisy VM, though not nothing (beside a full test run its A/A read 0.93: run
// it on a quiet machine and read the A/A column), so it tells apart what a timed ratio here cannot: how the cost moves
// as the engine warms up, and how much of it is the advisor's own work.
//
// Each contender (advisor off, on, off again as the A/A control) runs in a fresh process under callgrind, with V8 made
// repeatable (`--predictable`: one thread, no concurrent compiler, no timers of its own; fixed random and hash seeds,
// so the engine's choices and the advisor's draws repeat), bundled to plain JavaScript and two processes at a time (run
// through tsx's loader nine at a time, two runs of one contender differed by 2 to 8 %; so, two runs checked by hand
// agreed within 0.02 %, though per seed the A/A of a three-seed run read 0.97 to 1.08: the A/A column says). Each runs
// three times: `short`, `middle` and `long` operations. The instructions between two lengths, divided by the operations
// between them, are the cost of one operation in that window, start-up and loading left out: `early` (short to middle)
// and `steady` (middle to long). Seeds vary both seeds (the hash seed moves where keys fall in Maps).
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { build } from 'esbuild'
import { spread } from './harness/rounds.js'
import { hits, neverCalled, openApp, request } from './scenarios/hot-path.js'

type Workload = 'request' | 'hit'
type Contender = 'advisor: false' | 'advisor: true' | 'advisor: false (A/A)'
const CONTENDERS: readonly Contender[] = ['advisor: false', 'advisor: true', 'advisor: false (A/A)']

/** Operations of the three runs: the first window is the engine warming up, the second its steady state. */
const LENGTHS: Record<Workload, { short: number, middle: number, long: number }> = {
  request: { short: 20_000, middle: 100_000, long: 300_000 },
  hit: { short: 100_000, middle: 1_000_000, long: 3_000_000 }
}

const HERE = fileURLToPath(import.meta.url)
/**
 * The child, bundled to plain JavaScript (no loader thread of tsx's beside it). Beside benchmarks/, so that the
 * package's `dist/` and node_modules resolve from it as from the sources; ignored by git and eslint.
 */
const CHILD = fileURLToPath(new URL('./.instructions/child.mjs', import.meta.url))
const run = promisify(execFile)

/** The child: one app, `operations` of the workload, then exit. */
async function child (workload: Workload, advisor: boolean, operations: number): Promise<void> {
  const app = await openApp(advisor)
  if (workload === 'request') {
    for (let i = 0; i < operations; i++) request(app.requests)
  } else {
    const hundredHits = hits(async (key) => await app.appCache.getOrLoad(key, neverCalled))
    for (let i = 0; i < operations / 100; i++) await hundredHits()
  }
  await app.close()
}

/** Instructions of one child run. */
async function counted (workload: Workload, contender: Contender, operations: number, seed: number): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'fmc-instructions-'))
  try {
    const out = join(dir, 'callgrind.out')
    await run('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, '--predictable', `--random-seed=${seed}`, `--hash-seed=${seed}`,
      CHILD, '--child', workload, String(contender === 'advisor: true'), String(operations)], { maxBuffer: 1 << 26 })
    const instructions = Number(/^(?:summary|totals): (\d+)/m.exec(await readFile(out, 'utf8'))?.[1])
    if (!Number.isFinite(instructions)) throw new Error(`no instruction count in ${out}`)
    return instructions
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

interface Windows { early: number, steady: number }

/** Runs `job`s two at a time, one per core: see the head of this file. */
function twoAtATime (): <T>(job: () => Promise<T>) => Promise<T> {
  let running = 0
  const waiting: Array<() => void> = []
  return async (job) => {
    if (running >= 2) await new Promise<void>((resolve) => { waiting.push(resolve) })
    running++
    try {
      return await job()
    } finally {
      running--
      waiting.shift()?.()
    }
  }
}

async function perOperation (workload: Workload, contender: Contender, seed: number, slot: ReturnType<typeof twoAtATime>): Promise<Windows> {
  const { short, middle, long } = LENGTHS[workload]
  const [a, b, c] = await Promise.all([short, middle, long].map(async (n) => await slot(async () => await counted(workload, contender, n, seed))))
  return { early: ((b as number) - (a as number)) / (middle - short), steady: ((c as number) - (b as number)) / (long - middle) }
}

async function main (): Promise<void> {
  await build({ entryPoints: [HERE], outfile: CHILD, bundle: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'warning' })
  const seeds = Number(/--seeds=(\d+)/.exec(process.argv.join(' '))?.[1] ?? 3)
  const slot = twoAtATime()
  for (const workload of ['request', 'hit'] as const) {
    const rows: Array<{ seed: number } & Record<Contender, Windows>> = []
    for (let i = 0; i < seeds; i++) {
      const seed = 1000 + i * 7919
      const measured = await Promise.all(CONTENDERS.map(async (contender) => await perOperation(workload, contender, seed, slot)))
      rows.push({ seed, ...Object.fromEntries(CONTENDERS.map((contender, j) => [contender, measured[j]])) } as typeof rows[number])
    }
    console.log(`\n${workload === 'request' ? "a request's reqCache work (open, 10 sets, 100 gets, end)" : 'an appCache.getOrLoad hit'}: instructions per operation`)
    for (const window of ['early', 'steady'] as const) {
      const ratios = rows.map((row) => row['advisor: true'][window] / row['advisor: false'][window])
      const control = rows.map((row) => row['advisor: false (A/A)'][window] / row['advisor: false'][window])
      const figures = rows.map((row) => `seed ${row.seed}: ${CONTENDERS.map((contender) => row[contender][window].toFixed(0)).join(' / ')}`).join('; ')
      console.log(`  ${window.padEnd(6)} advisor: true ÷ false ${spread(ratios).median.toFixed(3)} (${ratios.map((r) => r.toFixed(3)).join(', ')}), A/A ${spread(control).median.toFixed(3)}; off / on / off again: ${figures}`)
    }
  }
}

const at = process.argv.indexOf('--child')
if (at === -1) await main()
else await child(process.argv[at + 1] as Workload, process.argv[at + 2] === 'true', Number(process.argv[at + 3]))
