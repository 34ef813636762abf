// The soak's table, printed and written to the README's Guarantees section between its markers.
import { readFile, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'

/** What one store's run found. */
export interface SoakRun {
  store: string
  requests: number
  requestsPerSecond: number
  /** Latency percentiles, ms. */
  p50: number
  p99: number
  /** Server CPU time per request, µs. */
  cpuPerRequest: number
  /** Responses that were not what the visit expects, errors and timeouts, warm-up included. */
  failed: number
  /** What failed, in words (`12 × POST /cart → 500`), when anything did. */
  failures: string[]
  /** Heap used after a forced GC, bytes: once warmed up, and at the end. */
  heapWarm: number
  heapEnd: number
}

/** Heap at the end may exceed heap after warm-up by at most this share. */
export const HEAP_GROWTH_LIMIT = 0.1

export const heapGrowth = (run: SoakRun): number => run.heapEnd / run.heapWarm - 1
export const met = (run: SoakRun): boolean => run.failed === 0 && heapGrowth(run) <= HEAP_GROWTH_LIMIT

export const machine = (): string => `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}`

const COLUMNS = ['store', 'requests', 'req/s', 'p50', 'p99', 'server CPU per request', 'failed responses', 'heap after GC: warm-up → end', 'met'] as const

const mb = (bytes: number): string => (bytes / 2 ** 20).toFixed(1)
const signed = (share: number): string => (share >= 0 ? '+' : '') + (share * 100).toFixed(1) + ' %'

function rows (runs: readonly SoakRun[]): string[][] {
  return runs.map((run) => [
    run.store, run.requests.toLocaleString('en'), run.requestsPerSecond.toFixed(0), `${run.p50} ms`, `${run.p99} ms`,
    `${run.cpuPerRequest.toFixed(0)} µs`, String(run.failed),
    `${mb(run.heapWarm)} → ${mb(run.heapEnd)} MiB (${signed(heapGrowth(run))})`, met(run) ? 'yes' : 'NO'
  ])
}

export function printTable (runs: readonly SoakRun[]): void {
  const table = [[...COLUMNS], ...rows(runs)]
  const widths = COLUMNS.map((_, column) => Math.max(...table.map((row) => (row[column] as string).length)))
  const line = (row: string[]): string => row.map((cell, column) => cell.padEnd(widths[column] as number)).join('  ')
  console.log('\n' + line(table[0] as string[]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of table.slice(1)) console.log(line(row))
}

const README = fileURLToPath(new URL('../../README.md', import.meta.url))
const START = '<!-- soak:start -->'
const END = '<!-- soak:end -->'
const SECTION = '## Guarantees'
const PLACEHOLDER = 'Each promise this package makes, with the test or the figure that proves it, is to be listed here.'

/** The README with `block` between the soak markers, adding the Guarantees section (before TypeScript) if missing. */
function withBlock (readme: string, block: string): string {
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start !== -1 && end > start) return readme.slice(0, start + START.length) + '\n' + block + '\n' + readme.slice(end)
  if (readme.includes(SECTION + '\n')) throw new Error(`README.md has a ${SECTION} section without the ${START} … ${END} markers`)
  const before = readme.indexOf('## TypeScript\n')
  if (before === -1) throw new Error('README.md has no ## TypeScript section to put Guarantees before')
  const section = `${SECTION}\n\n${PLACEHOLDER}\n\n${START}\n${block}\n${END}\n\n`
  return readme.slice(0, before) + section + readme.slice(before)
}

/** `text` broken into lines of at most 115 characters, as the README's prose is. */
function wrap (text: string): string {
  const lines: string[] = []
  for (const word of text.split(' ')) {
    const last = lines.length - 1
    if (last >= 0 && (lines[last] as string).length + 1 + word.length <= 115) lines[last] += ' ' + word
    else lines.push(word)
  }
  return lines.join('\n')
}

/**
 * Rewrites the soak block of the README: the command, the date, the machine, what was run, the table, and what
 * failed, if anything did.
 */
export async function updateReadme (runs: readonly SoakRun[], command: string, setup: string): Promise<void> {
  const escape = (cell: string): string => cell.replaceAll('|', '\\|')
  const failures = runs.filter((run) => run.failures.length > 0).map((run) => `${run.store}: ${run.failures.join(', ')}.`)
  const block = [
    wrap(`\`${command}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}. ${setup}`),
    '',
    '| ' + COLUMNS.join(' | ') + ' |',
    '|' + COLUMNS.map(() => ' --- ').join('|') + '|',
    ...rows(runs).map((row) => '| ' + row.map(escape).join(' | ') + ' |'),
    ...(failures.length === 0 ? [] : ['', wrap('Failed: ' + failures.join(' '))])
  ].join('\n')
  await writeFile(README, withBlock(await readFile(README, 'utf8'), block))
}
