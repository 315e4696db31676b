// The live stream: GET /api/v1/ws. Reconnects with exponential backoff (0.5 s
// doubling to 10 s, with jitter), declares the link dead when nothing arrives for
// 5 s (the collector pushes every second), re-sends the subscription after a
// reconnect and tells listeners so they resync from the REST API. retryAt is when
// the next attempt is due while offline (null otherwise); the service alone sets it.

import { getToken } from './api.js';

const SUBPROTOCOL = 'netwatch.v1';
const TOKEN_PREFIX = 'netwatch.token.';
const SILENCE_MS = 5000;

function base64url(s) {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// retryAt of each Live, private to this module (ES2020 has no private fields).
const retryAts = new WeakMap();

export class Live {
  constructor(path = 'api/v1/ws') {
    const u = new URL(path, location.href);
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
    this.url = u.toString();
    this.handlers = new Map();
    this.state = 'offline';
    this.attempt = 0;
    this.filter = null;
    this.ws = null;
    this.timer = null;
    this.watchdog = null;
    this.lastMessage = 0;
  }

  /** on(type, fn): fn(data, message) for each message of type; "state" gets the
   *  connection state (live, reconnecting, offline) and "open" fires on each connect. */
  on(type, fn) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(fn);
    return () => this.handlers.get(type).delete(fn);
  }

  emit(type, data, msg) {
    for (const fn of this.handlers.get(type) || []) {
      try { fn(data, msg); } catch (e) { console.error('live handler', type, e); }
    }
  }

  /** retryAt: the time (ms since the epoch) of the next reconnect while offline,
   *  null while connecting or live. */
  get retryAt() {
    return retryAts.get(this) ?? null;
  }

  setState(s, detail) {
    this.state = s;
    this.emit('state', s, detail);
  }

  start() {
    this.connect();
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden && this.state !== 'live') this.retryNow();
    });
  }

  retryNow() {
    clearTimeout(this.timer);
    this.attempt = 0;
    if (!this.ws) this.connect();
  }

  connect() {
    retryAts.delete(this);
    this.setState('reconnecting');
    const protocols = [SUBPROTOCOL];
    const token = getToken();
    if (token) protocols.push(TOKEN_PREFIX + base64url(token));
    let ws;
    try {
      ws = new WebSocket(this.url, protocols);
    } catch (e) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.lastMessage = Date.now();
      this.setState('live');
      if (this.filter) this.send({ type: 'subscribe', filter: this.filter });
      this.emit('open');
      clearInterval(this.watchdog);
      this.watchdog = setInterval(() => {
        if (Date.now() - this.lastMessage > SILENCE_MS) ws.close(4000, 'silent');
      }, 1000);
    };
    ws.onmessage = (ev) => {
      this.lastMessage = Date.now();
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      this.emit(msg.type, msg.data, msg);
    };
    ws.onclose = () => {
      clearInterval(this.watchdog);
      if (this.ws === ws) this.ws = null;
      this.scheduleReconnect();
    };
  }

  scheduleReconnect() {
    const delay = Math.min(10000, 500 * 2 ** this.attempt) * (0.8 + Math.random() * 0.4);
    this.attempt = Math.min(this.attempt + 1, 10);
    retryAts.set(this, Date.now() + delay);
    this.setState('offline', { retryAt: this.retryAt });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  /** subscribe(filter) asks for the flows matching filter (null: none). */
  subscribe(filter) {
    this.filter = filter;
    this.send(filter ? { type: 'subscribe', filter } : { type: 'unsubscribe' });
  }
}
