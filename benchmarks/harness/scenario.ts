import type { Result } from './results.js'

/** One file under `scenarios/`, registered in `scenarios/index.ts`: `npm run bench -- <name>` runs it alone. */
export interface Scenario {
  name: string
  run (): Promise<Result[]>
}
