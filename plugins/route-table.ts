import type { FastifyInstance } from 'fastify'

/** A route in the app's router: its method or methods, its URL (prefix included) and its `config`. */
export interface DeclaredRoute {
  methods: string[]
  url: string
  config: Readonly<Record<string, unknown>>
}

/**
 * Every route in the app's router, read once every plugin is loaded. Fastify shows a plugin the options of the routes
 * declared after its `onRoute` hook is added, and of a request's own route, but a route declared earlier is only in
 * the router. Its one public view of the whole table is `printRoutes({ includeMeta })`: find-my-way hands each route,
 * whose `store` is Fastify's context of the route (its `config` included), to a `buildPrettyMeta` function. Fastify's
 * own shows only hooks and log settings, and find-my-way sets it on the options it is given: so the options given here
 * keep the one they have. Should a later Fastify or find-my-way hand over something else, the routes it hands over
 * without a `config` are left out: fewer routes found, never a wrong one.
 */
export function declaredRoutes (fastify: FastifyInstance): DeclaredRoute[] {
  const routes: DeclaredRoute[] = []
  // One context per route as declared, which find-my-way holds once per method.
  const seen = new Set<unknown>()
  const collect = (route: { store?: { config?: unknown } } | undefined): object => {
    const config = route?.store?.config as { url?: unknown, method?: unknown } | undefined
    if (config !== undefined && !seen.has(config) && typeof config.url === 'string') {
      seen.add(config)
      const methods = [config.method].flat().filter((method): method is string => typeof method === 'string')
      routes.push({ methods, url: config.url, config: config as Record<string, unknown> })
    }
    return {}
  }
  const options = { includeMeta: true }
  Object.defineProperty(options, 'buildPrettyMeta', { get: () => collect, set: () => {}, enumerable: true })
  fastify.printRoutes(options)
  return routes
}
