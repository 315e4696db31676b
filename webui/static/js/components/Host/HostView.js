// Host view (#/host?ip=…&duration=…), reached from any address: the host's names,
// AS and country, its totals over the window, its traffic per bucket (chart), its
// peers (each a link to its own host view), services and applications. Refreshed
// every few seconds while shown; an API error is shown as the collector's message.
import { h, setText, replace } from '../../utils/dom.js';
import { formatBytes, formatNumber, formatPercent, shareOf, asLabel } from '../../utils/format.js';
import { Metric, panel, table } from '../Common/widgets.js';
import { hostRef } from '../Common/hosts.js';
import { lineChart } from '../Common/charts.js';
import { DURATIONS, hostParams, summary, serviceLabel, chartData } from './model.js';

const REFRESH_MS = 5000;

export class HostView {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.root = root;
    this.ipEl = h('span', { id: 'host-ip', class: 'addr host-ip' });
    this.nameEl = h('span', { id: 'host-name', class: 'name' });
    this.otherNames = h('p', { id: 'host-names', class: 'muted' });
    this.asEl = h('p', { id: 'host-as', class: 'asinfo' });
    this.duration = h('select', { id: 'host-duration', 'aria-label': 'Window' }, DURATIONS.map((d) => h('option', { value: d, text: `last ${d.replace('m', ' min')}` })));
    this.duration.addEventListener('change', () => this.ctx.navigate('host', { ip: this.ip, duration: this.duration.value }));
    this.asSrc = h('a', { class: 'btn', id: 'host-flows-src', text: 'Flows it initiated' });
    this.asDst = h('a', { class: 'btn', id: 'host-flows-dst', text: 'Flows it answered' });
    this.error = h('p', { id: 'host-error', class: 'banner err', role: 'alert', hidden: true });
    this.updated = h('span', { id: 'host-updated', class: 'muted' });
    this.cards = {
      bytes: new Metric('Bytes', 'host-bytes'),
      packets: new Metric('Packets', 'host-packets'),
      flows: new Metric('Flows', 'host-flows'),
      initiated: new Metric('Initiated', 'host-initiated'),
    };
    this.canvas = h('canvas', { id: 'host-chart', role: 'img', 'aria-label': 'Host traffic per bucket' });
    const peers = table(['Peer', 'AS · country', { label: 'Bytes', cls: 'num' }, { label: 'Packets', cls: 'num' }, { label: 'Flows', cls: 'num' }], 'host-peers');
    const services = table(['Service', 'Application', 'Role', { label: 'Bytes', cls: 'num' }, { label: 'Flows', cls: 'num' }], 'host-services');
    const apps = table(['Application', { label: 'Bytes', cls: 'num' }, { label: 'Flows', cls: 'num' }, { label: 'Share', cls: 'num' }], 'host-apps');
    this.peers = peers.tbody;
    this.services = services.tbody;
    this.apps = apps.tbody;
    // The numbers, chart and tables show once the host has answered.
    this.body = h('div', { class: 'view-body', id: 'host-body', hidden: true },
      h('div', { class: 'cards', id: 'host-cards' }, Object.values(this.cards).map((c) => c.el)),
      panel('Traffic per bucket', 'panel-host-chart', h('div', { class: 'chart short' }, this.canvas)),
      h('div', { class: 'host-grid' },
        panel('Peers', 'panel-host-peers', h('div', { class: 'table-wrap' }, peers.table)),
        panel('Services', 'panel-host-services', h('p', { class: 'hint', text: 'Responder ports of its flows: its own (served) and the ones it used.' }), h('div', { class: 'table-wrap' }, services.table)),
        panel('Applications', 'panel-host-apps', h('div', { class: 'table-wrap' }, apps.table))));
    root.append(
      h('section', { class: 'panel host-head', id: 'host-summary' },
        h('h2', { text: 'Host' }),
        h('div', { class: 'host-title' }, this.ipEl, ' ', this.nameEl),
        this.otherNames, this.asEl,
        h('div', { class: 'toolbar' }, h('label', { class: 'muted' }, 'window ', this.duration), this.asSrc, this.asDst, this.updated)),
      this.error, this.body);
  }

  show(params) {
    this.visible = true;
    const { ip, duration } = hostParams(params);
    if (ip !== this.ip || duration !== this.windowLen) this.clear();
    this.ip = ip;
    this.windowLen = duration;
    this.duration.value = duration;
    setText(this.ipEl, ip || '–');
    document.title = `Netwatch · Host ${ip}`;
    this.asSrc.href = '#/flows?' + new URLSearchParams({ src_ip: ip });
    this.asDst.href = '#/flows?' + new URLSearchParams({ dst_ip: ip });
    if (!this.chart && window.Chart) {
      this.chart = lineChart(this.canvas, { left: { label: 'bytes', unit: 'bytes' }, right: { label: 'packets', unit: 'count' } });
    }
    this.load();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.timer);
  }

  clear() {
    delete this.root.dataset.loaded;
    this.body.hidden = true;
    for (const c of Object.values(this.cards)) c.set('–');
    for (const tb of [this.peers, this.services, this.apps]) tb.replaceChildren();
    setText(this.nameEl, '');
    setText(this.otherNames, '');
    setText(this.asEl, '');
    setText(this.updated, '');
    this.showError('');
    if (this.chart) {
      this.chart.data.labels = [];
      this.chart.data.datasets.forEach((d) => { d.data = []; });
      this.chart.update('none');
    }
  }

  showError(msg) {
    this.error.hidden = !msg;
    setText(this.error, msg ? '✖ ' + msg : '');
  }

  async load() {
    clearTimeout(this.timer);
    const seq = (this.seq = (this.seq || 0) + 1);
    const { ip, windowLen } = this;
    if (!ip) {
      this.showError('no address: open a host as #/host?ip=ADDRESS');
      return;
    }
    try {
      const res = await this.ctx.api.host(ip, windowLen);
      if (seq !== this.seq) return;
      this.showError('');
      this.render(res);
    } catch (e) {
      if (seq !== this.seq) return;
      this.showError(e.message);
    }
    if (this.visible && seq === this.seq) this.timer = setTimeout(() => this.load(), REFRESH_MS);
  }

  render(res) {
    const s = summary(res);
    setText(this.ipEl, res.ip || this.ip);
    setText(this.nameEl, s.name);
    this.nameEl.title = s.name;
    setText(this.otherNames, s.others.length ? 'also: ' + s.others.join(', ') : '');
    setText(this.asEl, s.as);
    setText(this.updated, `window ${res.time_window || this.windowLen}, updated ${new Date(res.generated_at || Date.now()).toLocaleTimeString([], { hour12: false })}`);
    this.cards.bytes.set(formatBytes(res.bytes), formatNumber(res.bytes) + ' bytes, both directions');
    this.cards.packets.set(formatNumber(res.packets), 'both directions');
    this.cards.flows.set(formatNumber(res.flowCount), 'with traffic in the window');
    this.cards.initiated.set(formatNumber(res.flowsInitiated), `of ${formatNumber(res.flowCount)} flows it started`);

    if (this.chart) {
      const d = chartData(res.series);
      this.chart.data.labels = d.labels;
      this.chart.data.datasets[0].data = d.bytes;
      this.chart.data.datasets[1].data = d.packets;
      this.chart.update('none');
    }

    const empty = (n, text) => h('tr', null, h('td', { colspan: n, class: 'empty', text }));
    const peers = (res.peers || []).map((p) => h('tr', { dataset: { peer: p.ip } },
      h('td', null, hostRef(p.ip, { name: p.name })),
      h('td', { class: 'asinfo', text: asLabel(p.asn, p.asName, p.country) || '–' }),
      h('td', { class: 'num', text: formatBytes(p.bytes) }), h('td', { class: 'num', text: formatNumber(p.packets) }),
      h('td', { class: 'num', text: formatNumber(p.flows) })));
    replace(this.peers, peers.length ? peers : empty(5, 'No peers in the window'));
    const services = (res.services || []).map((v) => h('tr', { dataset: { service: serviceLabel(v) } },
      h('td', { class: 'addr', text: serviceLabel(v) }), h('td', { text: v.application || '–' }),
      h('td', { class: v.served ? 'ok' : 'muted', text: v.served ? '● served' : '○ used' }),
      h('td', { class: 'num', text: formatBytes(v.bytes) }), h('td', { class: 'num', text: formatNumber(v.flows) })));
    replace(this.services, services.length ? services : empty(5, 'No services in the window'));
    const apps = (res.applications || []).map((a) => h('tr', { dataset: { app: a.application || '' } },
      h('td', { text: a.application || '(unknown)' }), h('td', { class: 'num', text: formatBytes(a.bytes) }),
      h('td', { class: 'num', text: formatNumber(a.flows) }), h('td', { class: 'num', text: formatPercent(shareOf(a.bytes, res.bytes)) })));
    replace(this.apps, apps.length ? apps : empty(4, 'No applications in the window'));
    this.body.hidden = false;
    this.root.dataset.loaded = res.ip || this.ip;
  }
}
