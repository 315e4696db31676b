// Dashboard: system status, live bandwidth (bits/s and packets/s, 5 minutes at 1 s),
// protocol breakdown, top talkers (live; by any end, source, destination, AS or
// country: an address opens its host view, the flow count its flows), and an
// "incomplete data" banner when a sensor reported loss.
import { h, replace, setText, frame } from '../../utils/dom.js';
import { formatBits, formatRate, formatBytes, formatNumber, formatPercent } from '../../utils/format.js';
import { Series } from '../../services/state.js';
import { Metric, panel, table } from '../Common/widgets.js';
import { hostRef } from '../Common/hosts.js';
import { talkerTarget } from './talkers.js';

export { hostSide } from './talkers.js';
import { lineChart, setSeries } from '../Common/charts.js';

const WINDOW_S = 300;
// The stream pushes top talkers by any end; the other rankings are polled.
export const TALKERS_BY = [['any', 'any end'], ['src', 'source'], ['dst', 'destination'], ['asn', 'AS'], ['country', 'country']];
const TALKERS_POLL_MS = 3000;

export class Dashboard {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.series = new Series(WINDOW_S);
    this.banner = h('div', { id: 'incomplete-banner', class: 'banner err', role: 'alert', hidden: true });
    this.cards = {
      bandwidth: new Metric('Bandwidth', 'm-bandwidth'),
      packets: new Metric('Packets', 'm-packets'),
      flows: new Metric('Active flows', 'm-flows'),
      sensors: new Metric('Sensors', 'm-sensors'),
      drops: new Metric('Drops', 'm-drops'),
      cpu: new Metric('CPU', 'm-cpu'),
      memory: new Metric('Memory', 'm-memory'),
    };
    this.canvas = h('canvas', { id: 'bandwidth-chart', 'aria-label': 'Bandwidth, last 5 minutes', role: 'img' });
    this.lastPoint = h('p', { class: 'chart-caption', id: 'bandwidth-last' });
    this.protocols = h('div', { class: 'bars', id: 'protocols' });
    const tt = table(['#', 'Host', { label: 'Bytes', cls: 'num' }, { label: 'Packets', cls: 'num' }, { label: 'Flows', cls: 'num' }, { label: 'Share', cls: 'num' }], 'top-talkers');
    this.talkers = tt.tbody;
    this.talkersTable = tt.table;
    this.talkersHead = tt.table.querySelector('th:nth-child(2)');
    this.by = 'any';
    this.bySelect = h('select', { id: 'talkers-by', 'aria-label': 'Rank top talkers by' }, TALKERS_BY.map(([v, t]) => h('option', { value: v, text: t })));
    this.bySelect.addEventListener('change', () => this.setBy(this.bySelect.value));
    this.talkersHint = h('p', { class: 'hint', text: 'An address opens its host view; the flow count, its flows.' });
    root.append(
      this.banner,
      h('div', { class: 'cards', id: 'system-status' }, Object.values(this.cards).map((c) => c.el)),
      h('div', { class: 'dash-grid' },
        panel('Bandwidth · last 5 min', 'panel-bandwidth', h('div', { class: 'chart' }, this.canvas), this.lastPoint),
        panel('Top talkers · 5 min', 'panel-talkers', h('div', { class: 'panel-tools' }, h('label', null, 'by ', this.bySelect), this.talkersHint),
          h('div', { class: 'table-wrap' }, this.talkersTable)),
        panel('Protocols · 5 min', 'panel-protocols', this.protocols)));
    this.redraw = frame(() => this.drawChart());
    const live = ctx.live;
    live.on('metrics', (m) => this.onMetrics(m));
    live.on('top_talkers', (d) => { if (this.by === 'any') this.renderTalkers(d.top_talkers || [], 'any'); });
    live.on('protocols', (d) => this.renderProtocols(d.protocols || []));
    live.on('sensors', (d) => this.renderSensors(d.sensors || []));
    live.on('open', () => this.resync());
  }

  show() {
    this.visible = true;
    if (!this.chart && window.Chart) {
      this.chart = lineChart(this.canvas, { left: { label: 'bits/s', unit: 'bits' }, right: { label: 'packets/s', unit: 'rate' } });
      this.redraw();
    }
    this.pollTalkers();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.talkersTimer);
  }

  /** setBy changes what the top talkers rank: "any" comes with the stream, the
   *  others from GET /api/v1/top-talkers?by=, polled while the dashboard shows. */
  setBy(by) {
    this.by = by;
    this.bySelect.value = by;
    setText(this.talkersHead, { asn: 'AS', country: 'Country' }[by] || 'Host');
    setText(this.talkersHint, by === 'asn' || by === 'country' ? 'The flow count opens their flows.' : 'An address opens its host view; the flow count, its flows.');
    this.talkers.replaceChildren();
    this.pollTalkers();
  }

  async pollTalkers() {
    clearTimeout(this.talkersTimer);
    if (this.by === 'any' || !this.visible) return;
    const by = this.by;
    try {
      const res = await this.ctx.api.topTalkers(10, '5m', by);
      if (by === this.by) this.renderTalkers(res.top_talkers || [], by);
    } catch (e) {
      if (by === this.by) this.talkers.replaceChildren(h('tr', null, h('td', { colspan: 6, class: 'empty err', id: 'talkers-error', text: `⚠ ${e.message}` })));
    }
    if (by === this.by && this.visible) this.talkersTimer = setTimeout(() => this.pollTalkers(), TALKERS_POLL_MS);
  }

  /** resync refills the chart from the history after each (re)connect; top talkers,
   *  sensors and protocols arrive on the stream itself right after it opens. */
  async resync() {
    try {
      const hist = await this.ctx.api.history('5m', '1s');
      this.series.clear();
      for (const m of hist.metrics || []) this.series.push(Date.parse(m.timestamp), m.bytesPerSecond * 8, m.packetsPerSecond);
      this.redraw();
    } catch (e) {
      this.ctx.toast(e.message);
    }
  }

  onMetrics(m) {
    const t = Date.parse(m.timestamp) || Date.now();
    this.series.push(t, m.bytesPerSecond * 8, m.packetsPerSecond);
    this.series.trim(t - WINDOW_S * 1000);
    this.cards.bandwidth.set(formatBits(m.bytesPerSecond * 8), formatBytes(m.bytesPerSecond) + '/s');
    this.cards.packets.set(formatRate(m.packetsPerSecond), 'packets per second');
    this.cards.flows.set(formatNumber(m.activeFlows), 'in the store');
    this.cards.cpu.set(formatPercent(m.cpuUsage), 'collector + sensors', m.cpuUsage > 80 ? 'warn' : '');
    this.cards.memory.set(formatBytes(m.memoryUsage), 'collector + sensors');
    this.cards.drops.set(formatNumber(m.droppedPackets), m.captureErrors ? `${formatNumber(m.captureErrors)} capture errors` : 'dropped packets', m.droppedPackets > 0 ? 'err' : 'ok');
    setText(this.lastPoint, `now: ${formatBits(m.bytesPerSecond * 8)} · ${formatRate(m.packetsPerSecond)}`);
    this.redraw();
  }

  drawChart() {
    if (!this.chart) return;
    setSeries(this.chart, this.series, (t) => new Date(t).toLocaleTimeString([], { hour12: false }));
  }

  renderSensors(sensors) {
    const connected = sensors.filter((s) => s.connected).length;
    const stale = sensors.filter((s) => s.connected && s.stale).length;
    this.cards.sensors.set(`${connected} / ${sensors.length}`, stale ? `⚠ ${stale} stale` : connected ? '✔ connected' : '✖ none connected',
      !connected ? 'err' : stale ? 'warn' : 'ok');
    const lossy = sensors.filter((s) => s.lostFlows > 0 || s.lostPackets > 0 || s.kernelDrops > 0);
    this.banner.hidden = lossy.length === 0;
    if (lossy.length) {
      replace(this.banner, h('strong', { text: '✖ Incomplete data: ' }),
        lossy.map((s, i) => [i ? '; ' : '', 'sensor ', h('code', { text: s.sensorId }),
          ` reported ${formatNumber(s.kernelDrops)} kernel drops, ${formatNumber(s.lostFlows)} lost flow updates, ${formatNumber(s.lostPackets)} lost packets`]),
        '. Totals in this window are lower than the traffic on the wire.');
    }
  }

  renderTalkers(list, by = this.by) {
    const rows = list.map((t) => {
      const { ip, label, name, filter, title } = talkerTarget(t, by);
      const who = ip ? hostRef(ip, { name })
        : h('span', { class: 'hostref' }, h('span', { class: 'addr', text: label }), name ? [' ', h('span', { class: 'name', title: name, text: name })] : null);
      let flows = formatNumber(t.flowCount);
      if (filter) {
        flows = h('button', { class: 'link flows-of', type: 'button', title, text: flows });
        flows.addEventListener('click', () => this.ctx.navigate('flows', filter));
      }
      return h('tr', { dataset: { host: t.identifier } },
        h('td', { text: t.rank }), h('td', { class: 'who' }, who),
        h('td', { class: 'num', text: formatBytes(t.totalBytes) }), h('td', { class: 'num', text: formatNumber(t.totalPackets) }),
        h('td', { class: 'num' }, flows),
        h('td', { class: 'num', text: formatPercent(t.percentageOfTotal) }));
    });
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 6, class: 'empty', text: 'No traffic in the last 5 minutes' })));
    this.talkers.replaceChildren(...rows);
  }

  renderProtocols(list) {
    const total = list.reduce((s, p) => s + p.bytes, 0) || 1;
    const rows = list.slice(0, 8).map((p) => {
      const pct = (100 * p.bytes) / total;
      const fill = h('span', { class: 'fill' });
      fill.style.width = pct.toFixed(1) + '%';
      return h('div', { class: 'bar' }, h('span', { class: 'name', text: p.name || String(p.protocol) }),
        h('span', { class: 'track' }, fill),
        h('span', { class: 'num', text: `${formatPercent(pct)} · ${formatBytes(p.bytes)} · ${formatNumber(p.flows)} flows` }));
    });
    if (!rows.length) rows.push(h('p', { class: 'empty', text: 'No traffic in the last 5 minutes' }));
    this.protocols.replaceChildren(...rows);
  }
}
