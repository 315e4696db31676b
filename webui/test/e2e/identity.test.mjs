// Browser end-to-end of who and what: a real collector and two sensors replaying
// shared captures (TLS with SNI, HTTP with a Host header), Debian's chromium.
// The flows table's application and server name columns and the search terms;
// the host view reached from an address (GET /api/v1/hosts/{ip}); top talkers by
// source, destination, AS and country. The steps marked "(collector)" need the
// collector's side of the fields (store, query, GetHost); the others need only
// the UI (one renders a contract-shaped host answer served by the browser's
// request routing, to check the rendering itself).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Stack, launchBrowser, stepper, waitFor, OUT } from './harness.mjs';

let stack;
let browser;
let page;
const pageErrors = [];
let failed = false;

before(async () => {
  mkdirSync(OUT, { recursive: true });
  stack = new Stack([{ id: 'e2e-tls', pcap: 'pcapplusplus-tls2.pcap' }, { id: 'e2e-http', pcap: 'pcapplusplus-one_http_stream_fin.pcap' }]);
  await stack.start();
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  page = await context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
});

after(async () => {
  if (failed) stack && stack.dumpLogs();
  if (browser) await browser.close();
  if (stack) await stack.stop();
});

/** step marks the suite failed (to dump the processes' logs) when fn throws. */
const step = stepper(() => page, () => { failed = true; });

const isFlows = (r) => r.url().includes('/api/v1/flows?') && !r.url().includes('format=csv');
const isHost = (r) => r.url().includes('/api/v1/hosts/');

async function setLive(on) {
  const pressed = await page.getAttribute('#live-toggle', 'aria-pressed');
  if ((pressed === 'true') !== on) await page.click('#live-toggle');
}

async function search(q) {
  await page.fill('#search', q);
  const [resp] = await Promise.all([page.waitForResponse(isFlows), page.press('#search', 'Enter')]);
  const body = await resp.json();
  await page.waitForFunction((n) => document.querySelectorAll('#flows-table tr.flow').length === n || (n === 0 && document.getElementById('no-flows')), body.flows.length);
  return { url: new URL(resp.url()), body };
}

/** rows: what the table shows per flow row. */
const rows = () => page.$$eval('#flows-table tr.flow', (trs) => trs.map((tr) => ({
  key: tr.dataset.key,
  src: tr.querySelector('td.src a.host-link')?.textContent,
  srcHref: tr.querySelector('td.src a.host-link')?.getAttribute('href'),
  srcName: tr.querySelector('td.src .name')?.textContent || '',
  srcNameTitle: tr.querySelector('td.src .name')?.title || '',
  dst: tr.querySelector('td.dst a.host-link')?.textContent,
  dstHref: tr.querySelector('td.dst a.host-link')?.getAttribute('href'),
  app: tr.querySelector('td.app').textContent,
  server: tr.querySelector('td.server').textContent,
})));

const endpointOf = (ip, port, proto) => (['tcp', 'udp', 'sctp'].includes(proto) ? (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`) : ip);

step('the flows table has application and server name columns; addresses link to their host view', async () => {
  await page.goto(stack.base + '#/flows');
  await page.waitForSelector('#flows-table tr.flow');
  await setLive(false);
  const heads = await page.$$eval('#flows-table thead th', (ths) => ths.map((t) => t.textContent.trim()));
  assert.deepEqual(heads.slice(1, 6), ['Source', 'Destination', 'Proto', 'App', 'Server name']);
  const { body } = await search('');
  const shown = await rows();
  assert.deepEqual(shown.map((r) => r.key), body.flows.map((f) => f.flowKey));
  body.flows.forEach((f, i) => {
    const r = shown[i];
    assert.equal(r.src, endpointOf(f.srcIP, f.srcPort, f.protocolName), 'the address stays visible');
    assert.equal(r.srcHref, '#/host?' + new URLSearchParams({ ip: f.srcIP }));
    assert.equal(r.dstHref, '#/host?' + new URLSearchParams({ ip: f.dstIP }));
    assert.equal(r.app, f.application || '–');
    assert.equal(r.server, f.serverName || '–');
    assert.equal(r.srcName, f.srcName || '');
    assert.equal(r.srcNameTitle, f.srcName || '', 'the full name is the title');
  });
});

step('the search help lists the new terms and bad values are named before sending', async () => {
  await page.click('#search-help summary');
  const help = await page.textContent('#search-help');
  await page.click('#search-help summary');
  for (const t of ['community_id:', 'application:', 'server_name:', 'host:', 'asn:', 'country:']) assert.ok(help.includes(t), `help lacks ${t}`);
  for (const [q, want] of [['asn:AS13335', /asn: "AS13335" is not an AS number/], ['country:USA', /country: "USA" is not a two-letter country code/],
    ['community_id:xyz', /community_id: "xyz" is not a Community ID v1/], ['server_name:a..b', /server_name: "a..b" is not a host name/]]) {
    let sent = false;
    const spy = (r) => { if (isFlows(r)) sent = true; };
    page.on('request', spy);
    await page.fill('#search', q);
    await page.press('#search', 'Enter');
    assert.match(await page.textContent('#search-error'), want);
    page.off('request', spy);
    assert.equal(sent, false, `${q} was sent`);
  }
});

step('(collector) application and server name of TLS and HTTP flows, and a click on them filters', async () => {
  await setLive(false);
  // The HTTP capture's one stream asks for Host: backup.avg.cz.
  const http = await waitFor('the HTTP flow with its Host', async () => {
    const api = await stack.api('flows', { q: 'application:http', limit: '100' });
    return api.flows.find((f) => f.serverName === 'backup.avg.cz');
  }, 30000);
  assert.equal(http.sensorId, 'e2e-http');

  // TLS flows with an SNI, in the table as the API gives them.
  const named = '#flows-table tr.flow td.server button[data-filter="server_name"]';
  let r;
  await waitFor('a TLS row with its server name', async () => {
    r = await search('application:tls');
    return (await page.locator(named).count()) > 0;
  }, 30000, 1000);
  assert.equal(r.url.searchParams.get('q'), 'application:tls', 'the new terms travel in q');
  assert.ok(r.body.flows.every((f) => f.application === 'tls'));
  assert.ok((await rows()).every((x) => x.app === 'tls'));

  // A server name cell adds its term to the filter.
  const cell = page.locator(named).first();
  const name = await cell.getAttribute('data-value');
  const [resp] = await Promise.all([page.waitForResponse(isFlows), cell.click()]);
  assert.equal(new URL(resp.url()).searchParams.get('q'), `application:tls server_name:${name}`);
  assert.equal(await page.inputValue('#search'), `application:tls server_name:${name}`);
  const body = await resp.json();
  assert.ok(body.flows.length > 0 && body.flows.every((f) => f.serverName === name || f.serverName.endsWith('.' + name)));
  assert.equal(await page.locator('#flows-table tr.detail').count(), 0, 'a filter click does not expand the row');

  // An application cell too.
  await search(`server_name:${http.serverName}`);
  const app = page.locator('#flows-table tr.flow td.app button[data-value="http"]').first();
  const [resp2] = await Promise.all([page.waitForResponse(isFlows), app.click()]);
  assert.equal(new URL(resp2.url()).searchParams.get('q'), `application:http server_name:${http.serverName}`);
  const b2 = await resp2.json();
  assert.ok(b2.flows.length > 0 && b2.flows.every((f) => f.application === 'http' && f.serverName === http.serverName));
});

step('(collector) the flow detail shows the Community ID, copyable and a filter', async () => {
  await setLive(false);
  await search('protocol:tcp');
  const row = page.locator('#flows-table tr.flow').first();
  const key = await row.getAttribute('data-key');
  await row.locator('td.num').first().click();
  const detail = page.locator(`#flows-table tr.detail[data-key="${key}"]`);
  await detail.waitFor();
  const cid = (await detail.locator('.community-id code').textContent()).trim();
  assert.match(cid, /^1:[A-Za-z0-9+/]{27}=$/);
  const text = await detail.textContent();
  for (const want of ['Application', 'Server name', 'Community ID', 'AS · country', 'Name']) assert.ok(text.includes(want), `detail lacks ${want}`);
  const [resp] = await Promise.all([page.waitForResponse(isFlows), detail.locator('.community-id button[data-filter="community_id"]').click()]);
  assert.equal(new URL(resp.url()).searchParams.get('q'), `community_id:${cid}`, 'the Community ID term');
  const body = await resp.json();
  assert.ok(body.flows.some((f) => f.flowKey === key), 'its own flow is found by its Community ID');
  assert.ok(body.flows.every((f) => f.communityId === cid));
});

step('a host view renders the contract: names, AS, totals, chart, peers, services, applications (answer routed in the browser)', async () => {
  const now = Date.now();
  const series = [0, 1, 2, 3, 4, 5].map((i) => ({ timestamp: new Date(now - (5 - i) * 10000).toISOString(), bytes: 1000 * (i + 1), packets: i + 1 }));
  const answer = (ip) => ({
    ip, names: ['www.example.com', 'example.com'], asn: 13335, asName: 'Cloudflare', country: 'US', time_window: '5m', generated_at: new Date(now).toISOString(),
    bytes: 21000, packets: 21, flowCount: 3, flowsInitiated: 1, series,
    peers: [{ ip: '192.0.2.7', name: '<img src=x onerror="window.__xss=1">.example', asn: 64512, asName: 'Example Net', country: 'DE', bytes: 20000, packets: 20, flows: 2 },
      { ip: '2001:db8::5', name: '', asn: 0, asName: '', country: '', bytes: 1000, packets: 1, flows: 1 }],
    services: [{ protocol: 6, protocolName: 'tcp', port: 443, application: 'tls', bytes: 20000, flows: 2, served: true },
      { protocol: 17, protocolName: 'udp', port: 53, application: 'dns', bytes: 1000, flows: 1, served: false }],
    applications: [{ application: 'tls', bytes: 20000, flows: 2 }, { application: 'dns', bytes: 1000, flows: 1 }],
  });
  const asked = [];
  await page.route('**/api/v1/hosts/**', (route) => {
    const u = new URL(route.request().url());
    asked.push(u.pathname + u.search);
    const ip = decodeURIComponent(u.pathname.split('/api/v1/hosts/')[1]);
    route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(answer(ip)) });
  });
  try {
    await page.goto(stack.base + '#/host?ip=198.51.100.9');
    await page.waitForSelector('#view-host[data-loaded="198.51.100.9"]');
    assert.match(asked[0], /^\/api\/v1\/hosts\/198\.51\.100\.9\?duration=5m&limit=10$/);
    assert.equal(await page.textContent('#host-ip'), '198.51.100.9');
    assert.equal(await page.textContent('#host-name'), 'www.example.com');
    assert.equal(await page.textContent('#host-names'), 'also: example.com');
    assert.equal(await page.textContent('#host-as'), 'AS13335 Cloudflare · US');
    assert.equal(await page.textContent('#host-bytes .value'), '20.5 KiB');
    assert.equal(await page.textContent('#host-flows .value'), '3');
    assert.equal(await page.textContent('#host-initiated .value'), '1');
    const chart = await page.evaluate(() => { const c = Chart.getChart(document.getElementById('host-chart')); return { n: c.data.labels.length, bytes: c.data.datasets[0].data }; });
    assert.deepEqual(chart, { n: 6, bytes: [1000, 2000, 3000, 4000, 5000, 6000] });
    const peers = await page.$$eval('#host-peers tbody tr', (trs) => trs.map((tr) => [tr.querySelector('a.host-link').textContent, tr.querySelector('.name')?.textContent || '',
      tr.querySelector('.name')?.title || '', tr.querySelector('.asinfo').textContent]));
    const evil = '<img src=x onerror="window.__xss=1">.example';
    assert.deepEqual(peers, [['192.0.2.7', evil, evil, 'AS64512 Example Net · DE'], ['2001:db8::5', '', '', '–']]);
    assert.equal(await page.$$eval('img', (imgs) => imgs.length), 0, 'a name is text');
    assert.deepEqual(await page.$$eval('#host-services tbody tr', (trs) => trs.map((tr) => tr.textContent)),
      ['tcp/443tls● served19.5 KiB2', 'udp/53dns○ used1000 B1']);
    assert.deepEqual(await page.$$eval('#host-apps tbody tr', (trs) => trs.map((tr) => tr.textContent)), ['tls19.5 KiB295.2 %', 'dns1000 B14.8 %']);
    await page.screenshot({ path: join(OUT, 'host-contract.png') });

    // A peer opens its own host view (IPv6: the colons stay in the API path).
    await Promise.all([page.waitForResponse(isHost), page.click('#host-peers a.host-link >> text=2001:db8::5')]);
    await page.waitForSelector('#view-host[data-loaded="2001:db8::5"]');
    assert.equal(new URL(page.url()).hash, '#/host?ip=2001%3Adb8%3A%3A5');
    assert.match(asked[asked.length - 1], /^\/api\/v1\/hosts\/2001:db8::5\?/);
    // The window is URL state too.
    await Promise.all([page.waitForResponse(isHost), page.selectOption('#host-duration', '15m')]);
    assert.match(asked[asked.length - 1], /duration=15m/);
    assert.match(new URL(page.url()).hash, /duration=15m/);
  } finally {
    await page.unroute('**/api/v1/hosts/**');
  }
});

step('an API error is shown as its message', async () => {
  for (const ip of ['not-an-ip', '10.0.0.300']) {
    const [resp] = await Promise.all([page.waitForResponse(isHost), page.goto(stack.base + '#/host?ip=' + ip)]);
    assert.equal(resp.ok(), false, `${ip} answered ${resp.status()}`);
    const body = await resp.json();
    assert.ok(body.error.message, 'the error body has a message');
    await page.waitForSelector('#host-error:not([hidden])');
    assert.equal(await page.textContent('#host-error'), '✖ ' + body.error.message);
  }
});

step('(collector) the host view opens from an address in the flows table and renders its tables and chart', async () => {
  await page.goto(stack.base + '#/flows');
  await setLive(false);
  const { body } = await search('protocol:tcp');
  const f = body.flows[0];
  await Promise.all([page.waitForResponse(isHost), page.locator('#flows-table tr.flow').first().locator('td.dst a.host-link').click()]);
  assert.equal(new URL(page.url()).hash, '#/host?' + new URLSearchParams({ ip: f.dstIP }));
  await page.waitForSelector(`#view-host[data-loaded="${f.dstIP}"]`);
  assert.equal(await page.isVisible('#host-error'), false, await page.textContent('#host-error'));
  const api = await stack.api('hosts/' + f.dstIP, { duration: '5m' });
  assert.equal(api.ip, f.dstIP);
  assert.ok(api.flowCount > 0 && api.bytes > 0, 'the host has traffic');
  await waitFor('the cards', async () => (await page.textContent('#host-flows .value')) !== '–');
  assert.ok(Number((await page.textContent('#host-flows .value')).replace(/,/g, '')) > 0);
  const chart = await page.evaluate(() => { const c = Chart.getChart(document.getElementById('host-chart')); return { n: c.data.labels.length, sum: c.data.datasets[0].data.reduce((a, b) => a + b, 0) }; });
  assert.ok(chart.n > 0 && chart.sum > 0, `chart ${JSON.stringify(chart)}`);
  const peers = await page.$$eval('#host-peers tbody tr[data-peer]', (trs) => trs.map((t) => t.dataset.peer));
  assert.ok(peers.includes(f.srcIP), `the flow's source ${f.srcIP} is a peer of ${f.dstIP}: ${peers}`);
  assert.ok(await page.locator('#host-services tbody tr[data-service]').count() > 0, 'services');
  assert.ok(await page.locator('#host-apps tbody tr[data-app]').count() > 0, 'applications');
  assert.ok((await page.$$eval('#host-services tbody tr[data-service]', (trs) => trs.map((t) => t.dataset.service))).includes(`tcp/${f.dstPort}`));
  await page.screenshot({ path: join(OUT, 'host.png') });

  // A peer opens its own host view.
  await Promise.all([page.waitForResponse(isHost), page.locator(`#host-peers tr[data-peer="${f.srcIP}"] a.host-link`).click()]);
  await page.waitForSelector(`#view-host[data-loaded="${f.srcIP}"]`);
  assert.equal(await page.textContent('#host-ip'), f.srcIP);
  assert.ok(await page.locator('#host-peers tbody tr[data-peer]').count() > 0, 'the peer has peers');
  // Its flows, one click away.
  await Promise.all([page.waitForResponse(isFlows), page.click('#host-flows-src')]);
  assert.equal(await page.inputValue('#search'), `src_ip:${f.srcIP}`);
});

step('a top talker address opens its host view', async () => {
  await page.goto(stack.base + '#/dashboard');
  await page.waitForFunction(() => document.querySelectorAll('#top-talkers tr[data-host]').length > 0);
  const row = page.locator('#top-talkers tr[data-host]').first();
  const host = await row.getAttribute('data-host');
  await Promise.all([page.waitForResponse(isHost), row.locator('a.host-link').click()]);
  assert.equal(new URL(page.url()).hash, '#/host?' + new URLSearchParams({ ip: host }));
  assert.equal(await page.textContent('#host-ip'), host);
  assert.equal(await page.isVisible('#view-host'), true);
});

step('top talkers by source and by destination come from the REST API', async () => {
  await page.goto(stack.base + '#/dashboard');
  for (const by of ['src', 'dst']) {
    const [resp] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/v1/top-talkers?') && r.url().includes('by=' + by)), page.selectOption('#talkers-by', by)]);
    assert.ok(resp.ok());
    const body = await resp.json();
    await waitFor(`talkers by ${by}`, async () => (await page.locator('#top-talkers tr[data-host]').count()) > 0, 10000);
    const first = body.top_talkers[0];
    const hosts = await page.$$eval('#top-talkers tr[data-host]', (trs) => trs.map((t) => t.dataset.host));
    assert.ok(hosts.includes(first.identifier), `${first.identifier} in ${hosts}`);
    assert.equal(await page.locator('#top-talkers tr[data-host] td.who a.host-link').first().getAttribute('href') !== null, true);
  }
  await page.selectOption('#talkers-by', 'any');
});

step('(collector) top talkers by AS and by country', async () => {
  for (const [by, head] of [['asn', 'AS'], ['country', 'Country']]) {
    const [resp] = await Promise.all([page.waitForResponse((r) => r.url().includes('/api/v1/top-talkers?') && r.url().includes('by=' + by)), page.selectOption('#talkers-by', by)]);
    assert.ok(resp.ok(), `by=${by}: HTTP ${resp.status()} ${await resp.text()}`);
    const body = await resp.json();
    assert.ok(body.top_talkers.length > 0, 'without GeoIP databases every host is "unknown", still ranked');
    await page.waitForSelector('#top-talkers tr[data-host]');
    assert.equal((await page.textContent('#top-talkers thead th:nth-child(2)')).trim(), head);
    assert.equal(await page.locator('#top-talkers a.host-link').count(), 0, 'an AS or a country is not an address');
  }
  await page.selectOption('#talkers-by', 'any');
});

step('screenshot of the flows tab with the new columns', async () => {
  await page.goto(stack.base + '#/flows');
  await page.waitForSelector('#flows-table tr.flow');
  await setLive(true);
  await page.waitForTimeout(1500);
  await page.screenshot({ path: join(OUT, 'flows-identity.png') });
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.deepEqual(pageErrors, [], 'no page errors');
});
