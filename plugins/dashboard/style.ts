// The dashboard's stylesheet, served from the admin prefix.

export const dashboardStyle = `
:root { color-scheme: light dark; --hits: #2a9d55; --misses: #d1495b; --loads: #3d7bd9; --line: #8884; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; }
header { display: flex; align-items: baseline; gap: 1rem; }
h1 { font-size: 1.4rem; margin: 0; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
#status { margin: 0; color: #888; }
#status.error { color: var(--misses); }
#levels { display: grid; grid-template-columns: repeat(auto-fill, minmax(16rem, 1fr)); gap: 1rem; }
.level { border: 1px solid var(--line); border-radius: .5rem; padding: .75rem; }
.level h2 { margin: 0 0 .5rem; }
.level dl { display: grid; grid-template-columns: auto auto; gap: .1rem 1rem; margin: 0 0 .5rem; }
.level dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: .25rem 0; }
figcaption { font-size: .8rem; color: #888; }
svg { width: 100%; height: 3rem; border-bottom: 1px solid var(--line); }
polyline { fill: none; stroke-width: 1.5; vector-effect: non-scaling-stroke; }
.ratio, .hits { stroke: var(--hits); }
.misses { stroke: var(--misses); }
.loads { stroke: var(--loads); }
.legend-hits { color: var(--hits); }
.legend-misses { color: var(--misses); }
.legend-loads { color: var(--loads); }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left; }
td.error { color: var(--misses); }
td.evidence { font-variant-numeric: tabular-nums; color: #888; }
#advice td:nth-child(3) { white-space: nowrap; }
form { display: flex; gap: .5rem; }
input { flex: 1; }
`
