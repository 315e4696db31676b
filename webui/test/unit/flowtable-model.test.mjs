import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FlowTableModel, HOT_BYTES } from '../../static/js/components/FlowTable/model.js';

const flow = (key, extra) => ({ flowKey: key, bytes: 100, packets: 1, ...extra });

test('sort: a new column sorts descending, the same column again flips the order, both go back to page one', () => {
  const m = new FlowTableModel();
  assert.deepEqual([m.sortBy, m.sortOrder], ['last_seen', 'desc']);
  m.offset = 100;
  m.sort('bytes');
  assert.deepEqual([m.sortBy, m.sortOrder, m.offset], ['bytes', 'desc', 0]);
  m.offset = 50;
  m.sort('bytes');
  assert.deepEqual([m.sortBy, m.sortOrder, m.offset], ['bytes', 'asc', 0]);
  m.sort('bytes');
  assert.equal(m.sortOrder, 'desc');
  m.sort('packets');
  assert.deepEqual([m.sortBy, m.sortOrder], ['packets', 'desc']);
  assert.throws(() => m.sort('src_ip'), /not a sortable column: src_ip/);
});

test('sortState: aria-sort and the arrow for the sorted column only', () => {
  const m = new FlowTableModel();
  m.sort('duration');
  assert.deepEqual(m.sortState('duration'), { aria: 'descending', label: 'Duration ▼' });
  m.sort('duration');
  assert.deepEqual(m.sortState('duration'), { aria: 'ascending', label: 'Duration ▲' });
  assert.deepEqual(m.sortState('bytes'), { aria: 'none', label: 'Bytes' });
});

test('paging: by the page size, never before the first row; a new page size starts over', () => {
  const m = new FlowTableModel();
  m.page(1);
  m.page(1);
  assert.equal(m.offset, 100);
  m.page(-1);
  assert.equal(m.offset, 50);
  m.page(-1);
  m.page(-1);
  assert.equal(m.offset, 0);
  m.page(1);
  m.setLimit(25);
  assert.deepEqual([m.limit, m.offset], [25, 0]);
});

test('setFilter: back to page one with nothing expanded; the range stays unless given', () => {
  const m = new FlowTableModel();
  m.setFilter({ protocol: 'tcp' }, '15');
  m.offset = 50;
  m.toggle('k1');
  m.setFilter({ port: '443' });
  assert.deepEqual(m.filter, { port: '443' });
  assert.equal(m.range, '15');
  assert.equal(m.offset, 0);
  assert.equal(m.isOpen('k1'), false);
  m.setFilter({}, '');
  assert.equal(m.range, '');
});

test('effectiveFilter: the time range becomes time_start unless the filter has one', () => {
  const m = new FlowTableModel();
  const now = Date.parse('2026-12-02T12:00:00Z');
  m.setFilter({ src_ip: '10.0.0.0/8' }, '5');
  assert.deepEqual(m.effectiveFilter(now), { src_ip: '10.0.0.0/8', time_start: '2026-12-02T11:55:00.000Z' });
  assert.deepEqual(m.filter, { src_ip: '10.0.0.0/8' }, 'the filter itself is unchanged');
  m.setFilter({ time_start: '2026-12-02T10:00:00Z' });
  assert.equal(m.effectiveFilter(now).time_start, '2026-12-02T10:00:00Z');
  m.setFilter({}, '');
  assert.deepEqual(m.effectiveFilter(now), {});
});

test('params: the REST query of filter, paging and sort', () => {
  const m = new FlowTableModel();
  m.setFilter({ protocol: 'udp', port: '53' });
  m.sort('bytes');
  m.page(1);
  const p = m.params({ format: 'csv' });
  assert.equal(p.get('protocol'), 'udp');
  assert.equal(p.get('port'), '53');
  assert.equal(p.get('limit'), '50');
  assert.equal(p.get('offset'), '50');
  assert.equal(p.get('sort_by'), 'bytes');
  assert.equal(p.get('sort_order'), 'desc');
  assert.equal(p.get('format'), 'csv');
});

test('setResponse and pager: rows, total and the pager numbers', () => {
  const m = new FlowTableModel();
  assert.deepEqual(m.pager(), { total: 0, from: 0, to: 0, prevDisabled: true, nextDisabled: true });
  m.page(1);
  m.setResponse({ flows: [flow('a'), flow('b')], pagination: { total_count: 52, has_more: false } });
  assert.deepEqual(m.rows.map((r) => r.flowKey), ['a', 'b']);
  assert.deepEqual(m.pager(), { total: 52, from: 51, to: 52, prevDisabled: false, nextDisabled: true });
  m.setResponse({ flows: [flow('a')] });
  assert.deepEqual([m.total, m.hasMore], [1, false], 'without pagination: the rows are all');
  m.setResponse({});
  assert.deepEqual(m.rows, []);
});

test('applyUpdates: rows on the page are replaced in place; others ask for a refetch', () => {
  const m = new FlowTableModel();
  m.setResponse({ flows: [flow('a'), flow('b')], pagination: { total_count: 2, has_more: false } });
  assert.equal(m.applyUpdates({ flows: [flow('b', { bytes: 999 })] }), false);
  assert.deepEqual(m.rows.map((r) => [r.flowKey, r.bytes]), [['a', 100], ['b', 999]]);
  assert.equal(m.applyUpdates({ flows: [flow('c')] }), true, 'a flow not on the page');
  assert.deepEqual(m.rows.map((r) => r.flowKey), ['a', 'b'], 'not added: the server decides the page');
  assert.equal(m.applyUpdates({ flows: [], more: 3 }), true, 'updates beyond the message');
  assert.equal(m.updates, 5);
});

test('toggle: a row opens and closes; rows are marked hot over HOT_BYTES and by a reset', () => {
  const m = new FlowTableModel();
  m.toggle('a');
  assert.equal(m.isOpen('a'), true);
  assert.equal(m.isOpen('b'), false);
  m.toggle('a');
  assert.equal(m.isOpen('a'), false);
  assert.deepEqual(FlowTableModel.marks(flow('x', { bytes: HOT_BYTES })), { hot: true, rst: false });
  assert.deepEqual(FlowTableModel.marks(flow('x', { bytes: HOT_BYTES - 1, endReason: 'rst' })), { hot: false, rst: true });
});

test('the model does not touch the DOM', async () => {
  assert.equal(typeof globalThis.document, 'undefined', 'these tests run without a DOM');
  const m = new FlowTableModel();
  m.setResponse({ flows: [flow('a')] });
  m.toggle('a');
  m.sort('bytes');
  m.params();
});

test('liveFilter: the subscription carries the new terms in q, with the time range', () => {
  const m = new FlowTableModel();
  const now = Date.parse('2026-12-02T12:00:00Z');
  m.setFilter({ protocol: 'tcp', application: 'tls', country: 'US' }, '5');
  assert.deepEqual(m.liveFilter(now), { protocol: 'tcp', time_start: '2026-12-02T11:55:00.000Z', q: 'application:tls country:US' });
  assert.equal(m.params(undefined, now).get('q'), 'application:tls country:US');
});
