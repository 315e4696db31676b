import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostParams, summary, serviceLabel, chartData } from '../../static/js/components/Host/model.js';
import { talkerTarget, hostSide } from '../../static/js/components/Dashboard/talkers.js';

test('hostParams: the address and a known window (default 5m)', () => {
  assert.deepEqual(hostParams(new URLSearchParams('ip=%2010.0.0.1%20&duration=15m')), { ip: '10.0.0.1', duration: '15m' });
  assert.deepEqual(hostParams(new URLSearchParams('ip=::1&duration=2h')), { ip: '::1', duration: '5m' });
  assert.deepEqual(hostParams(new URLSearchParams('')), { ip: '', duration: '5m' });
});

test('summary: the latest name first, the others, AS and country', () => {
  assert.deepEqual(summary({ names: ['a.example', 'b.example'], asn: 13335, asName: 'Cloudflare', country: 'US' }),
    { name: 'a.example', others: ['b.example'], as: 'AS13335 Cloudflare · US' });
  assert.deepEqual(summary({}), { name: '', others: [], as: '' });
});

test('serviceLabel', () => {
  assert.equal(serviceLabel({ protocolName: 'tcp', protocol: 6, port: 443 }), 'tcp/443');
  assert.equal(serviceLabel({ protocolName: '', protocol: 1, port: 0 }), '1');
  assert.equal(serviceLabel({ protocolName: 'icmp', protocol: 1 }), 'icmp');
});

test('chartData: labels and columns of the series, unparsable points skipped', () => {
  const d = chartData([
    { timestamp: '2026-12-02T12:00:00Z', bytes: 100, packets: 2 },
    { timestamp: 'nonsense', bytes: 5, packets: 1 },
    { timestamp: '2026-12-02T12:00:10Z', bytes: 0, packets: 0 },
  ], (t) => new Date(t).toISOString().slice(11, 19));
  assert.deepEqual(d, { labels: ['12:00:00', '12:00:10'], bytes: [100, 0], packets: [2, 0] });
  assert.deepEqual(chartData(undefined).labels, []);
});

test('talkerTarget: hosts link to their host view, the name only when it differs', () => {
  const t = { identifier: '10.0.0.1', displayName: 'db.example', flows: [{ srcIP: '10.0.0.1' }] };
  assert.deepEqual(talkerTarget(t, 'any'), { ip: '10.0.0.1', label: '10.0.0.1', name: 'db.example', filter: { src_ip: '10.0.0.1' }, title: 'Flows with 10.0.0.1 as source' });
  assert.equal(talkerTarget({ identifier: '10.0.0.1', displayName: '10.0.0.1' }, 'any').name, '', 'no name: the display name is the address');
  assert.deepEqual(talkerTarget(t, 'dst').filter, { dst_ip: '10.0.0.1' }, 'by destination: its flows as responder');
  assert.deepEqual(talkerTarget(t, 'src').filter, { src_ip: '10.0.0.1' });
});

test('talkerTarget: AS and country rankings filter by asn: and country:, not "unknown"', () => {
  assert.deepEqual(talkerTarget({ identifier: '13335', displayName: 'Cloudflare' }, 'asn'),
    { ip: '', label: 'AS13335', name: 'Cloudflare', filter: { asn: '13335' }, title: 'Flows with an end in AS13335' });
  assert.deepEqual(talkerTarget({ identifier: 'AS64512', displayName: 'AS64512' }, 'asn').filter, { asn: '64512' });
  assert.equal(talkerTarget({ identifier: '64512', displayName: 'AS64512' }, 'asn').name, '', 'the name is not the label again');
  assert.deepEqual(talkerTarget({ identifier: 'de', displayName: 'Germany' }, 'country').filter, { country: 'DE' });
  assert.equal(talkerTarget({ identifier: 'unknown', displayName: 'unknown' }, 'asn').filter, null);
  assert.equal(talkerTarget({ identifier: 'unknown', displayName: '' }, 'country').filter, null);
});

test('hostSide: the end most of its flows are on', () => {
  assert.equal(hostSide({ identifier: 'a', flows: [{ srcIP: 'b' }, { srcIP: 'a' }, { srcIP: 'c' }] }), 'dst_ip');
  assert.equal(hostSide({ identifier: 'a', flows: [] }), 'src_ip');
});
