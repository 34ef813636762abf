const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/

/**
 * Reads a duration: a non-negative number of milliseconds, or a string such as `'500ms'`, `'30s'`, `'30m'`,
 * `'12h'`, `'7d'`. Returns undefined for anything else so that the caller can name the option in its error.
 */
export function parseDuration (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined
  if (typeof value !== 'string') return undefined
  const match = PATTERN.exec(value.trim())
  if (match === null) return undefined
  return Math.round(Number(match[1]) * (UNITS[match[2] as string] as number))
}

/** A duration option: milliseconds or a duration string. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd'}`
