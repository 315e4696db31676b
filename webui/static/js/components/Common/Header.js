// Header: brand, tabs (Ctrl+1/2/3), connection state (icon and word, not colour
// alone) and the active alert count.
import { h, setText } from '../../utils/dom.js';

export const TABS = [
  { route: 'dashboard', label: 'Dashboard', key: '1' },
  { route: 'flows', label: 'Flows', key: '2' },
  { route: 'health', label: 'Health', key: '3' },
];

const STATES = {
  live: { icon: '●', word: 'LIVE', cls: 'ok' },
  reconnecting: { icon: '◌', word: 'RECONNECTING', cls: 'warn' },
  offline: { icon: '✖', word: 'OFFLINE', cls: 'err' },
};

export class Header {
  constructor(root) {
    this.tabs = new Map();
    const nav = h('nav', { class: 'tabs', 'aria-label': 'Views' });
    for (const t of TABS) {
      const a = h('a', { href: '#/' + t.route, id: 'tab-' + t.route, class: 'tab', title: `Ctrl+${t.key}` },
        t.label, h('kbd', { text: '^' + t.key }));
      this.tabs.set(t.route, a);
      nav.append(a);
    }
    this.conn = h('span', { id: 'conn', class: 'conn err', role: 'status', 'aria-live': 'polite' });
    this.connIcon = h('span', { class: 'icon', 'aria-hidden': 'true', text: '✖' });
    this.connWord = h('span', { class: 'word', text: 'OFFLINE' });
    this.connDetail = h('span', { class: 'detail' });
    this.conn.append(this.connIcon, ' ', this.connWord, this.connDetail);
    this.alerts = h('a', { id: 'alert-count', class: 'alerts ok', href: '#/health', title: 'Active alerts' }, '✔ 0 alerts');
    root.append(h('div', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true', text: '▚' }), 'NETWATCH'), nav,
      h('div', { class: 'status' }, this.alerts, this.conn));
  }

  select(route) {
    for (const [r, a] of this.tabs) {
      a.classList.toggle('active', r === route);
      if (r === route) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  setConnection(state, detail) {
    const s = STATES[state] || STATES.offline;
    this.conn.className = 'conn ' + s.cls;
    this.conn.dataset.state = state;
    setText(this.connIcon, s.icon);
    setText(this.connWord, s.word);
    setText(this.connDetail, detail && detail.retryAt ? ` · retry in ${Math.max(0, Math.round((detail.retryAt - Date.now()) / 1000))} s` : '');
  }

  setAlerts(active) {
    const crit = active.filter((a) => a.severity === 'critical').length;
    const n = active.length;
    this.alerts.className = 'alerts ' + (crit ? 'err' : n ? 'warn' : 'ok');
    setText(this.alerts, `${crit ? '✖' : n ? '⚠' : '✔'} ${n} alert${n === 1 ? '' : 's'}`);
  }
}
