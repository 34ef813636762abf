import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import { sessionCache, type SessionCookieOptions } from '../index.js'

test('session cookie attributes are typed as the registration checks them', () => {
  const app = Fastify()
  expect(app.register).type.toBeCallableWith(sessionCache, { cookie: { sameSite: 'none', secure: true, partitioned: true, maxAge: 3600, priority: 'high' } })
  expect(app.register).type.not.toBeCallableWith(sessionCache, { cookie: { maxAge: '1h' } })
  expect(app.register).type.not.toBeCallableWith(sessionCache, { cookie: { sameSite: 'sometimes' } })
  expect(app.register).type.not.toBeCallableWith(sessionCache, { cookie: { signed: true } })
  expect<SessionCookieOptions['expires']>().type.toBe<Date | undefined>()
})
