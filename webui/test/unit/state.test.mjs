import { test } from 'node:test';
import assert from 'node:assert/strict';
import { State, Series, Alerts } from '../../static/js/services/state.js';

test('State tells subscribers of changes only', () => {
  const s = new State({ a: 1 });
  const seen = [];
  const off = s.on('a', (v) => seen.push(v));
  s.set('a', 1);
  s.set('a', 2);
  s.set('b', 3);
  off();
  s.set('a', 4);
  assert.deepEqual(seen, [2]);
  assert.equal(s.get('a'), 4);
});

test('Series keeps one point per second, the last size, in time order', () => {
  const s = new Series(3);
  s.push(1000, 1);
  s.push(1500, 2); // same second: replaces
  s.push(2000, 3);
  s.push(500, 9); // late: ignored
  s.push(3000, 4);
  s.push(4000, 5);
  assert.deepEqual(s.column(1), [3, 4, 5]);
  s.trim(3500);
  assert.deepEqual(s.column(0), [4000]);
});

test('Alerts tracks active alerts and history', () => {
  const a = new Alerts(2);
  a.apply({ id: 'x', state: 'raised' });
  a.apply({ id: 'y', state: 'raised' });
  a.apply({ id: 'x', state: 'cleared' });
  assert.deepEqual([...a.active.keys()], ['y']);
  assert.equal(a.history.length, 2);
  assert.equal(a.history[0].state, 'cleared');
});
