// Browser end-to-end: a real collector, two sensors replaying shared captures at 1x
// (one reading a capture whose file name, and so its interface "file:NAME", is an
// XSS payload: sensor ids are limited to [A-Za-z0-9._:-], the interface is any
// printable text), Debian's chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Stack, launchBrowser, stepper, waitFor, OUT, REPO, PCAPS } from './harness.mjs';

const XSS = '<img src=x onerror="window.__xss=1">';
const SENSOR = 'e2e-edge';
const XSS_SENSOR = 'e2e-xss';
let stack;
let browser;
let page;
const pageErrors = [];
let failed = false;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  const hostile = join(OUT, XSS + '.pcap');
  copyFileSync(join(PCAPS, 'pcapplusplus-one_http_stream_rst.pcap'), hostile);
  stack = new Stack([{ id: SENSOR, pcap: 'pcapplusplus-tls2.pcap' }, { id: XSS_SENSOR, path: hostile }]);
  await stack.start();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
});

after(async () => {
  if (failed) stack && stack.dumpLogs();
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

/** step marks the suite failed (to dump the processes' logs) when fn throws. */
const step = stepper(() => page, () => { failed = true; });

const flowKeys = () => page.$$eval('#flows-table tr.flow', (trs) => trs.map((t) => t.dataset.key));
const isFlows = (r) => r.url().includes('/api/v1/flows?') && !r.url().includes('format=csv');

async function setLive(on) {
  const pressed = await page.getAttribute('#live-toggle', 'aria-pressed');
  if ((pressed === 'true') !== on) await page.click('#live-toggle');
}

/** search types q into the search box and returns the response the table shows. */
async function search(q) {
  await page.fill('#search', q);
  const [resp] = await Promise.all([page.waitForResponse(isFlows), page.press('#search', 'Enter')]);
  const body = await resp.json();
  await page.waitForFunction((n) => document.querySelectorAll('#flows-table tr.flow').length === n || (n === 0 && document.getElementById('no-flows')), body.flows.length);
  return { url: new URL(resp.url()), body };
}

// The load time is recorded (test-results/load-time.txt), not asserted: a shared CI machine
// makes a timing assertion flaky. The 2 s load budget is checked by reading that figure.
step('dashboard loads with live data (load time recorded)', async () => {
  const t0 = Date.now();
  await page.goto(stack.base + '#/dashboard');
  await page.waitForSelector('#conn[data-state="live"]');
  await page.waitForFunction(() => document.querySelectorAll('#top-talkers tr[data-host]').length > 0 &&
    window.Chart && Chart.getChart(document.getElementById('bandwidth-chart'))?.data.labels.length > 0 &&
    document.querySelector('#m-flows .value').textContent !== '–');
  const loadMs = Date.now() - t0;
  writeFileSync(join(OUT, 'load-time.txt'), `dashboard load (navigation to live chart, talkers and metrics): ${loadMs} ms\n`);
  console.log(`# dashboard load: ${loadMs} ms`);
});

step('the bandwidth chart and the numbers update live', async () => {
  const last = () => page.evaluate(() => {
    const c = Chart.getChart(document.getElementById('bandwidth-chart'));
    return c.data.labels[c.data.labels.length - 1] + ' ' + c.data.labels.length;
  });
  const before = await last();
  const caption = await page.textContent('#bandwidth-last');
  await waitFor('a new chart point', async () => (await last()) !== before, 5000);
  const metricsTs = await page.evaluate(() => new Promise((resolve) => window.netwatch.ctx.live.on('metrics', (m) => resolve(m.timestamp))));
  assert.ok(Date.parse(metricsTs) > Date.now() - 10000, 'metrics are current');
  assert.match(caption, /^now: .*bit\/s · .*pkt\/s$/);
  assert.equal(await page.isVisible('#incomplete-banner'), false, 'no sensor reported loss');
});

step("a top talker's flow count shows its flows", async () => {
  const row = page.locator('#top-talkers tr[data-host]').first();
  const host = await row.getAttribute('data-host');
  assert.equal(await row.locator('td.who a.host-link').textContent(), host, 'the address is shown (its name, if any, after it)');
  const [resp] = await Promise.all([page.waitForResponse(isFlows), row.locator('button.flows-of').click()]);
  await page.waitForURL(/#\/flows\?(src_ip|dst_ip)=/);
  const url = new URL(resp.url());
  const side = url.searchParams.has('src_ip') ? 'src_ip' : 'dst_ip';
  assert.equal(url.searchParams.get(side), host);
  assert.equal(await page.inputValue('#search'), `${side}:${host}`);
  const body = await resp.json();
  assert.ok(body.flows.length > 0, 'the talker has flows');
  for (const f of body.flows) assert.equal(side === 'src_ip' ? f.srcIP : f.dstIP, host);
  await page.waitForSelector('#flows-table tr.flow');
  const shown = await page.$$eval(`#flows-table tr.flow td.${side === 'src_ip' ? 'src' : 'dst'} a.host-link`, (as) => as.map((a) => a.textContent));
  for (const s of shown) assert.ok(s === host || s.startsWith(host + ':') || s.startsWith('[' + host + ']:'), `${s} is not ${host}`);
});

step('search syntax and CIDR filter give the rows of the REST API', async () => {
  await setLive(false);
  // Oldest first: a flow arriving between the two requests can only add rows at the end.
  let r = await search('src_ip:192.168.0.0/24 protocol:tcp');
  assert.equal(r.url.searchParams.get('src_ip'), '192.168.0.0/24');
  assert.equal(r.url.searchParams.get('protocol'), 'tcp');
  await Promise.all([page.waitForResponse(isFlows), page.click('th button[data-sort="first_seen"]')]);
  const [resp] = await Promise.all([page.waitForResponse(isFlows), page.click('th button[data-sort="first_seen"]')]);
  const ui = await resp.json();
  assert.equal(new URL(resp.url()).searchParams.get('sort_order'), 'asc');
  await waitFor('the table to show the response', async () => JSON.stringify(await flowKeys()) === JSON.stringify(ui.flows.map((f) => f.flowKey)), 3000);
  assert.ok(ui.flows.length > 0);
  for (const f of ui.flows) {
    assert.match(f.srcIP, /^192\.168\.0\./);
    assert.equal(f.protocolName, 'tcp');
  }
  const api = await stack.api('flows', { q: 'src_ip:192.168.0.0/24 protocol:tcp', sort_by: 'first_seen', sort_order: 'asc', limit: '50' });
  const apiKeys = api.flows.map((f) => f.flowKey);
  assert.deepEqual(apiKeys.slice(0, ui.flows.length), ui.flows.map((f) => f.flowKey), 'the table shows the rows of the REST API, in its order');

  // A bad term is named before anything is sent.
  await page.fill('#search', 'src_ip:10.0.0.0/40');
  await page.press('#search', 'Enter');
  assert.match(await page.textContent('#search-error'), /src_ip: "10.0.0.0\/40" is not an IP address or CIDR prefix/);
  // A filter that matches nothing says so.
  r = await search('src_ip:198.51.100.0/24');
  assert.equal(r.body.flows.length, 0);
  assert.equal(await page.textContent('#no-flows'), 'No flows match criteria');
});

step('server-side sort and pagination', async () => {
  await setLive(false);
  await search('');
  const [r1] = await Promise.all([page.waitForResponse(isFlows), page.selectOption('#page-size', '25')]);
  assert.equal(new URL(r1.url()).searchParams.get('limit'), '25');
  const [r2] = await Promise.all([page.waitForResponse(isFlows), page.click('th button[data-sort="bytes"]')]);
  const u2 = new URL(r2.url());
  assert.equal(u2.searchParams.get('sort_by'), 'bytes');
  assert.equal(u2.searchParams.get('sort_order'), 'desc');
  const b2 = await r2.json();
  const bytes = b2.flows.map((f) => f.bytes);
  assert.deepEqual(bytes, [...bytes].sort((a, b) => b - a), 'bytes descending');
  await waitFor('rows in server order', async () => JSON.stringify(await flowKeys()) === JSON.stringify(b2.flows.map((f) => f.flowKey)), 3000);
  assert.equal(await page.getAttribute('th:has(button[data-sort="bytes"])', 'aria-sort'), 'descending');
  assert.ok(b2.pagination.total_count > 25, `only ${b2.pagination.total_count} flows: no second page`);
  assert.equal(await page.isDisabled('#page-prev'), true);

  // Pages of a live table by bytes shift as flows grow; by first_seen ascending they
  // cannot (new flows only add at the end), so that order proves the pages meet.
  await Promise.all([page.waitForResponse(isFlows), page.click('th button[data-sort="first_seen"]')]);
  const [r4] = await Promise.all([page.waitForResponse(isFlows), page.click('th button[data-sort="first_seen"]')]);
  const b4 = await r4.json();
  assert.equal(new URL(r4.url()).searchParams.get('sort_order'), 'asc');
  const [r3] = await Promise.all([page.waitForResponse(isFlows), page.click('#page-next')]);
  const u3 = new URL(r3.url());
  assert.equal(u3.searchParams.get('offset'), '25');
  assert.equal(u3.searchParams.get('sort_by'), 'first_seen');
  const b3 = await r3.json();
  await waitFor('page two', async () => JSON.stringify(await flowKeys()) === JSON.stringify(b3.flows.map((f) => f.flowKey)), 3000);
  assert.match(await page.textContent('#page-info'), /^26–/);
  const firstPage = new Set(b4.flows.map((f) => f.flowKey));
  assert.ok(b3.flows.every((f) => !firstPage.has(f.flowKey)), 'pages do not overlap');
  const seen = (f) => Date.parse(f.firstSeen);
  assert.ok(seen(b3.flows[0]) >= seen(b4.flows[b4.flows.length - 1]), 'page two continues page one');
  assert.equal(await page.isDisabled('#page-prev'), false);
});

step('a row expands to the full flow', async () => {
  const row = page.locator('#flows-table tr.flow').first();
  const key = await row.getAttribute('data-key');
  await row.click();
  const detail = page.locator(`#flows-table tr.detail[data-key="${key}"]`);
  await detail.waitFor();
  const text = await detail.textContent();
  for (const want of ['Source (initiator)', 'Destination (responder)', 'TCP flags', 'End reason', 'Duration', 'Sensor', key]) {
    assert.ok(text.includes(want), `detail lacks ${want}: ${text}`);
  }
  await row.click();
  await detail.waitFor({ state: 'detached' });
});

step('CSV export of the current filter equals the API', async () => {
  await setLive(false);
  const until = new Date(Date.now() - 1000).toISOString();
  await search(`status:closed time_end:${until}`);
  const href = await page.getAttribute('#csv-export', 'href');
  const url = new URL(href, stack.base);
  assert.equal(url.searchParams.get('format'), 'csv');
  assert.equal(url.searchParams.get('status'), 'closed');
  assert.equal(url.searchParams.get('limit'), null, 'the export has every matching row');
  let same = false;
  let ui;
  let api;
  for (let i = 0; i < 5 && !same; i++) { // a flow closing between the two requests changes the set
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#csv-export')]);
    ui = readFileSync(await dl.path(), 'utf8');
    api = await (await fetch(url)).text();
    same = ui === api;
  }
  assert.equal(ui, api);
  assert.match(ui.split('\n')[0], /^flowKey,srcIP,dstIP/);
  assert.ok(ui.trim().split('\n').length > 1, 'closed flows exported');
});

step('health shows the sensors; a hostile interface name is shown as text', async () => {
  await page.goto(stack.base + '#/health');
  await page.waitForFunction(() => document.querySelectorAll('#sensors-table tr[data-sensor]').length === 2);
  const ids = await page.$$eval('#sensors-table td.sensor', (tds) => tds.map((t) => t.textContent));
  assert.deepEqual(ids.sort(), [SENSOR, XSS_SENSOR].sort());
  const edge = page.locator(`#sensors-table tr[data-sensor="${SENSOR}"]`);
  assert.match(await edge.textContent(), /connected/);
  assert.match(await edge.textContent(), /file:pcapplusplus-tls2\.pcap/);
  assert.match(await page.textContent('#health-status'), /HEALTHY|DEGRADED|UNHEALTHY/);
  // The payload is text in every place it appears: no element was made from it.
  assert.ok((await page.locator(`#sensors-table tr[data-sensor="${XSS_SENSOR}"]`).textContent()).includes('file:' + XSS + '.pcap'));
  assert.equal(await page.$$eval('img', (imgs) => imgs.length), 0);
  await page.goto(stack.base + '#/flows');
  await page.waitForSelector('#flows-table tr.flow');
  assert.equal(await page.$$eval('img', (imgs) => imgs.length), 0);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(pageErrors.filter((e) => !/WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource/.test(e)), [], 'no page errors');
});

step('Ctrl+1/2/3 switch tabs and / focuses the search', async () => {
  for (const [key, route] of [['2', 'flows'], ['3', 'health'], ['1', 'dashboard']]) {
    await page.keyboard.press('Control+' + key);
    await page.waitForFunction((r) => location.hash.startsWith('#/' + r) && !document.getElementById('view-' + r).hidden, route);
    assert.equal(await page.getAttribute(`#tab-${route}`, 'aria-current'), 'page');
  }
  await page.keyboard.press('/');
  await page.waitForFunction(() => location.hash.startsWith('#/flows') && document.activeElement.id === 'search');
});

step('screenshots of the three tabs', async () => {
  await setLive(true);
  for (const route of ['flows', 'health', 'dashboard']) {
    await page.goto(stack.base + '#/' + route);
    await page.waitForSelector('#conn[data-state="live"]');
    await page.waitForTimeout(1500);
    await page.screenshot({ path: join(OUT, route + '.png') });
  }
  if (process.env.NETWATCH_UPDATE_DOCS) copyFileSync(join(OUT, 'dashboard.png'), join(REPO, 'webui', 'docs', 'dashboard.png'));
  await page.setViewportSize({ width: 3840, height: 2160 });
  await page.waitForTimeout(1500);
  await page.screenshot({ path: join(OUT, 'dashboard-4k.png') });
  await page.setViewportSize({ width: 1366, height: 768 });
});

step('collector gone: offline within 5 s; back: live again with fresh data', async () => {
  await page.goto(stack.base + '#/dashboard');
  await page.waitForSelector('#conn[data-state="live"]');
  await stack.stopCollector();
  const t0 = Date.now();
  await page.waitForSelector('#conn[data-state="offline"]', { timeout: 5000 });
  console.log(`# offline shown after ${Date.now() - t0} ms`);
  assert.match(await page.textContent('#conn'), /OFFLINE/);
  await stack.startCollector();
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 20000 });
  // The new collector's store starts empty; the sensors reconnect and it fills again.
  await page.waitForFunction(() => document.querySelectorAll('#top-talkers tr[data-host]').length > 0, null, { timeout: 20000 });
});
