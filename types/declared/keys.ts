// The keys the tests of this folder declare, as an app declares its own.
export interface Product { id: number, name: string, kind: 'tool' | 'toy' }
export interface CartLine { productId: number, quantity: number }
export interface User { id: number, name: string }

declare module 'fastify-multi-cache' {
  interface AppCacheKeys {
    catalog: Product[]
    featured: Product | null
    [key: `product:${number}`]: Product
  }
  interface SessionCacheKeys {
    cart: CartLine[]
    userId: number
  }
  interface RequestCacheKeys {
    user: User
    userId: string
  }
}
