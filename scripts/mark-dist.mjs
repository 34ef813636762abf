// The package is ESM at its root; the CommonJS build needs its own folder marker to be read as CommonJS.
import { writeFileSync } from 'node:fs'
writeFileSync(new URL('../dist/cjs/package.json', import.meta.url), '{ "type": "commonjs" }\n')
writeFileSync(new URL('../dist/esm/package.json', import.meta.url), '{ "type": "module" }\n')
