import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSearch, formatSearch, flowParams, isIP, isCIDR } from '../../static/js/utils/search.js';

test('parseSearch reads the search syntax', () => {
  assert.deepEqual(parseSearch('src_ip:192.168.1.0/24 protocol:TCP'), { filter: { src_ip: '192.168.1.0/24', protocol: 'tcp' }, errors: [] });
  assert.deepEqual(parseSearch('  dst_ip:2001:db8::/32   port:443 status:active sensor:edge-1 '),
    { filter: { dst_ip: '2001:db8::/32', port: '443', status: 'active', sensor: 'edge-1' }, errors: [] });
  assert.deepEqual(parseSearch(''), { filter: {}, errors: [] });
});

test('parseSearch names what is wrong', () => {
  for (const [q, want] of [
    ['src_ip:300.1.1.1', /src_ip: "300.1.1.1" is not an IP/],
    ['src_ip:10.0.0.0/33', /src_ip/],
    ['colour:red', /unknown field "colour"/],
    ['tcp', /term "tcp" is not field:value/],
    ['port:70000', /port: "70000"/],
    ['protocol:bogus', /protocol: "bogus"/],
    ['status:gone', /status: "gone"/],
    ['port:1 port:2', /field "port" given twice/],
    ['time_start:yesterday', /time_start/],
  ]) {
    const { errors } = parseSearch(q);
    assert.equal(errors.length, 1, q);
    assert.match(errors[0], want, q);
  }
});

test('formatSearch is the inverse of parseSearch', () => {
  const q = 'src_ip:10.0.0.0/8 dst_ip:10.1.2.3 protocol:udp port:53 sensor:s1 status:closed';
  assert.equal(formatSearch(parseSearch(q).filter), q);
});

test('flowParams builds the REST query', () => {
  assert.equal(flowParams({ src_ip: '10.0.0.0/8', port: '' }, { limit: 50, offset: 100, sortBy: 'bytes', sortOrder: 'asc', format: 'csv' }).toString(),
    'src_ip=10.0.0.0%2F8&limit=50&offset=100&sort_by=bytes&sort_order=asc&format=csv');
});

test('isIP and isCIDR', () => {
  for (const ok of ['1.2.3.4', '::1', '2001:db8::1', 'fe80::1:2:3:4', '::ffff:10.0.0.1', '1:2:3:4:5:6:7:8']) assert.ok(isIP(ok), ok);
  for (const bad of ['1.2.3', '256.0.0.1', '1::2::3', 'abc', '1:2:3:4:5:6:7:8:9', '']) assert.ok(!isIP(bad), bad);
  assert.ok(isCIDR('10.0.0.0/8') && isCIDR('2001:db8::/32') && isCIDR('10.0.0.1'));
  assert.ok(!isCIDR('10.0.0.0/') && !isCIDR('10.0.0.0/40') && !isCIDR('::/129'));
});
