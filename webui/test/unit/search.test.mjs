import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSearch, formatSearch, flowParams, isIP, isCIDR, serverFilter, checkValue, FIELDS, HELP, APPLICATIONS } from '../../static/js/utils/search.js';

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

test('the flow identity and enrichment terms parse, normalized', () => {
  const cid = '1:LQU9qZlK+B5F3KDmev6m5PMibrg=';
  assert.deepEqual(parseSearch(`community_id:${cid} application:TLS server_name:WWW.Example.com host:.example.org asn:13335 country:us`), {
    filter: { community_id: cid, application: 'tls', server_name: 'www.example.com', host: '.example.org', asn: '13335', country: 'US' },
    errors: [],
  });
  const q = `src_ip:10.0.0.0/8 community_id:${cid} application:dns server_name:a.example host:b.example asn:64512 country:DE`;
  assert.equal(formatSearch(parseSearch(q).filter), q, 'formatSearch is still the inverse');
});

test('the new terms name what is wrong', () => {
  for (const [q, want] of [
    ['community_id:abc', /community_id: "abc" is not a Community ID v1/],
    ['community_id:1:LQU9qZlK+B5F3KDmev6m5PMibrg', /community_id/], // no padding: not 28 characters
    ['community_id:2:LQU9qZlK+B5F3KDmev6m5PMibrg=', /community_id/],
    ['application:t/ls', /application: "t\/ls" is not an application label/],
    ['server_name:exa mple', /term "mple" is not field:value/],
    ['server_name:-bad.', /server_name: "-bad." is not a host name/],
    ['server_name:a..b', /server_name: "a..b"/],
    ['host:<img>', /host: "<img>" is not a host name/],
    ['asn:AS13335', /asn: "AS13335" is not an AS number/],
    ['asn:4294967296', /asn: "4294967296"/],
    ['country:USA', /country: "USA" is not a two-letter country code/],
    ['asn:1 asn:2', /field "asn" given twice/],
  ]) {
    const { errors } = parseSearch(q);
    assert.equal(errors.length, 1, `${q}: ${errors}`);
    assert.match(errors[0], want, q);
  }
  assert.match(parseSearch('colour:red').errors[0], /use src_ip, .*community_id, application, server_name, host, asn, country/);
});

test('serverFilter sends the new terms as q (the WebSocket takes only the older keys)', () => {
  assert.deepEqual(serverFilter({ src_ip: '10.0.0.0/8', application: 'tls', port: '', asn: '13335' }),
    { src_ip: '10.0.0.0/8', q: 'application:tls asn:13335' });
  assert.deepEqual(serverFilter({ protocol: 'udp' }), { protocol: 'udp' }, 'no q without new terms');
  const p = flowParams({ community_id: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=', server_name: 'example.com' }, { limit: 10 });
  assert.equal(p.get('q'), 'community_id:1:LQU9qZlK+B5F3KDmev6m5PMibrg= server_name:example.com');
  assert.equal(p.toString(), 'q=community_id%3A1%3ALQU9qZlK%2BB5F3KDmev6m5PMibrg%3D+server_name%3Aexample.com&limit=10', 'the + of base64 is escaped');
});

test('every field has a line of help and the help examples are valid', () => {
  assert.deepEqual(HELP.map(([f]) => f), FIELDS);
  for (const [f, example] of HELP) assert.equal(checkValue(f, example), '', `${f}:${example}`);
  for (const a of APPLICATIONS) assert.equal(checkValue('application', a), '', a);
});
