/** The part of a pino-style logger the levels use; `fastify.log` fits. */
export interface Logger {
  warn (details: object, message: string): void
  info? (details: object, message: string): void
}

/**
 * Logs the first fault of a burst and counts the rest: while Redis is down every request would otherwise log the
 * same line. After `windowMs` of quiet-or-not, the next fault is logged again with how many were held back.
 */
export class BurstLog {
  private until = 0
  private held = 0

  constructor (private readonly log: Logger, private readonly windowMs = 10_000) {}

  warn (details: object, message: string): void {
    const now = Date.now()
    if (now < this.until) {
      this.held++
      return
    }
    this.until = now + this.windowMs
    const held = this.held
    this.held = 0
    this.log.warn(held === 0 ? details : { ...details, suppressed: held }, message)
  }
}
