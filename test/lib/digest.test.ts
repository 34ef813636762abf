import { createHash } from 'node:crypto'
import { test } from 'tap'
import { digest } from '../../lib/digest.js'
import { sessionStoreKey } from '../../lib/keys.js'

test('digest: the same text as a Hash object makes, so that keys already in a store stay the same', async (t) => {
  for (const data of ['', 'a session id', 'ü€😀', 'x'.repeat(10_000), Buffer.from([0, 1, 2, 255])]) {
    for (const algorithm of ['sha256', 'sha1'] as const) {
      for (const encoding of ['base64url', 'hex'] as const) {
        t.equal(digest(algorithm, data, encoding), createHash(algorithm).update(data).digest(encoding), `${algorithm} ${encoding}`)
      }
    }
  }
  // A session stored before this change is found after it.
  t.equal(sessionStoreKey('abc'), 'ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0')
})
