import { test } from 'tap'
import FakeTimers from '@sinonjs/fake-timers'
import { BurstLog } from '../../lib/burst-log.js'

test('a burst of faults logs once, then again with the count held back', async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const lines: Array<{ details: object, message: string }> = []
  const log = new BurstLog({ warn: (details, message) => { lines.push({ details, message }) } }, 1000)
  for (let i = 0; i < 50; i++) log.warn({ op: 'get' }, 'store down')
  t.same(lines, [{ details: { op: 'get' }, message: 'store down' }])
  clock.tick(1001)
  log.warn({ op: 'get' }, 'store down')
  t.same(lines[1], { details: { op: 'get', suppressed: 49 }, message: 'store down' })
})
