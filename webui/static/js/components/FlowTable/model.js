// The flow table's state without the DOM: filter and time range, sort, paging,
// the rows of the last response merged with live updates, expanded rows, live or
// paused. FlowTable (the view) renders it and turns events into its methods.
import { flowParams, serverFilter } from '../../utils/search.js';

// Flows over this many bytes, or ended by a reset, are highlighted.
export const HOT_BYTES = 10 * 1024 * 1024;
export const SORTABLE = { bytes: 'Bytes', packets: 'Packets', duration: 'Duration', first_seen: 'First seen', last_seen: 'Last seen' };
export const PAGE_SIZES = [25, 50, 100, 250];

export class FlowTableModel {
  constructor() {
    this.filter = {};
    this.range = ''; // minutes back from now ('' = the whole window)
    this.sortBy = 'last_seen';
    this.sortOrder = 'desc';
    this.limit = 50;
    this.offset = 0;
    this.rows = [];
    this.total = 0;
    this.hasMore = false;
    this.expanded = new Set();
    this.live = true;
    this.updates = 0; // live updates received
  }

  /** effectiveFilter: the filter with the time range as time_start (unless set). */
  effectiveFilter(now = Date.now()) {
    const f = { ...this.filter };
    if (this.range && !f.time_start) f.time_start = new Date(now - Number(this.range) * 60000).toISOString();
    return f;
  }

  /** liveFilter: the WebSocket subscription of the current filter. */
  liveFilter(now) {
    return serverFilter(this.effectiveFilter(now));
  }

  /** setFilter starts over on page one with nothing expanded; range undefined keeps it. */
  setFilter(filter, range) {
    this.filter = filter;
    if (range !== undefined) this.range = range;
    this.offset = 0;
    this.expanded.clear();
  }

  /** sort by key: descending first, the same key again flips the order. */
  sort(key) {
    if (!(key in SORTABLE)) throw new Error(`not a sortable column: ${key}`);
    if (this.sortBy === key) this.sortOrder = this.sortOrder === 'desc' ? 'asc' : 'desc';
    else { this.sortBy = key; this.sortOrder = 'desc'; }
    this.offset = 0;
  }

  /** sortState(key): the column's aria-sort value and its label with the arrow. */
  sortState(key) {
    const on = key === this.sortBy;
    const asc = this.sortOrder === 'asc';
    return { aria: on ? (asc ? 'ascending' : 'descending') : 'none', label: SORTABLE[key] + (on ? (asc ? ' ▲' : ' ▼') : '') };
  }

  /** page(dir): one page forward (1) or back (-1), never before the first. */
  page(dir) {
    this.offset = Math.max(0, this.offset + dir * this.limit);
  }

  setLimit(n) {
    this.limit = n;
    this.offset = 0;
  }

  /** params: the REST query of the current state (extra: e.g. format). */
  params(extra, now) {
    return flowParams(this.effectiveFilter(now), { limit: this.limit, offset: this.offset, sortBy: this.sortBy, sortOrder: this.sortOrder, ...extra });
  }

  /** setResponse takes the rows of a /flows response. */
  setResponse(res) {
    this.rows = res.flows || [];
    this.total = res.pagination ? res.pagination.total_count : this.rows.length;
    this.hasMore = res.pagination ? res.pagination.has_more : false;
  }

  /** applyUpdates merges a live "flows" message into the rows shown; it returns
   *  true when some update is about a flow not on the page (refetch to see it). */
  applyUpdates(d) {
    const byKey = new Map(this.rows.map((r, i) => [r.flowKey, i]));
    let outside = Number(d.more) > 0;
    for (const f of d.flows || []) {
      const i = byKey.get(f.flowKey);
      if (i === undefined) outside = true;
      else this.rows[i] = f;
    }
    this.updates += (d.flows || []).length + Number(d.more || 0);
    return outside;
  }

  /** toggle expands or collapses the row of flow key. */
  toggle(key) {
    if (this.expanded.has(key)) this.expanded.delete(key);
    else this.expanded.add(key);
  }

  isOpen(key) {
    return this.expanded.has(key);
  }

  /** marks: how a row is highlighted. */
  static marks(f) {
    return { hot: f.bytes >= HOT_BYTES, rst: f.endReason === 'rst' };
  }

  /** pager: the numbers the pager shows. */
  pager() {
    const total = this.total || 0;
    return {
      total,
      from: total ? this.offset + 1 : 0,
      to: total ? this.offset + this.rows.length : 0,
      prevDisabled: this.offset === 0,
      nextDisabled: !this.hasMore,
    };
  }
}
