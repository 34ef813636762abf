import { randomInt } from 'node:crypto'

/** The median, min and max of a series of per-round figures. */
export interface Spread {
  median: number
  min: number
  max: number
}

export function spread (values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('no values to summarise')
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number }
}

/** The `p`th percentile (0–100) of `values`, nearest rank. */
export function percentile (values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('no values to take a percentile of')
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number
}

/**
 * Measures every contender once per round, one after another (A B C, C B A, …), so that a slow spell of the machine
 * falls on all of them rather than on one; with `atOnce`, all of a round at the same time, started in that order.
 * Returns each contender's measurements, one per round. A round that fails with an error `again` accepts is measured
 * again, whole (its measurements are taken together), up to `ATTEMPTS` times; `again` says why.
 */
export async function alternate<C extends string, M> (
  contenders: readonly C[],
  rounds: number,
  measure: (contender: C, round: number) => Promise<M>,
  atOnce = false,
  again?: (error: unknown, round: number) => boolean
): Promise<Record<C, M[]>> {
  const samples = Object.fromEntries(contenders.map((c) => [c, [] as M[]])) as Record<C, M[]>
  for (let round = 0; round < rounds; round++) {
    // Every other round in reverse (A B C, C B A, …): going first or last in a round costs or gains a little (the
    // client's state, the other processes' timers), and in one order always the same contender would pay it.
    const order = round % 2 === 0 ? contenders : [...contenders].reverse()
    for (let attempt = 1; ; attempt++) {
      try {
        const measured = await measureRound(order, (contender) => measure(contender, round), atOnce)
        order.forEach((contender, i) => { samples[contender].push(measured[i] as M) })
        break
      } catch (error) {
        if (attempt >= ATTEMPTS || again?.(error, round) !== true) throw error
      }
    }
  }
  return samples
}

/** Attempts at a round that fails with an error the caller accepts (see `alternate`). */
const ATTEMPTS = 3

/** One round's measurements, in `order`; a failure fails it once every measurement of it has ended. */
async function measureRound<C extends string, M> (order: readonly C[], measure: (contender: C) => Promise<M>, atOnce: boolean): Promise<M[]> {
  if (!atOnce) {
    const measured: M[] = []
    for (const contender of order) measured.push(await measure(contender))
    return measured
  }
  // Settled, not `Promise.all`: a round measured again must not start while one of its measurements still runs.
  const settled = await Promise.allSettled(order.map(async (contender) => await measure(contender)))
  const failed = settled.find((outcome) => outcome.status === 'rejected')
  if (failed !== undefined) throw failed.reason
  return settled.map((outcome) => (outcome as PromiseFulfilledResult<M>).value)
}

/** Round by round `subject ÷ baseline`: measurements of one round are paired, never medians of different rounds. */
export function pairedRatios (subject: readonly number[], baseline: readonly number[]): number[] {
  if (subject.length !== baseline.length) throw new Error('paired ratios need as many rounds on each side')
  return subject.map((value, round) => value / (baseline[round] as number))
}

/**
 * `measure` run `starts` times, each time on processes started afresh that share the Node flag it is given (a hash
 * seed drawn for that start), every contender's rounds in one list. A process's code and heap settle differently each
 * time it starts (V8's hash seed alone moves a Map's lookups), and that luck lasts its life: with one start per
 * contender it is part of every round, and the median is over one draw of it instead of `starts`.
 */
export async function acrossStarts<C extends string, M> (
  contenders: readonly C[],
  starts: number,
  measure: (hashSeed: string) => Promise<Record<C, M[]>>
): Promise<Record<C, M[]>> {
  const all = Object.fromEntries(contenders.map((contender) => [contender, [] as M[]])) as Record<C, M[]>
  for (let start = 0; start < starts; start++) {
    const measured = await measure(`--hash-seed=${randomInt(1, 2 ** 31)}`)
    for (const contender of contenders) all[contender].push(...measured[contender])
  }
  return all
}
