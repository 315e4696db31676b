// Source rules: values reach the DOM as text only, own code stays under the 100 KB
// budget, and the vendored Chart.js is the pinned npm package, byte for byte.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const own = [];
(function walk(d) {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) { if (n !== 'vendor') walk(p); } else own.push(p);
  }
})(join(root, 'static'));

test('no HTML sinks and no inline handlers in our code', () => {
  for (const f of own) {
    const src = readFileSync(f, 'utf8');
    for (const bad of ['innerHTML', 'outerHTML', 'insertAdjacentHTML', 'document.write', 'eval(', 'new Function']) {
      assert.ok(!src.includes(bad), `${f} uses ${bad}`);
    }
    if (f.endsWith('.html')) assert.doesNotMatch(src, /\son[a-z]+=|<script>|style=/i, `${f} has inline script, handler or style`);
  }
});

test('own code is under 100 KB', () => {
  const total = own.reduce((s, f) => s + statSync(f).size, 0);
  assert.ok(total < 100 * 1024, `own code is ${total} bytes`);
});

test('vendored Chart.js is the pinned package', { skip: !existsSync(join(root, 'node_modules/chart.js')) && 'npm ci not run' }, async () => {
  const { VENDORED } = await import('../../scripts/vendor.mjs');
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const installed = JSON.parse(readFileSync(join(root, 'node_modules/chart.js/package.json'), 'utf8'));
  assert.equal(installed.version, pkg.dependencies['chart.js']);
  for (const [from, to] of VENDORED) {
    assert.ok(readFileSync(join(root, from)).equals(readFileSync(join(root, 'static/vendor', to))), `static/vendor/${to} differs from ${from}: run npm run vendor`);
  }
  assert.match(readFileSync(join(root, 'static/vendor/chart.umd.js'), 'utf8').slice(0, 200), new RegExp(`Chart.js v${installed.version}`));
});
