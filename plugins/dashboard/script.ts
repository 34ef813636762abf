// The dashboard's script, served from the admin prefix: plain browser JavaScript, no build step and no dependency.
// It polls `stats` every 2 s and draws each level's hit ratio and rates as small SVG charts, lists the advisor's
// findings and the defined keys with a Refresh button each, and invalidates a key or a tag. Text goes in through `textContent` only: keys are
// whatever the app was asked for, and must never become markup.

export const dashboardScript = String.raw`'use strict'
const PREFIX = document.body.dataset.prefix
const POLL_MS = 2000
const POINTS = 60
const SVG = 'http://www.w3.org/2000/svg'
const history = new Map()
const status = document.getElementById('status')
// A poll's message gives way to the next poll's; an action's (a refresh, an invalidation) stays until the next action.
let fromPoll = true

async function api (path, body) {
  const init = body === undefined
    ? { cache: 'no-store' }
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
  const response = await fetch(PREFIX + path, init)
  const data = await response.json().catch(() => ({}))
  if (!response.ok) throw new Error(data.error || data.message || response.status + ' ' + response.statusText)
  return data
}

function say (text, failed, poll) {
  fromPoll = poll === true
  status.textContent = text
  status.classList.toggle('error', failed === true)
}

function element (tag, attributes, ...children) {
  const node = tag === 'svg' || tag === 'polyline' ? document.createElementNS(SVG, tag) : document.createElement(tag)
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value)
  node.append(...children)
  return node
}

function chart (name, lines, caption) {
  return element('figure', { 'data-chart': name },
    element('svg', { viewBox: '0 0 ' + (POINTS - 1) + ' 100', preserveAspectRatio: 'none' },
      ...lines.map((line) => element('polyline', { class: line, points: '' }))),
    element('figcaption', {}, ...caption))
}

function card (level) {
  const figures = element('dl')
  for (const [name, label] of [['hitRatio', 'hit ratio'], ['rates', 'hits · misses · loads /s'], ['size', 'entries'], ['evictions', 'evictions'], ['storeErrors', 'store errors']]) {
    figures.append(element('dt', {}, label), element('dd', { 'data-figure': name }, '–'))
  }
  const section = element('section', { class: 'level', 'data-level': level }, element('h2', {}, level), figures,
    chart('ratio', ['ratio'], ['hit ratio']),
    chart('rates', ['hits', 'misses', 'loads'], [element('span', { class: 'legend-hits' }, 'hits'), ' · ', element('span', { class: 'legend-misses' }, 'misses'), ' · ', element('span', { class: 'legend-loads' }, 'loads'), ' per second']))
  document.getElementById('levels').append(section)
  return section
}

function points (values, max) {
  return values.map((value, i) => (POINTS - values.length + i) + ',' + (100 - (100 * value) / (max || 1)).toFixed(1)).join(' ')
}

function draw (level, stats, at) {
  const samples = history.get(level) || []
  const previous = samples.at(-1)
  const seconds = previous === undefined ? 0 : (at - previous.at) / 1000
  const rate = (name) => seconds > 0 ? Math.max(0, stats[name] - previous.stats[name]) / seconds : 0
  samples.push({ at, stats, ratio: stats.hitRatio ?? 0, hits: rate('hits'), misses: rate('misses'), loads: rate('loads') })
  if (samples.length > POINTS) samples.shift()
  history.set(level, samples)

  const section = document.querySelector('[data-level="' + level + '"]') || card(level)
  const show = (name, text) => { section.querySelector('[data-figure="' + name + '"]').textContent = text }
  const last = samples.at(-1)
  show('hitRatio', stats.hitRatio === null ? '–' : (100 * stats.hitRatio).toFixed(1) + ' %')
  show('rates', [last.hits, last.misses, last.loads].map((value) => value.toFixed(1)).join(' · '))
  show('size', String(stats.size))
  show('evictions', String(stats.evictions))
  show('storeErrors', String(stats.storeErrors))
  section.querySelector('polyline.ratio').setAttribute('points', points(samples.map((s) => s.ratio), 1))
  const top = Math.max(1, ...samples.flatMap((s) => [s.hits, s.misses, s.loads]))
  for (const name of ['hits', 'misses', 'loads']) section.querySelector('polyline.' + name).setAttribute('points', points(samples.map((s) => s[name]), top))
}

function time (ms) {
  return ms === null ? '–' : new Date(ms).toLocaleTimeString()
}

function row (defined) {
  const button = element('button', { type: 'button', 'data-refresh': defined.key }, 'Refresh')
  button.addEventListener('click', () => { refresh(defined.key, button) })
  return element('tr', { 'data-key': defined.key },
    element('td', {}, defined.key),
    element('td', { 'data-last-refresh': String(defined.lastRefresh) }, time(defined.lastRefresh)),
    element('td', {}, defined.durationMs === null ? '–' : defined.durationMs.toFixed(1) + ' ms'),
    element('td', { class: defined.lastError === null ? '' : 'error' }, defined.lastError || ''),
    element('td', {}, time(defined.nextRefresh)),
    element('td', {}, button))
}

async function refresh (key, button) {
  button.disabled = true
  try {
    const done = await api('/refresh', { key })
    say('refreshed ' + key + ' at ' + time(done.lastRefresh))
  } catch (error) {
    say('refreshing ' + key + ' failed: ' + error.message, true)
  }
  button.disabled = false
  await showDefined()
}

async function showDefined () {
  const { keys } = await api('/defined')
  document.querySelector('#defined tbody').replaceChildren(...keys.map(row))
}

function finding (advice) {
  const evidence = Object.entries(advice.evidence).map(([name, value]) => name + ' ' + value).join(' · ')
  return element('tr', { 'data-advice': advice.kind, 'data-pattern': advice.key },
    element('td', {}, advice.level),
    element('td', {}, advice.key),
    element('td', {}, advice.kind),
    element('td', {}, advice.message),
    element('td', { class: 'evidence' }, evidence))
}

async function showAdvice () {
  const { sampleRate, findings } = await api('/advice')
  document.getElementById('advice-state').textContent = sampleRate === null
    ? 'The advisor is off: give multiCache the option advisor: true (1 key in 100) or { sampleRate }.'
    : findings.length === 0 ? 'Nothing to say yet (watching ' + (100 * sampleRate) + ' % of keys).' : 'Watching ' + (100 * sampleRate) + ' % of keys.'
  document.querySelector('#advice tbody').replaceChildren(...findings.map(finding))
}

async function poll () {
  try {
    const { at, levels } = await api('/stats')
    for (const [level, stats] of Object.entries(levels)) draw(level, stats, at)
    await showAdvice()
    await showDefined()
    if (fromPoll) say('updated ' + time(at), false, true)
  } catch (error) {
    if (fromPoll) say('cannot read the stats: ' + error.message, true, true)
  }
}

document.getElementById('invalidate').addEventListener('submit', async (event) => {
  event.preventDefault()
  const form = event.target
  const kind = form.elements.kind.value
  const name = form.elements.name.value
  try {
    await api('/invalidate', kind === 'tag' ? { tags: [name] } : { keys: [name] })
    say('invalidated ' + kind + ' ' + name)
    form.reset()
  } catch (error) {
    say('invalidating ' + kind + ' ' + name + ' failed: ' + error.message, true)
  }
})

poll()
setInterval(poll, POLL_MS)
`
