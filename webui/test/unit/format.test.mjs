import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatBits, formatRate, formatNumber, formatPercent, formatDuration, formatAgo, endpoint } from '../../static/js/utils/format.js';

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
