/**
 * How long and how often to measure. `--quick` (for working on a scenario) measures briefly and writes no results:
 * its figures are too noisy to publish.
 */
const quick = process.argv.includes('--quick') || process.env.BENCH_QUICK === '1'
// Child processes (servers, micro benchmarks) inherit it through the environment.
if (quick) process.env.BENCH_QUICK = '1'

export const settings = {
  quick,
  /** Seconds of one HTTP measurement. */
  seconds: quick ? 1 : 3,
  /** Seconds of load each server gets before the first round. */
  warmupSeconds: quick ? 1 : 2,
  /** Rounds of a comparison: every contender is measured once per round. */
  rounds: quick ? 3 : 7,
  /** Milliseconds one tinybench task runs per round. */
  microMs: quick ? 100 : 400
}
