/** The data and the set-up the scenarios share. */

export const SECRET = 'a-benchmark-secret-of-at-least-32-characters'

export interface User {
  id: number
  name: string
  email: string
  roles: string[]
}

export const USER: User = { id: 42, name: 'Ada Lovelace', email: 'ada@example.com', roles: ['customer'] }

export interface Cart {
  lines: Array<{ sku: string, quantity: number }>
  views: number
}

export const CART: Cart = { lines: [{ sku: 'SKU-0001', quantity: 2 }, { sku: 'SKU-0042', quantity: 1 }], views: 0 }

/** A catalog of `count` products, about 120 bytes each once serialized. */
export function catalog (count: number): Array<Record<string, unknown>> {
  return Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    sku: 'SKU-' + String(i + 1).padStart(4, '0'),
    name: `Product ${i + 1}`,
    price: Math.round((5 + (i % 97) * 1.25) * 100) / 100,
    category: ['books', 'music', 'garden', 'kitchen'][i % 4],
    stock: (i * 7) % 50
  }))
}

/**
 * Opens `count` sessions by sending `method path` that many times, and returns their `Cookie` headers, one per
 * autocannon connection: the measured requests then carry an existing session, as a returning user's do.
 */
export async function openSessions (url: string, path: string, count: number, method = 'POST'): Promise<string[]> {
  const cookies: string[] = []
  for (let i = 0; i < count; i++) {
    const response = await fetch(url + path, { method })
    const cookie = response.headers.getSetCookie()[0]?.split(';')[0]
    if (!response.ok || cookie === undefined) throw new Error(`${method} ${path} answered ${response.status} without a session cookie`)
    cookies.push(cookie)
  }
  return cookies
}

/** Exchange rates, about 1 KB once serialized: a small application-wide object. */
export const RATES = {
  base: 'EUR',
  date: '2026-11-25',
  rates: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [
    String.fromCharCode(65 + (i % 26), 65 + Math.floor(i / 26), 65 + ((i * 7) % 26)),
    Math.round((0.5 + ((i * 37) % 100) / 13) * 1e6) / 1e6
  ]))
}
