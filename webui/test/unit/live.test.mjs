import { test } from 'node:test';
import assert from 'node:assert/strict';

// The browser globals live.js uses, faked: a WebSocket that only records itself.
globalThis.location = new URL('http://collector.test/');
globalThis.document = { addEventListener() {}, hidden: false };
class FakeSocket {
  static OPEN = 1;
  static last = null;
  constructor(url, protocols) {
    Object.assign(this, { url, protocols, readyState: 0, sent: [] });
    FakeSocket.last = this;
  }
  send(s) { this.sent.push(s); }
  close() { this.onclose && this.onclose(); }
}
globalThis.WebSocket = FakeSocket;
const { Live } = await import('../../static/js/services/live.js');

test('retryAt: set by the service when it schedules a reconnect, cleared when it connects', (t) => {
  t.mock.method(Math, 'random', () => 0.5); // no jitter: the first delay is 500 ms
  const live = new Live();
  const states = [];
  live.on('state', (s, detail) => states.push([s, detail && detail.retryAt]));
  assert.equal(live.retryAt, null);

  live.connect();
  const ws = FakeSocket.last;
  assert.equal(ws.url, 'ws://collector.test/api/v1/ws');
  assert.equal(live.retryAt, null, 'connecting');

  const before = Date.now();
  ws.onclose();
  const after = Date.now();
  t.after(() => clearTimeout(live.timer));
  assert.equal(live.state, 'offline');
  assert.ok(live.retryAt >= before + 500 && live.retryAt <= after + 500, `retryAt ${live.retryAt - before} ms ahead, want 500`);
  assert.deepEqual(states.at(-1), ['offline', live.retryAt], 'the state event carries the same time');

  live.connect(); // what the reconnect timer does
  assert.equal(live.retryAt, null, 'a new attempt clears it');
  FakeSocket.last.onopen();
  clearInterval(live.watchdog);
  assert.equal(live.state, 'live');
  assert.equal(live.retryAt, null);
  assert.deepEqual(states.map((s) => s[0]), ['reconnecting', 'offline', 'reconnecting', 'live']);
});

test('retryAt is read-only outside the service', () => {
  const live = new Live();
  assert.throws(() => { live.retryAt = 123; }, TypeError);
  assert.equal(live.retryAt, null);
});

test('the second delay doubles the first', (t) => {
  t.mock.method(Math, 'random', () => 0.5);
  const live = new Live();
  live.connect();
  FakeSocket.last.onclose();
  clearTimeout(live.timer);
  const first = live.retryAt - Date.now();
  live.connect();
  FakeSocket.last.onclose();
  clearTimeout(live.timer);
  const second = live.retryAt - Date.now();
  assert.ok(first > 400 && first <= 500, `first delay ${first}`);
  assert.ok(second > 900 && second <= 1000, `second delay ${second}`);
});
