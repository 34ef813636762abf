import type { FastifyRequest, RouteHandlerMethod, RouteOptions } from 'fastify'

// Placing hooks in a route's lifecycle from an onRoute hook, where plugins registered later still change the route.

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
