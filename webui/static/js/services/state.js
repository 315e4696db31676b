// Application state: named values with subscribers, and fixed-size time series for
// the charts. Plain classes, no framework; unit-tested in node.

export class State {
  constructor(initial = {}) {
    this.values = { ...initial };
    this.subs = new Map();
  }

  get(key) { return this.values[key]; }

  /** set stores value and tells key's subscribers (only when it changed). */
  set(key, value) {
    if (Object.is(this.values[key], value)) return;
    this.values[key] = value;
    for (const fn of this.subs.get(key) || []) fn(value, key);
  }

  /** on calls fn on every change of key; it returns the unsubscribe function. */
  on(key, fn) {
    if (!this.subs.has(key)) this.subs.set(key, new Set());
    this.subs.get(key).add(fn);
    return () => this.subs.get(key).delete(fn);
  }
}

/** Series keeps the last `size` points [t, ...values], in time order, one per second
 *  slot: a point for a second already held replaces it. */
export class Series {
  constructor(size) {
    this.size = size;
    this.points = [];
  }

  push(t, ...values) {
    const sec = Math.floor(t / 1000);
    const last = this.points[this.points.length - 1];
    if (last && Math.floor(last[0] / 1000) === sec) {
      this.points[this.points.length - 1] = [t, ...values];
      return;
    }
    if (last && t < last[0]) return; // late point: the chart only moves forward
    this.points.push([t, ...values]);
    if (this.points.length > this.size) this.points.splice(0, this.points.length - this.size);
  }

  /** trim drops points older than `olderThan` (ms). */
  trim(olderThan) {
    const i = this.points.findIndex((p) => p[0] >= olderThan);
    this.points = i < 0 ? [] : this.points.slice(i);
  }

  column(i) { return this.points.map((p) => p[i]); }

  clear() { this.points = []; }
}

/** Alerts keeps the active alerts by id and the latest transitions, newest first. */
export class Alerts {
  constructor(historySize = 50) {
    this.active = new Map();
    this.history = [];
    this.historySize = historySize;
  }

  apply(alert) {
    if (alert.state === 'cleared') this.active.delete(alert.id);
    else this.active.set(alert.id, alert);
    this.history.unshift(alert);
    this.history.length = Math.min(this.history.length, this.historySize);
  }

  reset() { this.active.clear(); }
}
