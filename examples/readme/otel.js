import { FastifyOtelInstrumentation } from '@fastify/otel'
import { ConsoleSpanExporter, NodeTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-node'
import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { MultiCacheInstrumentation } from 'fastify-multi-cache/otel'
import { db } from './db.js'

// Your exporter here (OTLP to a collector, Jaeger, …); the console shows the spans.
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new ConsoleSpanExporter())] })
provider.register()
// Enabled at once, on the global tracer provider. { includeKeys: true } puts the keys on the spans.
const cacheInstrumentation = new MultiCacheInstrumentation()
const fastifyOtel = new FastifyOtelInstrumentation()

const app = Fastify({ logger: true })
await app.register(fastifyOtel.plugin()) // the request spans the cache's spans are nested in
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET } })
app.get('/products', () => app.appCache.getOrLoad('catalog', () => db.products.all()))
app.addHook('onClose', async () => { cacheInstrumentation.disable() })
await app.listen({ port: Number(process.env.PORT ?? 3000) })
