/** The part of a pino-style logger the levels use; `fastify.log` and `request.log` fit. */
export interface Logger {
  warn (details: object, message: string): void
  info? (details: object, message: string): void
  debug? (details: object, message: string): void
  /** pino's: lets a level skip building a line nobody reads. */
  isLevelEnabled? (level: string): boolean
}

/**
 * Logs the first fault of a burst and counts the rest: while Redis is down every request would otherwise log the
 * same line. After `windowMs` of quiet-or-not, the next fault is logged again with how many were held back.
 */
export class BurstLog {
  private until = 0
  private held = 0

  constructor (private readonly log: Logger, private readonly windowMs = 10_000) {}

  /** `through`: the logger of the request that met the fault, so that its id is on the line. */
  warn (details: object, message: string, through: Logger = this.log): void {
    const now = Date.now()
    if (now < this.until) {
      this.held++
      return
    }
    this.until = now + this.windowMs
    const held = this.held
    this.held = 0
    through.warn(held === 0 ? details : { ...details, suppressed: held }, message)
  }
}
