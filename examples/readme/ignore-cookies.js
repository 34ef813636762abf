import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, {
  session: { secret: process.env.SESSION_SECRET },
  route: {
    // Google Analytics, consent banners and a theme switch: none of them says who the visitor is.
    ignoreCookies: [/^_ga(_.+)?$/, '_gid', '_gcl_au', '_fbp', /^_hj/, 'cookieconsent_status', 'CookieConsent', 'theme']
  }
})
app.get('/products', { config: { cache: { level: 'app', ttl: '1m' } } }, () => db.products.all())
await app.listen({ port: Number(process.env.PORT ?? 3000) })
