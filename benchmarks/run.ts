// npm run bench [-- <scenario> …] [--quick]: runs the scenarios, prints the table, and (unless --quick) writes
// results/latest.json and the table of benchmarks/README.md.
import { CLIENT_CORE, pin } from './harness/cores.js'
import { printTable, updateReadme, writeResults, type Result } from './harness/results.js'
import { settings } from './harness/settings.js'
import { scenarios } from './scenarios/index.js'

const asked = process.argv.slice(2).filter((arg) => !arg.startsWith('--'))
const unknown = asked.filter((name) => !scenarios.some((s) => s.name === name))
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}; known: ${scenarios.map((s) => s.name).join(', ')}`)
  process.exit(1)
}
const chosen = asked.length === 0 ? scenarios : scenarios.filter((s) => asked.includes(s.name))

pin(process.pid, CLIENT_CORE)
const results: Result[] = []
for (const scenario of chosen) {
  const started = Date.now()
  console.log(`${scenario.name}…`)
  const found = await scenario.run()
  results.push(...found)
  printTable(found)
  console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)\n`)
}

console.log('\nAll scenarios of this run:')
printTable(results)
if (settings.quick) {
  console.log('\n--quick: nothing written')
} else {
  const command = 'npm run bench' + (asked.length > 0 ? ' -- ' + asked.join(' ') : '')
  const file = await writeResults(results, command)
  await updateReadme(file)
  console.log('\nwritten: benchmarks/results/latest.json, benchmarks/README.md')
}
if (results.some((r) => r.met === false)) process.exitCode = 1
