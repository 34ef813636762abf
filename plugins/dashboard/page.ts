// The dashboard's HTML: no inline script or style, so that it works under `Content-Security-Policy: default-src
// 'self'`. The script and the stylesheet come from the same prefix; the script finds the API through `data-prefix`.

export function dashboardPage (prefix: string): string {
  const at = escapeHtml(prefix)
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cache · fastify-multi-cache</title>
<link rel="stylesheet" href="${at}/dashboard.css">
<script src="${at}/dashboard.js" defer></script>
</head>
<body data-prefix="${at}">
<header>
<h1>Cache</h1>
<p id="status" role="status"></p>
</header>
<main>
<section id="levels" aria-label="Levels"></section>
<section aria-labelledby="advice-title">
<h2 id="advice-title">Advice</h2>
<p id="advice-state"></p>
<table id="advice">
<thead><tr><th>level</th><th>key pattern</th><th>kind</th><th>message</th><th>evidence</th></tr></thead>
<tbody></tbody>
</table>
</section>
<section aria-labelledby="defined-title">
<h2 id="defined-title">Defined keys</h2>
<table id="defined">
<thead><tr><th>key</th><th>last refresh</th><th>took</th><th>last error</th><th>next refresh</th><th></th></tr></thead>
<tbody></tbody>
</table>
</section>
<section aria-labelledby="invalidate-title">
<h2 id="invalidate-title">Invalidate</h2>
<form id="invalidate">
<select name="kind" aria-label="what to invalidate"><option value="key">key</option><option value="tag">tag</option></select>
<input name="name" required maxlength="1024" placeholder="catalog" aria-label="key or tag">
<button type="submit">Invalidate</button>
</form>
</section>
</main>
</body>
</html>
`
}

function escapeHtml (text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
