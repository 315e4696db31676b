import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatBits, formatRate, formatNumber, formatPercent, formatDuration, formatAgo, endpoint, asLabel, hostHash, hostPath, shareOf } from '../../static/js/utils/format.js';

test('formatBytes uses binary units', () => {
  for (const [n, want] of [[0, '0 B'], [1023, '1023 B'], [1536, '1.5 KiB'], [10 * 1024 * 1024, '10.0 MiB'], [200 * 1024 ** 3, '200 GiB'], [NaN, '–']]) {
    assert.equal(formatBytes(n), want, `formatBytes(${n})`);
  }
});

test('formatBits and formatRate use decimal units', () => {
  assert.equal(formatBits(999), '999 bit/s');
  assert.equal(formatBits(1.25e6), '1.3 Mbit/s');
  assert.equal(formatBits(1e9), '1.0 Gbit/s');
  assert.equal(formatRate(27), '27 pkt/s');
  assert.equal(formatRate(12500), '12.5 kpkt/s');
});

test('formatNumber, formatPercent', () => {
  assert.equal(formatNumber(1234567), '1,234,567');
  assert.equal(formatNumber(12), '12');
  assert.equal(formatNumber(undefined), '–');
  assert.equal(formatPercent(12.345), '12.3 %');
});

test('formatDuration', () => {
  for (const [ms, want] of [[0, '0 ms'], [850, '850 ms'], [4200, '4.2 s'], [185000, '3m 05s'], [7440000, '2h 04m'], [90000000, '1d 01h'], [-1, '–']]) {
    assert.equal(formatDuration(ms), want, `formatDuration(${ms})`);
  }
});

test('formatAgo', () => {
  assert.equal(formatAgo(null), 'never');
  assert.equal(formatAgo('2026-01-01T00:00:00Z', Date.parse('2026-01-01T00:00:04Z')), '4.0 s ago');
});

test('endpoint brackets IPv6 and drops the port of portless protocols', () => {
  assert.equal(endpoint('10.0.0.1', 443, 'tcp'), '10.0.0.1:443');
  assert.equal(endpoint('2001:db8::1', 53, 'udp'), '[2001:db8::1]:53');
  assert.equal(endpoint('10.0.0.1', 0, 'icmp'), '10.0.0.1');
});

test('asLabel: AS number, name and country, unknown parts left out', () => {
  assert.equal(asLabel(13335, 'Cloudflare', 'US'), 'AS13335 Cloudflare · US');
  assert.equal(asLabel(0, '', 'DE'), 'DE');
  assert.equal(asLabel(64512, '', ''), 'AS64512');
  assert.equal(asLabel(undefined, undefined, undefined), '');
});

test('hostHash and hostPath: the host view route and its API path', () => {
  assert.equal(hostHash('10.1.2.3'), '#/host?ip=10.1.2.3');
  assert.equal(hostHash('2001:db8::1'), '#/host?ip=2001%3Adb8%3A%3A1');
  assert.equal(new URLSearchParams(hostHash('2001:db8::1').split('?')[1]).get('ip'), '2001:db8::1');
  assert.equal(hostPath('10.1.2.3'), 'hosts/10.1.2.3');
  assert.equal(hostPath('2001:db8::1'), 'hosts/2001:db8::1');
  assert.equal(hostPath('fe80::1%eth0'), 'hosts/fe80::1%25eth0');
  assert.equal(hostPath('../metrics?x=1'), 'hosts/..%2Fmetrics%3Fx%3D1', 'a typed address cannot leave the path segment');
});

test('shareOf', () => {
  assert.equal(shareOf(25, 200), 12.5);
  assert.equal(shareOf(5, 0), 0);
});
