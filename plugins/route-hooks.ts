import type { FastifyRequest, RouteHandlerMethod, RouteOptions, onSendHookHandler } from 'fastify'

// Placing hooks in a route's lifecycle from an onRoute hook, where plugins registered later still change the route.

/**
 * Makes `first` and `last` the first and the last of a route's onSend hooks whatever a plugin registered later does
 * to the list: `@fastify/compress` pushes onto it, others replace it, and Fastify reads it once every plugin is loaded.
 */
export function bracketOnSend (route: RouteOptions, first: onSendHookHandler, last: onSendHookHandler): void {
  let hooks = [...asArray(route.onSend)]
  Object.defineProperty(route, 'onSend', {
    configurable: true,
    enumerable: true,
    get: () => {
      // In place: a push onto the list returned must land in it.
      hooks.splice(0, hooks.length, first, ...hooks.filter((hook) => hook !== first && hook !== last), last)
      return hooks
    },
    set: (value: RouteOptions['onSend']) => { hooks = [...asArray(value)] }
  })
}

/** Runs `mark` on each request as the route's handler starts: a request a hook answered never passes it. */
export function beforeHandler (route: RouteOptions, mark: (request: FastifyRequest) => void): void {
  const handler: RouteHandlerMethod = route.handler
  route.handler = function (request, reply) {
    mark(request)
    return handler.call(this, request, reply)
  }
}

export function asArray<T> (value: T | T[] | undefined): T[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}
