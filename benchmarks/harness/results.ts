import { readFile, rename, writeFile } from 'node:fs/promises'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { Spread } from './rounds.js'

/**
 * A target a figure must meet, such as `>= 2.5` for a throughput ratio or `<= 2` for a time ratio; `within` a
 * `tolerance` of `value` for an A/A control, which must read about 1.
 */
export interface Target {
  op: '>=' | '<=' | '<' | '=' | 'within'
  value: number
  /** With `within`: how far from `value` the figure may be. */
  tolerance?: number
  /** Which figure must meet it: the median (default), or the worst round's where every round must (no failure). */
  of?: 'median' | 'max'
}

/** One claimed figure of a scenario, as written to `results/latest.json`. */
export interface Result extends Spread {
  scenario: string
  /** What is compared, in words. */
  measure: string
  /** The subject first, then what it is compared with. */
  contenders: string[]
  /** What `median`, `min` and `max` are (a req/s ratio, a time ratio, loader calls, bytes). */
  unit: string
  rounds: number
  target: Target | undefined
  met: boolean | undefined
  /** Absolute figures (medians over the rounds), printed for context and never claimed. */
  context: string
  date: string
  /** The machine it was measured on: CPU model, cores and Node version (results of several runs sit together). */
  machine: string
}

export function meets (value: number, target: Target): boolean {
  switch (target.op) {
    case '>=': return value >= target.value
    case '<=': return value <= target.value
    case '<': return value < target.value
    case '=': return value === target.value
    case 'within': return Math.abs(value - target.value) <= (target.tolerance ?? 0)
  }
}

/** A result whose median is checked against `target` (or only reported, without one). */
export function result (fields: Omit<Result, 'met' | 'date' | 'machine'>): Result {
  const { target } = fields
  const judged = target?.of === 'max' ? fields.max : fields.median
  return { ...fields, met: target === undefined ? undefined : meets(judged, target), date: new Date().toISOString(), machine: MACHINE }
}

/**
 * A row as it stands beside its A/A control (the same contender twice): void, neither met nor missed, when the
 * control read outside its own target, since the machine's noise alone then moved a ratio as far as the row's.
 */
export function judgedBy (control: Result): (row: Result) => Result {
  return (row) => control.met === true ? row : { ...row, met: undefined, context: `VOID (the A/A control read ${control.median.toFixed(2)}); ${row.context}` }
}

const MACHINE = `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}`

const RESULTS = fileURLToPath(new URL('../results/latest.json', import.meta.url))
const README = fileURLToPath(new URL('../README.md', import.meta.url))

export interface ResultsFile {
  /** The command of the run, or of each run the rows come from, the earliest first (joined by `THEN`). */
  command: string
  node: string
  cpus: string
  date: string
  results: Result[]
}

/** Between the commands of the runs a table's rows come from. */
const THEN = ', then '

/**
 * Writes `results/latest.json`: the scenarios just run replace their earlier results, the others are kept (each
 * result carries its date). Written to a temporary file first, so a run that dies midway leaves the last good file.
 */
export async function writeResults (fresh: readonly Result[], command: string): Promise<ResultsFile> {
  const ran = new Set(fresh.map((r) => r.scenario))
  const previous = await readResults()
  const before = previous?.results ?? []
  // A scenario run again keeps its place in the table.
  const order = new Set([...before, ...fresh].map((r) => r.scenario))
  const results = [...order].flatMap((scenario) => (ran.has(scenario) ? fresh : before).filter((r) => r.scenario === scenario))
  // The table says which runs its rows come from.
  const kept = [...order].some((scenario) => !ran.has(scenario))
  const file: ResultsFile = {
    command: kept && previous !== undefined ? `${previous.command}${THEN}${command}` : command,
    node: process.version,
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    date: new Date().toISOString(),
    results
  }
  await writeFile(RESULTS + '.tmp', JSON.stringify(file, null, 2) + '\n')
  await rename(RESULTS + '.tmp', RESULTS)
  return file
}

async function readResults (): Promise<ResultsFile | undefined> {
  try {
    return JSON.parse(await readFile(RESULTS, 'utf8')) as ResultsFile
  } catch {
    return undefined
  }
}

function figure (value: number): string {
  if (Number.isInteger(value)) return String(value)
  return value >= 100 ? value.toFixed(0) : value.toFixed(2)
}

function targetText (target: Target | undefined): string {
  if (target === undefined) return 'reported'
  if (target.op === 'within') return `${target.value.toFixed(2)} ± ${(target.tolerance ?? 0).toFixed(2)}`
  return `${target.op} ${figure(target.value)}` + (target.of === 'max' ? ' in every round' : '')
}

function metText (met: boolean | undefined): string {
  if (met === undefined) return '–'
  return met ? 'yes' : 'NO'
}

const COLUMNS = ['scenario', 'measure', 'unit', 'median', 'min – max', 'rounds', 'target', 'met', 'context'] as const

function rows (results: readonly Result[]): string[][] {
  return results.map((r) => [
    r.scenario, r.measure, r.unit, figure(r.median), `${figure(r.min)} – ${figure(r.max)}`, String(r.rounds),
    targetText(r.target), metText(r.met), r.context
  ])
}

/** The table printed at the end of a run. */
export function printTable (results: readonly Result[]): void {
  const table = [[...COLUMNS], ...rows(results)]
  const widths = COLUMNS.map((_, column) => Math.max(...table.map((row) => (row[column] as string).length)))
  const line = (row: string[]): string => row.map((cell, column) => cell.padEnd(widths[column] as number)).join('  ')
  console.log('\n' + line(table[0] as string[]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const row of table.slice(1)) console.log(line(row))
}

function markdownTable (file: ResultsFile): string {
  const escape = (cell: string): string => cell.replaceAll('|', '\\|')
  return [
    `Command ${file.command.split(THEN).map((run) => `\`${run}\``).join(THEN)}, Node ${file.node}, ${file.cpus}, ${file.date.slice(0, 10)} ` +
      '(each result carries its own date in `results/latest.json`).',
    '',
    '| ' + COLUMNS.join(' | ') + ' |',
    '|' + COLUMNS.map(() => ' --- ').join('|') + '|',
    ...rows(file.results).map((row) => '| ' + row.map(escape).join(' | ') + ' |')
  ].join('\n')
}

const START = '<!-- results:start -->'
const END = '<!-- results:end -->'

/** Replaces the table between the results markers of `benchmarks/README.md`, so the page never drifts from the file. */
export async function updateReadme (file: ResultsFile): Promise<void> {
  const readme = await readFile(README, 'utf8')
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start === -1 || end < start) throw new Error(`benchmarks/README.md lacks the ${START} … ${END} markers`)
  await writeFile(README, readme.slice(0, start + START.length) + '\n' + markdownTable(file) + '\n' + readme.slice(end))
}
