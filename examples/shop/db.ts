import { setTimeout as sleep } from 'node:timers/promises'
import { PGlite } from '@electric-sql/pglite'
import pg from 'pg'

export interface Product { id: number, name: string, category: string, priceCents: number }
export interface User { id: number, username: string, name: string, tier: string, active: boolean }
export interface Order { id: number, productId: number, quantity: number, createdAt: string }

export interface DatabaseOptions {
  /** Real PostgreSQL; PGlite in-process when absent. */
  url?: string
  /** Schema to create the tables in (a real server may hold other data). Default `shop`. */
  schema?: string
  /** Products to seed. Default 3,000. */
  products?: number
  /** Latency added to every query, to show what a remote database costs. */
  latencyMs?: number
}

/** The shop's queries, with a counter so that the stats page can show what the caches saved. */
export class Database {
  queries = 0

  private constructor (
    private readonly run: (sql: string, params?: unknown[]) => Promise<Array<Record<string, unknown>>>,
    private readonly end: () => Promise<void>,
    private readonly latencyMs: number
  ) {}

  static async open (options: DatabaseOptions = {}): Promise<Database> {
    const schema = options.schema ?? 'shop'
    if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new TypeError(`invalid schema name ${schema}`)
    let db: Database
    if (options.url !== undefined) {
      const pool = new pg.Pool({ connectionString: options.url, max: 10, options: `-c search_path=${schema}` })
      db = new Database(async (sql, params) => (await pool.query(sql, params)).rows, async () => { await pool.end() }, options.latencyMs ?? 0)
    } else {
      const lite = new PGlite()
      db = new Database(async (sql, params) => (await lite.query<Record<string, unknown>>(sql, params)).rows, async () => { await lite.close() }, options.latencyMs ?? 0)
    }
    await db.seed(schema, options.products ?? 3000)
    return db
  }

  async close (): Promise<void> {
    await this.end()
  }

  async catalog (): Promise<Product[]> {
    return (await this.query('SELECT id, name, category, price_cents FROM products ORDER BY id')).map(toProduct)
  }

  async product (id: number): Promise<Product | null> {
    const [row] = await this.query('SELECT id, name, category, price_cents FROM products WHERE id = $1', [id])
    return row === undefined ? null : toProduct(row)
  }

  async userByName (username: string): Promise<User | null> {
    const [row] = await this.query('SELECT id, username, name, tier, active FROM users WHERE username = $1', [username])
    return row === undefined ? null : toUser(row)
  }

  async user (id: number): Promise<User | null> {
    const [row] = await this.query('SELECT id, username, name, tier, active FROM users WHERE id = $1', [id])
    return row === undefined ? null : toUser(row)
  }

  async orders (userId: number): Promise<Order[]> {
    const rows = await this.query('SELECT id, product_id, quantity, created_at FROM orders WHERE user_id = $1 ORDER BY id', [userId])
    return rows.map((row) => ({ id: Number(row.id), productId: Number(row.product_id), quantity: Number(row.quantity), createdAt: new Date(row.created_at as string).toISOString() }))
  }

  private async query (sql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>> {
    this.queries++
    if (this.latencyMs > 0) await sleep(this.latencyMs)
    return await this.run(sql, params)
  }

  private async seed (schema: string, products: number): Promise<void> {
    for (const sql of [
      `CREATE SCHEMA IF NOT EXISTS ${schema}`,
      `SET search_path TO ${schema}`,
      'DROP TABLE IF EXISTS orders, products, users',
      'CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL, category text NOT NULL, price_cents integer NOT NULL)',
      'CREATE TABLE users (id serial PRIMARY KEY, username text UNIQUE NOT NULL, name text NOT NULL, tier text NOT NULL, active boolean NOT NULL)',
      'CREATE TABLE orders (id serial PRIMARY KEY, user_id integer NOT NULL REFERENCES users, product_id integer NOT NULL REFERENCES products, quantity integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
      `INSERT INTO products (name, category, price_cents)
         SELECT 'Product ' || i, (ARRAY['books', 'garden', 'kitchen', 'toys', 'tools'])[1 + i % 5], 199 + (i * 37) % 9800
         FROM generate_series(1, ${Math.trunc(products)}) AS i`,
      `INSERT INTO users (username, name, tier, active) VALUES
         ('alice', 'Alice Liddell', 'gold', true), ('bob', 'Bob Marley', 'silver', true), ('carol', 'Carol Danvers', 'bronze', true),
         ('mallory', 'Mallory Moe', 'bronze', false)`,
      'INSERT INTO orders (user_id, product_id, quantity) SELECT 1 + i % 3, 1 + i % 50, 1 + i % 4 FROM generate_series(1, 30) AS i'
    ]) await this.run(sql)
  }
}

function toProduct (row: Record<string, unknown>): Product {
  return { id: Number(row.id), name: String(row.name), category: String(row.category), priceCents: Number(row.price_cents) }
}

function toUser (row: Record<string, unknown>): User {
  return { id: Number(row.id), username: String(row.username), name: String(row.name), tier: String(row.tier), active: row.active === true }
}
