// Flows: the search syntax, filter controls, server-side sort and paging,
// row detail, live updates (subscription) or paused, CSV export of the filter.
// An address links to its host view; an application or server name cell adds
// itself to the filter.
// The view: it renders a FlowTableModel (model.js, the state) and turns events
// into the model's methods; the rows share one delegated click listener on the
// table body (a keyboard Enter or Space on a row's expander button is a click).
import { h, setText, frame } from '../../utils/dom.js';
import { formatBytes, formatNumber, formatDuration, formatTime, endpoint } from '../../utils/format.js';
import { parseSearch, formatSearch, checkValue, normalize, HELP, APPLICATIONS, QFIELDS } from '../../utils/search.js';
import { hostRef } from '../Common/hosts.js';
import { getToken } from '../../services/api.js';
import { flowDetail } from './FlowDetail.js';
import { FlowTableModel, HOT_BYTES, SORTABLE, PAGE_SIZES } from './model.js';

export { HOT_BYTES };
const RANGES = [['', 'All (60 min)'], ['5', 'Last 5 min'], ['15', 'Last 15 min'], ['30', 'Last 30 min']];
const REFETCH_MS = 2000;
const CONTROLS = ['src_ip', 'dst_ip', 'protocol', 'port', 'application', 'server_name', 'host', 'sensor', 'status'];
export const COLUMNS = 13;

export class FlowTable {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.model = new FlowTableModel();
    this.lastFetch = 0;
    this.dirty = false;

    this.search = h('input', {
      id: 'search', type: 'search', class: 'search', spellcheck: 'false', autocomplete: 'off',
      placeholder: 'src_ip:192.168.1.0/24 protocol:tcp port:443 application:tls', 'aria-label': 'Search flows (field:value terms)',
      'aria-describedby': 'search-help',
    });
    this.searchError = h('p', { id: 'search-error', class: 'error-text', role: 'alert' });
    const form = h('form', { class: 'searchbar', id: 'search-form' }, h('span', { class: 'prompt', 'aria-hidden': 'true', text: '>' }), this.search,
      h('button', { type: 'submit', class: 'btn primary', text: 'Search' }));
    form.addEventListener('submit', (e) => { e.preventDefault(); this.applySearch(); });
    const help = h('details', { class: 'search-help', id: 'search-help' }, h('summary', { text: 'Search terms' }),
      h('dl', null, HELP.map(([f, ex, what]) => [h('dt', null, h('code', { text: `${f}:${ex}` })), h('dd', { text: what })])));

    const input = (id, label, placeholder) => h('label', null, label, h('input', { id, placeholder, spellcheck: 'false', autocomplete: 'off' }));
    const select = (id, label, opts) => h('label', null, label, h('select', { id }, opts.map(([v, t]) => h('option', { value: v, text: t }))));
    this.controls = h('form', { class: 'filters', id: 'filters' },
      input('f-src_ip', 'Source', '10.0.0.0/8'),
      input('f-dst_ip', 'Destination', 'CIDR or IP'),
      select('f-protocol', 'Protocol', [['', 'any'], ['tcp', 'tcp'], ['udp', 'udp'], ['icmp', 'icmp'], ['icmpv6', 'icmpv6'], ['sctp', 'sctp'], ['gre', 'gre']]),
      input('f-port', 'Port', '443'),
      h('label', null, 'Application', h('input', { id: 'f-application', list: 'applications', placeholder: 'tls', spellcheck: 'false', autocomplete: 'off' })),
      h('datalist', { id: 'applications' }, APPLICATIONS.map((a) => h('option', { value: a }))),
      input('f-server_name', 'Server name', 'example.com'),
      input('f-host', 'Host name', 'example.com'),
      select('f-range', 'Time', RANGES),
      input('f-sensor', 'Sensor', 'sensor id'),
      select('f-status', 'Status', [['', 'any'], ['active', 'active'], ['idle', 'idle'], ['closed', 'closed']]),
      h('button', { type: 'submit', class: 'btn', text: 'Apply' }),
      h('button', { type: 'button', class: 'btn', id: 'f-clear', text: 'Clear', onclick: () => this.setFilter({}, '') }));
    this.controls.addEventListener('submit', (e) => { e.preventDefault(); this.applyControls(); });
    this.controls.addEventListener('change', (e) => { if (e.target.tagName === 'SELECT') this.applyControls(); });

    this.liveBtn = h('button', { type: 'button', class: 'btn', id: 'live-toggle', 'aria-pressed': 'true', onclick: () => this.setLive(!this.model.live) });
    this.csv = h('a', { class: 'btn', id: 'csv-export', download: 'flows.csv', text: '↓ CSV' });
    this.csv.addEventListener('click', (e) => this.exportCSV(e));
    this.count = h('span', { id: 'flow-count', class: 'count' });
    this.updatesEl = h('span', { id: 'live-updates', class: 'muted' });

    const head = h('tr', null, h('th', { class: 'expand', scope: 'col' }, h('span', { class: 'sr', text: 'Details' })));
    this.sortHeads = {};
    const col = (label, key, cls) => {
      if (!key) return h('th', { scope: 'col', class: cls, text: label });
      const b = h('button', { type: 'button', class: 'sort', dataset: { sort: key }, text: label });
      b.addEventListener('click', () => this.sort(key));
      const th = h('th', { scope: 'col', class: cls, 'aria-sort': 'none' }, b);
      this.sortHeads[key] = th;
      return th;
    };
    head.append(col('Source'), col('Destination'), col('Proto'), col('App'), col('Server name'), col('Bytes', 'bytes', 'num'), col('Packets', 'packets', 'num'),
      col('Duration', 'duration', 'num'), col('First seen', 'first_seen'), col('Last seen', 'last_seen'), col('Status'), col('Sensor'));
    this.tbody = h('tbody');
    this.tbody.addEventListener('click', (e) => this.onRowClick(e));
    this.table = h('table', { class: 'grid flows', id: 'flows-table' }, h('thead', null, head), this.tbody);

    this.prev = h('button', { type: 'button', class: 'btn', id: 'page-prev', text: '◀ Prev', onclick: () => this.page(-1) });
    this.next = h('button', { type: 'button', class: 'btn', id: 'page-next', text: 'Next ▶', onclick: () => this.page(1) });
    this.pageInfo = h('span', { id: 'page-info' });
    const size = h('select', { id: 'page-size', 'aria-label': 'Rows per page' }, PAGE_SIZES.map((n) => h('option', { value: n, text: `${n} rows`, selected: n === this.model.limit })));
    size.addEventListener('change', () => { this.model.setLimit(Number(size.value)); this.fetch(); });

    root.append(form, this.searchError, help, this.controls,
      h('div', { class: 'toolbar' }, this.liveBtn, this.csv, this.count, this.updatesEl),
      h('div', { class: 'table-wrap' }, this.table),
      h('div', { class: 'pager' }, this.prev, this.pageInfo, this.next, size));

    this.render = frame(() => this.renderRows());
    ctx.live.on('flows', (d) => this.onFlows(d));
    ctx.live.on('lost', () => { this.dirty = true; this.scheduleRefetch(); });
    ctx.live.on('open', () => { if (this.visible) this.fetch(); });
    ctx.live.on('error', (d) => { if (d.field) this.showError(`live filter: ${d.message}`); });
    this.setLive(true, true);
  }

  /** show is called when the tab is selected, with the route's parameters. */
  show(params) {
    this.visible = true;
    if (params && [...params.keys()].length) {
      const filter = {};
      for (const [k, v] of params) if (!checkValue(k, v)) filter[k] = normalize(k, v);
      this.setFilter(filter, '');
      return;
    }
    this.subscribe();
    this.fetch();
  }

  hide() {
    this.visible = false;
    this.ctx.live.subscribe(null);
  }

  focusSearch() {
    this.search.focus();
    this.search.select();
  }

  setFilter(filter, range) {
    const m = this.model;
    m.setFilter(filter, range);
    this.search.value = formatSearch(filter);
    this.showError('');
    for (const k of CONTROLS) {
      const el = this.controls.querySelector('#f-' + k);
      el.value = filter[k] || '';
    }
    this.controls.querySelector('#f-range').value = m.range;
    this.subscribe();
    this.fetch();
  }

  applySearch() {
    const { filter, errors } = parseSearch(this.search.value);
    if (errors.length) {
      this.showError(errors.join('; '));
      return;
    }
    this.setFilter(filter);
  }

  applyControls() {
    const filter = {};
    const errors = [];
    for (const k of CONTROLS) {
      const v = this.controls.querySelector('#f-' + k).value.trim();
      if (!v) continue;
      const why = checkValue(k, v);
      if (why) errors.push(why);
      else filter[k] = normalize(k, v);
    }
    // Terms only the search box sets (community_id, asn, country) stay.
    for (const k of QFIELDS) if (!CONTROLS.includes(k) && this.model.filter[k]) filter[k] = this.model.filter[k];
    if (errors.length) {
      this.showError(errors.join('; '));
      return;
    }
    this.setFilter(filter, this.controls.querySelector('#f-range').value);
  }

  showError(msg) {
    setText(this.searchError, msg ? '⚠ ' + msg : '');
  }

  sort(key) {
    this.model.sort(key);
    this.fetch();
  }

  page(dir) {
    this.model.page(dir);
    this.fetch();
  }

  setLive(on, quiet) {
    this.model.live = on;
    this.liveBtn.setAttribute('aria-pressed', String(on));
    setText(this.liveBtn, on ? '● Live' : '❚❚ Paused');
    this.liveBtn.classList.toggle('on', on);
    if (!quiet) {
      this.subscribe();
      if (on) this.fetch();
    }
  }

  subscribe() {
    if (!this.visible) return;
    this.ctx.live.subscribe(this.model.live ? this.model.liveFilter() : null);
  }

  async fetch() {
    const seq = (this.seq = (this.seq || 0) + 1);
    this.lastFetch = Date.now();
    this.dirty = false;
    this.updateCSV();
    try {
      const res = await this.ctx.api.flows(this.model.params());
      if (seq !== this.seq) return;
      this.model.setResponse(res);
      this.render();
    } catch (e) {
      if (seq !== this.seq) return;
      this.showError(e.parameter ? `${e.message}` : `cannot load flows: ${e.message}`);
    }
  }

  updateCSV() {
    const p = this.model.params({ format: 'csv' });
    p.delete('limit');
    p.delete('offset');
    this.csv.href = this.ctx.api.url('flows', p);
  }

  /** exportCSV: with a token the download needs the Authorization header. */
  async exportCSV(e) {
    if (!getToken()) return;
    e.preventDefault();
    const text = await this.ctx.api.text('flows', new URLSearchParams(new URL(this.csv.href, location.href).search));
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    const a = h('a', { href: url, download: 'flows.csv' });
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  onFlows(d) {
    if (!this.model.live || !this.visible) return;
    const outside = this.model.applyUpdates(d);
    setText(this.updatesEl, `${formatNumber(this.model.updates)} live updates`);
    this.render();
    if (outside) {
      this.dirty = true;
      this.scheduleRefetch();
    }
  }

  scheduleRefetch() {
    if (this.refetchTimer || !this.model.live) return;
    const wait = Math.max(0, REFETCH_MS - (Date.now() - this.lastFetch));
    this.refetchTimer = setTimeout(() => {
      this.refetchTimer = null;
      if (this.dirty && this.visible && this.model.live) this.fetch();
    }, wait);
  }

  /** onRowClick: the table body's one click listener; a click anywhere in a flow
   *  row (its expander button included) opens or closes its detail, except on a
   *  link (an address: its host view) or a filter cell (adds its term). */
  onRowClick(e) {
    const by = e.target.closest('[data-filter]');
    if (by && this.tbody.contains(by)) {
      this.filterBy(by.dataset.filter, by.dataset.value);
      return;
    }
    const copy = e.target.closest('[data-copy]');
    if (copy && this.tbody.contains(copy)) {
      this.copy(copy);
      return;
    }
    if (e.target.closest('a')) return;
    const tr = e.target.closest('tr.flow');
    if (!tr || !this.tbody.contains(tr)) return;
    this.model.toggle(tr.dataset.key);
    this.renderRows();
  }

  /** copy puts a button's data-copy on the clipboard; where the page may not (an
   *  insecure origin), it selects the text next to the button for Ctrl+C. */
  async copy(btn) {
    const text = btn.dataset.copy;
    try {
      await navigator.clipboard.writeText(text);
      setText(btn, 'copied');
    } catch {
      const code = btn.parentElement.querySelector('code');
      if (code) getSelection().selectAllChildren(code);
      setText(btn, 'Ctrl+C');
    }
    setTimeout(() => setText(btn, 'copy'), 1500);
  }

  /** filterBy adds field:value to the current filter (replacing the field's term). */
  filterBy(field, value) {
    if (checkValue(field, value)) return;
    this.setFilter({ ...this.model.filter, [field]: normalize(field, value) });
  }

  renderRows() {
    const m = this.model;
    for (const [key, th] of Object.entries(this.sortHeads)) {
      const { aria, label } = m.sortState(key);
      th.setAttribute('aria-sort', aria);
      setText(th.firstChild, label);
    }
    const frag = [];
    for (const f of m.rows) {
      const open = m.isOpen(f.flowKey);
      const { hot, rst } = FlowTableModel.marks(f);
      const toggle = h('button', { type: 'button', class: 'expander', 'aria-expanded': String(open), 'aria-label': 'Details', text: open ? '▾' : '▸' });
      frag.push(h('tr', { class: ['flow', hot ? 'hot' : '', rst ? 'rst' : '', open ? 'open' : ''].join(' ').trim(), dataset: { key: f.flowKey } },
        h('td', { class: 'expand' }, toggle),
        h('td', { class: 'src' }, hostRef(f.srcIP, { text: endpoint(f.srcIP, f.srcPort, f.protocolName), name: f.srcName })),
        h('td', { class: 'dst' }, hostRef(f.dstIP, { text: endpoint(f.dstIP, f.dstPort, f.protocolName), name: f.dstName })),
        h('td', { text: f.protocolName || f.protocol }),
        h('td', { class: 'app' }, filterCell('application', f.application)),
        h('td', { class: 'server' }, filterCell('server_name', f.serverName)),
        h('td', { class: 'num' }, hot ? h('span', { class: 'flag warn', title: `over ${formatBytes(HOT_BYTES)}`, text: '▲ ' }) : null, formatBytes(f.bytes)),
        h('td', { class: 'num', text: formatNumber(f.packets) }),
        h('td', { class: 'num', text: formatDuration(f.duration) }),
        h('td', { text: formatTime(f.firstSeen) }),
        h('td', { text: formatTime(f.lastSeen) }),
        h('td', null, f.status || '–', rst ? h('span', { class: 'flag err', text: ' ✖ RST' }) : null),
        h('td', { class: 'sensor', text: f.sensorId })));
      if (open) frag.push(h('tr', { class: 'detail', dataset: { key: f.flowKey } }, h('td', { colspan: COLUMNS }, flowDetail(f))));
    }
    if (!m.rows.length) frag.push(h('tr', null, h('td', { colspan: COLUMNS, class: 'empty', id: 'no-flows', text: 'No flows match criteria' })));
    this.tbody.replaceChildren(...frag);
    const p = m.pager();
    setText(this.count, `${formatNumber(p.total)} flow${p.total === 1 ? '' : 's'}`);
    setText(this.pageInfo, p.total ? `${formatNumber(p.from)}–${formatNumber(p.to)} of ${formatNumber(p.total)}` : '0 of 0');
    this.prev.disabled = p.prevDisabled;
    this.next.disabled = p.nextDisabled;
  }
}

/** filterCell: a value that filters the table by itself when clicked; "–" when empty. */
function filterCell(field, value) {
  if (!value) return h('span', { class: 'muted', text: '–' });
  return h('button', { type: 'button', class: 'link filter', title: `Only flows with ${field}:${value}`, dataset: { filter: field, value }, text: value });
}
