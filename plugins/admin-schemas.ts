// The admin API's JSON schemas: requests are validated against them and responses serialized through them, so a
// field that is not listed here is never sent.

const count = { type: 'integer', minimum: 0 } as const
const error = { type: 'object', properties: { error: { type: 'string' } }, required: ['error'] } as const
const nullableNumber = { type: ['number', 'null'] } as const

const level = {
  type: 'object',
  properties: {
    hits: count,
    misses: count,
    loads: count,
    loadErrors: count,
    evictions: count,
    storeErrors: count,
    oversized: count,
    tagsUnknown: count,
    size: count,
    pinned: count,
    evictionsByKind: { type: 'object', properties: { anonymous: count, authenticated: count } },
    breaker: { type: 'string', enum: ['closed', 'open', 'half-open'] },
    /** Route caching: requests not served from the cache and responses not stored, by reason. */
    reasons: { type: 'object', additionalProperties: count },
    /** hits / (hits + misses); null before the first lookup. */
    hitRatio: nullableNumber
  }
} as const

export const statsSchema = {
  response: {
    200: {
      type: 'object',
      properties: {
        /** Epoch ms of the figures, so that rates can be computed between two polls. */
        at: count,
        levels: { type: 'object', properties: { request: level, session: level, app: level, route: level } }
      }
    }
  }
} as const

export const definedSchema = {
  response: {
    200: {
      type: 'object',
      properties: {
        keys: {
          type: 'array',
          items: {
            type: 'object',
            properties: { key: { type: 'string' }, lastRefresh: nullableNumber, durationMs: nullableNumber, lastError: { type: ['string', 'null'] }, nextRefresh: nullableNumber }
          }
        }
      }
    }
  }
} as const

export const refreshSchema = {
  body: {
    type: 'object',
    properties: { key: { type: 'string', minLength: 1 } },
    required: ['key'],
    additionalProperties: false
  },
  response: {
    200: { type: 'object', properties: { key: { type: 'string' }, lastRefresh: nullableNumber, durationMs: nullableNumber } },
    404: error,
    502: error
  }
} as const

const names = { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: 1000 } as const

export const invalidateSchema = {
  body: {
    type: 'object',
    properties: { keys: names, tags: names },
    anyOf: [{ required: ['keys'] }, { required: ['tags'] }],
    additionalProperties: false
  },
  response: {
    200: { type: 'object', properties: { keys: count, tags: count } },
    404: error,
    501: error
  }
} as const

export const keysSchema = {
  querystring: {
    type: 'object',
    properties: {
      /** Keys containing it; all when empty. */
      match: { type: 'string', maxLength: 1024, default: '' },
      limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
      /** The `cursor` of the previous page. */
      cursor: { type: 'string', pattern: '^[0-9]{1,20}$' }
    },
    additionalProperties: false
  },
  response: {
    200: {
      type: 'object',
      properties: {
        keys: { type: 'array', items: { type: 'object', properties: { key: { type: 'string' }, ttl: count } } },
        cursor: { type: ['string', 'null'] }
      }
    },
    404: error,
    501: error
  }
} as const

export const adviceSchema = {
  response: {
    200: {
      type: 'object',
      properties: {
        at: count,
        /** The advisor's share of keys watched; null when it is off (then `findings` is empty). */
        sampleRate: nullableNumber,
        findings: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              level: { type: 'string' },
              /** The key pattern (`item:*`). */
              key: { type: 'string' },
              kind: { type: 'string' },
              message: { type: 'string' },
              evidence: { type: 'object', additionalProperties: { type: 'number' } }
            }
          }
        }
      }
    }
  }
} as const
