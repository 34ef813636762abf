import fc from 'fast-check'
import { test } from 'tap'
import { encodeJsonCopy, jsonSerializer, storedAs } from '../../lib/serializer.js'

/** What `jsonSerializer.encode` promises, written plainly: JSON with a replacer refusing what JSON would change. */
function reference (value: unknown): string {
  return JSON.stringify(value, function (_key, held: unknown) {
    const type = typeof held
    if (type === 'function' || type === 'symbol' || type === 'bigint') throw new Error(`JSON cannot keep a ${type}`)
    if (held instanceof Map || held instanceof Set) throw new Error(`JSON cannot keep a ${held.constructor.name}`)
    return held
  })
}

/** The text, or the message of the error, of encoding `value` one way. */
function outcome (encode: (value: unknown) => string, value: unknown): { text?: string, error?: string } {
  try {
    return { text: encode(value) }
  } catch (error) {
    return { error: (error as Error).message }
  }
}

class Point {
  constructor (readonly x: number, readonly y: number) {}
}

/** Values JSON keeps, and every kind it changes or refuses, nested in each other. */
const values = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue(),
    fc.constantFrom(undefined, Number.NaN, Infinity, -0, Symbol('s'), 10n, () => 1, new Map([[1, 2]]), new Set([1]), new Date(0), Buffer.from('ab'), new Point(1, 2), Object.create(null)),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('value'), { maxKeys: 4 }),
    tie('value').map((inner) => ({ toJSON: () => inner })),
    // A toJSON the walk does not meet as a property: not enumerable.
    tie('value').map((inner) => Object.defineProperty({ shown: 1 }, 'toJSON', { value: () => inner })),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('value'), { maxKeys: 3 }).map((fields) => Object.assign(Object.create(null) as object, fields)),
    // Arrays whose prototype is not Array's: JSON writes them as arrays, the replacer refuses a Map's or a Set's.
    fc.tuple(fc.array(tie('value'), { maxLength: 3 }), fc.constantFrom(Map.prototype, Set.prototype, null, Object.prototype)).map(([items, prototype]) => Object.setPrototypeOf(items, prototype) as unknown)
  )
})).value

test('jsonSerializer.encode: the same text, or the same refusal, as JSON with the refusing replacer, for any value', async (t) => {
  fc.assert(fc.property(values, (value) => {
    t.same(outcome(jsonSerializer.encode as (value: unknown) => string, value), outcome(reference, value))
  }), { numRuns: 2000 })
})

/** Whether `a` and `b` are the same data to the last detail: -0, prototypes, the order of keys, own fields only. */
function exactly (a: unknown, b: unknown): boolean {
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return Object.is(a, b)
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b) || Array.isArray(a) !== Array.isArray(b)) return false
  const keys = Reflect.ownKeys(a)
  const others = Reflect.ownKeys(b)
  if (keys.length !== others.length || keys.some((key, i) => key !== others[i])) return false
  return keys.every((key) => {
    const mine = Object.getOwnPropertyDescriptor(a, key) as PropertyDescriptor
    const theirs = Object.getOwnPropertyDescriptor(b, key) as PropertyDescriptor
    return mine.enumerable === theirs.enumerable && mine.writable === theirs.writable && exactly(mine.value, theirs.value)
  })
}

/** Plain data with what JSON changes in it (-0, NaN, undefined, holes) and keys an object must keep as its own. */
const plain = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.jsonValue(),
    fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 1e21, 0.1, '\ud800', '', null, true),
    fc.array(fc.oneof(tie('value'), fc.constant(undefined)), { maxLength: 4 }),
    fc.constantFrom([1, , 3], new Array(2)), // eslint-disable-line no-sparse-arrays
    fc.dictionary(fc.oneof(fc.string({ maxLength: 3 }), fc.constantFrom('__proto__', 'constructor', '1', '0', 'toString')), fc.oneof(tie('value'), fc.constant(undefined)), { maxKeys: 4 }),
    fc.dictionary(fc.string({ maxLength: 3 }), tie('value'), { maxKeys: 3 }).map((fields) => Object.assign(Object.create(null) as object, fields))
  )
})).value

test('encodeJsonCopy: the text jsonSerializer.encode writes, and a copy the same as its decode to the last detail, or nothing', async (t) => {
  const check = (value: unknown): void => {
    // What a store keeps in front of itself: the same as its decode, or the same refusal.
    const kept = outcome((held) => JSON.stringify([storedAs(jsonSerializer, 'key', held)]), value)
    const read = outcome((held) => JSON.stringify([jsonSerializer.decode(jsonSerializer.encode(held))]), value)
    t.same(kept.text, read.text)
    t.equal(kept.error === undefined, read.error === undefined)
    const encoded = encodeJsonCopy('key', value)
    if (encoded === undefined) return
    t.equal(encoded.data, reference(value))
    if (!exactly(encoded.copy, jsonSerializer.decode(encoded.data))) t.fail(`the copy of ${encoded.data} differs from its decode`)
  }
  fc.assert(fc.property(values, check), { numRuns: 2000 })
  fc.assert(fc.property(plain, check), { numRuns: 2000 })
  // Plain data is always copied; anything JSON would refuse or change through toJSON is left to the text.
  fc.assert(fc.property(fc.jsonValue(), (value) => encodeJsonCopy('key', value) !== undefined), { numRuns: 500 })
  for (const [i, value] of [undefined, new Date(0), new Point(1, 2), { a: () => 1 }, [Symbol('s')], { toJSON: () => 1 }, new Map()].entries()) {
    t.equal(encodeJsonCopy('key', value), undefined, `not plain #${i}`)
  }
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  t.equal(encodeJsonCopy('key', cycle), undefined, 'a cycle is left to the text, which refuses it')
  t.throws(() => encodeJsonCopy('big', 'x'.repeat(100), 50), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE' })
  const own = encodeJsonCopy('key', JSON.parse('{"__proto__":{"admin":true}}'))?.copy as Record<string, unknown>
  t.same(Object.keys(own), ['__proto__'])
  t.equal(Object.getPrototypeOf(own), Object.prototype, 'a field named __proto__ is a field, not the prototype')
})

test('jsonSerializer.encode: a cycle and nesting past the walk are refused or kept as JSON does', async (t) => {
  const cycle: Record<string, unknown> = { a: 1 }
  cycle.self = cycle
  t.throws(() => jsonSerializer.encode(cycle), /circular/)
  let deep: unknown = 'leaf'
  for (let i = 0; i < 500; i++) deep = i % 2 === 0 ? [deep] : { d: deep }
  t.equal(jsonSerializer.encode(deep), JSON.stringify(deep))
  let deepFunction: unknown = () => 1
  for (let i = 0; i < 500; i++) deepFunction = { d: deepFunction }
  t.throws(() => jsonSerializer.encode(deepFunction), /cannot keep a function/)
})

test('jsonSerializer.encode: what Object.prototype inherits changes nothing, as JSON writes own properties only', async (t) => {
  const prototype = Object.prototype as Record<string, unknown>
  const value = { a: 1, nested: [{ b: 2 }] }
  for (const polluted of [() => 1, new Map(), 1n, { c: 3 }]) {
    prototype.polluted = polluted
    try {
      t.same(outcome(jsonSerializer.encode as (value: unknown) => string, value), outcome(reference, value))
    } finally {
      delete prototype.polluted
    }
  }
  // Inherited, it is never read: a getter that throws does not run.
  Object.defineProperty(prototype, 'polluted', { get: () => { throw new Error('inherited getter ran') }, enumerable: true, configurable: true })
  try {
    t.equal(jsonSerializer.encode(value), '{"a":1,"nested":[{"b":2}]}')
  } finally {
    delete prototype.polluted
  }
})

test('jsonSerializer.encode: an array too long for a string is refused at once, sparse or not, as JSON refuses it', async (t) => {
  const sparse: number[] = []
  sparse[2 ** 32 - 2] = 1
  t.throws(() => jsonSerializer.encode(sparse), RangeError)
  t.throws(() => jsonSerializer.encode({ page: sparse }), RangeError)
})
