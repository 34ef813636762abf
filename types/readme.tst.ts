import { expect, test } from 'tstyche'
import type { Store as ReadmeStore } from '../examples/readme/store.js'
import type { Store } from '../index.js'

test("the README's Store interface is the one the package exports", () => {
  expect<ReadmeStore>().type.toBe<Store>()
})
