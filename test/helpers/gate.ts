/**
 * A point a handler or a loader stops at until the test opens it: ordering without sleeps. `pass()` is what the
 * code under test awaits; `reached` tells the test it got there.
 */
export class Gate {
  readonly reached: Promise<void>
  private readonly opened: Promise<void>
  private arrive: () => void = () => {}
  private open: () => void = () => {}

  constructor () {
    this.reached = new Promise((resolve) => { this.arrive = resolve })
    this.opened = new Promise((resolve) => { this.open = resolve })
  }

  async pass (): Promise<void> {
    this.arrive()
    await this.opened
  }

  release (): void {
    this.open()
  }
}

/** Gates by name, made on first use by either side. */
export class Gates {
  private readonly gates = new Map<string, Gate>()

  get (name: string): Gate {
    let gate = this.gates.get(name)
    if (gate === undefined) this.gates.set(name, gate = new Gate())
    return gate
  }
}
