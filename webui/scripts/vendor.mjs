// Copies the pinned Chart.js build and its licenses from node_modules into
// static/vendor, where the Go build embeds them (the Go build needs no npm).
// Run after changing the chart.js version in package.json: npm ci && npm run vendor.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'static', 'vendor');
mkdirSync(out, { recursive: true });
export const VENDORED = [
  ['node_modules/chart.js/dist/chart.umd.js', 'chart.umd.js'],
  ['node_modules/chart.js/LICENSE.md', 'LICENSE.chart.js.md'],
  // The UMD build bundles @kurkle/color (MIT): its license travels with it.
  ['node_modules/@kurkle/color/LICENSE.md', 'LICENSE.kurkle-color.md'],
];
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [from, to] of VENDORED) {
    copyFileSync(join(root, from), join(out, to));
    console.log(`vendored ${from} -> static/vendor/${to}`);
  }
}
