import { AsyncLocalStorage } from 'node:async_hooks'
import { tracingChannel, type TracingChannelSubscribers } from 'node:diagnostics_channel'
import { context, trace, SpanStatusCode, type Attributes, type Context, type Span } from '@opentelemetry/api'
import { InstrumentationBase, type InstrumentationConfig } from '@opentelemetry/instrumentation'
import { CACHE_OPERATION_CHANNEL, scopeOperations, type CacheOperationContext, type OperationScope } from './events.js'
import { messageOf } from './errors.js'

/** The package's version, as the instrumentation reports it (a test keeps it equal to package.json's). */
export const VERSION = '0.1.0'

export interface MultiCacheInstrumentationConfig extends InstrumentationConfig {
  /**
   * Put the cache key (`cache.key`, or `cache.keys` for several) on each span. Keys may hold personal data (a user's
   * e-mail in `user:${email}`), so they are left out unless asked for. Default false.
   */
  includeKeys?: boolean
  /**
   * Make a span only for an operation with a parent span (the caller's active span, or the cache operation it runs
   * in), so that background work (a `define`d key's refresh timer) makes no root spans of its own. Default true.
   */
  requireParentSpan?: boolean
}

/** A span of a cache operation, with the OpenTelemetry context that was active when it started. */
interface Running {
  span: Span
  /** The caller's context: an operation that starts under the same one is nested in this span. */
  active: Context
}

type Subscribers = TracingChannelSubscribers<CacheOperationContext>

/**
 * Spans of the cache operations of `fastify-multi-cache` (`cache.get`, `cache.getOrLoad`, `cache.load`, …), from the
 * diagnostics channel every level publishes on: nothing of the cache is patched, and nothing is published while this
 * is disabled.
 */
export class MultiCacheInstrumentation extends InstrumentationBase<MultiCacheInstrumentationConfig> {
  // Declared, not initialised: the base constructor calls enable() before a field initialiser would run.
  declare private state: { store: AsyncLocalStorage<Running | undefined>, spans: WeakMap<CacheOperationContext, Span>, subscribers: Subscribers, scope: OperationScope } | undefined

  constructor (config: MultiCacheInstrumentationConfig = {}) {
    super('fastify-multi-cache', VERSION, config)
  }

  protected init (): undefined {
    return undefined
  }

  override enable (): void {
    if (this.isEnabled()) return
    super.enable()
    const channel = tracingChannel<Running | undefined, CacheOperationContext>(CACHE_OPERATION_CHANNEL)
    const store = new AsyncLocalStorage<Running | undefined>()
    const spans = new WeakMap<CacheOperationContext, Span>()
    const finish = (operation: CacheOperationContext): void => {
      const span = spans.get(operation)
      if (span === undefined) return
      spans.delete(operation)
      span.setAttributes(outcome(operation))
      span.end()
    }
    const subscribers: Subscribers = {
      start () {},
      // A synchronous operation ends here (the channel set its result or error first); a promise's at asyncEnd.
      end (operation) { if ('result' in operation || 'error' in operation) finish(operation) },
      asyncStart () {},
      asyncEnd: finish,
      error (operation) {
        const span = spans.get(operation)
        if (span === undefined) return
        const { error } = operation
        span.recordException(error instanceof Error ? error : messageOf(error))
        span.setStatus({ code: SpanStatusCode.ERROR, message: messageOf(error) })
      }
    }
    // The span is made as the operation starts, in the store bound to `start`: the store flows into the loader, so
    // that its `cache.load` span is the child of the lookup that called it.
    channel.start.bindStore(store, (operation) => {
      const outer = store.getStore()
      const active = context.active()
      // Under the caller's context the cache operation it runs in is the parent; a span another instrumentation
      // started inside that operation (an HTTP call in a loader) has made a new context, and is the parent then
      // (as is the operation's own span, made active by the scope below).
      const parent = outer !== undefined && outer.active === active ? outer.span : trace.getSpan(active)
      const config = this.getConfig()
      if (parent === undefined && config.requireParentSpan !== false) return undefined
      const parentContext = parent === undefined ? active : trace.setSpan(active, parent)
      const span = this.tracer.startSpan('cache.' + operation.operation, { attributes: started(operation, config.includeKeys === true) }, parentContext)
      spans.set(operation, span)
      return { span, active }
    })
    channel.subscribe(subscribers)
    // The operation's span is the active one while it runs: a span the loader's own code makes (a database query)
    // is nested in `cache.load`. An operation started from another copy of the package (an app that both imports and
    // requires it) is still nested through the store above; only this part is missing there.
    const scope: OperationScope = (operation, run) => {
      const span = spans.get(operation)
      return span === undefined ? run() : context.with(trace.setSpan(context.active(), span), run)
    }
    scopeOperations(scope)
    this.state = { store, spans, subscribers, scope }
  }

  override disable (): void {
    super.disable()
    const state = this.state
    if (state === undefined) return
    this.state = undefined
    const channel = tracingChannel<Running | undefined, CacheOperationContext>(CACHE_OPERATION_CHANNEL)
    channel.unsubscribe(state.subscribers)
    channel.start.unbindStore(state.store)
    scopeOperations(undefined, state.scope)
  }
}

function started (operation: CacheOperationContext, includeKeys: boolean): Attributes {
  const attributes: Attributes = { 'cache.level': operation.level, 'cache.operation': operation.operation }
  if (includeKeys) {
    if (operation.key !== undefined) attributes['cache.key'] = operation.key
    if (operation.keys !== undefined) attributes['cache.keys'] = [...operation.keys]
  }
  return attributes
}

/** What the operation found, known once it has ended. */
function outcome (operation: CacheOperationContext): Attributes {
  const attributes: Attributes = {}
  if (operation.hit !== undefined) attributes['cache.hit'] = operation.hit
  if (operation.hits !== undefined) attributes['cache.hits'] = operation.hits
  if (operation.stale !== undefined) attributes['cache.stale'] = operation.stale
  if (operation.tier !== undefined) attributes['cache.tier'] = operation.tier
  return attributes
}
