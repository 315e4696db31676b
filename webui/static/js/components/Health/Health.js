// Health: collector status and reasons, metrics grid, performance charts from
// /api/v1/metrics/history (15 min at 5 s), per-sensor table, alert panel.
import { h, replace, setText, frame } from '../../utils/dom.js';
import { formatBits, formatRate, formatBytes, formatNumber, formatPercent, formatAgo, formatTime } from '../../utils/format.js';
import { Series } from '../../services/state.js';
import { Metric, panel, table, badge } from '../Common/widgets.js';
import { lineChart, setSeries } from '../Common/charts.js';

export class Health {
  constructor(root, ctx) {
    this.ctx = ctx;
    this.perf = new Series(180);
    this.status = h('div', { class: 'health-status', id: 'health-status' });
    this.cards = {
      cpu: new Metric('CPU', 'h-cpu'), memory: new Metric('Memory', 'h-memory'), flows: new Metric('Active flows', 'h-flows'),
      pps: new Metric('Ingest', 'h-pps'), bps: new Metric('Bandwidth', 'h-bps'), drops: new Metric('Dropped packets', 'h-drops'),
      errors: new Metric('Capture errors', 'h-errors'),
    };
    this.canvas = h('canvas', { id: 'perf-chart', role: 'img', 'aria-label': 'CPU and memory, last 15 minutes' });
    const st = table(['Sensor', 'Host', 'Interface', 'State', { label: 'Lag', cls: 'num' }, { label: 'Drops', cls: 'num' },
      { label: 'Lost flow updates', cls: 'num' }, { label: 'Lost packets', cls: 'num' }, { label: 'CPU', cls: 'num' }, 'Last batch'], 'sensors-table');
    this.sensors = st.tbody;
    this.alertList = h('ul', { class: 'alerts-list', id: 'alert-list' });
    this.alertHistory = h('ul', { class: 'alerts-list history', id: 'alert-history' });
    root.append(this.status,
      h('div', { class: 'cards' }, Object.values(this.cards).map((c) => c.el)),
      h('div', { class: 'health-grid' },
        panel('Performance · 15 min', 'panel-perf', h('div', { class: 'chart' }, this.canvas)),
        panel('Alerts', 'panel-alerts', h('h3', { text: 'Active' }), this.alertList, h('h3', { text: 'Recent' }), this.alertHistory)),
      panel('Sensors', 'panel-sensors', h('div', { class: 'table-wrap' }, st.table)));
    this.redraw = frame(() => this.chart && setSeries(this.chart, this.perf, (t) => new Date(t).toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit' })));
    ctx.live.on('metrics', (m) => this.onMetrics(m));
    ctx.live.on('sensors', (d) => this.renderSensors(d.sensors || []));
    ctx.state.on('alerts', () => this.renderAlerts());
    ctx.live.on('open', () => { if (this.visible) this.refresh(); });
  }

  show() {
    this.visible = true;
    this.renderAlerts();
    if (!this.chart && window.Chart) {
      this.chart = lineChart(this.canvas, { left: { label: 'CPU %', unit: 'percent' }, right: { label: 'memory', unit: 'bytes' } });
    }
    this.refresh();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.refresh(), 15000);
  }

  hide() {
    this.visible = false;
    clearInterval(this.timer);
  }

  async refresh() {
    try {
      const [health, hist, sensors] = await Promise.all([this.ctx.api.health(), this.ctx.api.history('15m', '5s'), this.ctx.api.sensors()]);
      this.renderHealth(health);
      this.perf.clear();
      for (const m of hist.metrics || []) this.perf.push(Date.parse(m.timestamp), m.cpuUsage, m.memoryUsage);
      this.redraw();
      this.renderSensors(sensors.sensors || []);
    } catch (e) {
      this.ctx.toast(e.message);
    }
  }

  renderHealth(hl) {
    const level = hl.status === 'healthy' ? 'ok' : hl.status === 'degraded' ? 'warn' : 'err';
    replace(this.status, badge(level, (hl.status || 'unknown').toUpperCase()),
      h('span', { class: 'muted', text: ` collector ${hl.version || ''} · ${hl.sensors_connected || 0} sensor(s) connected · ${hl.sensors_stale || 0} stale` }),
      (hl.reasons || []).length ? h('ul', { class: 'reasons' }, hl.reasons.map((r) => h('li', { text: r }))) : null);
  }

  onMetrics(m) {
    this.cards.cpu.set(formatPercent(m.cpuUsage), 'collector + sensors', m.cpuUsage > 80 ? 'warn' : '');
    this.cards.memory.set(formatBytes(m.memoryUsage), 'resident');
    this.cards.flows.set(formatNumber(m.activeFlows), 'stored');
    this.cards.pps.set(formatRate(m.packetsPerSecond), 'packets per second');
    this.cards.bps.set(formatBits(m.bytesPerSecond * 8), '');
    this.cards.drops.set(formatNumber(m.droppedPackets), m.droppedPackets ? '✖ capture degraded' : '✔ none', m.droppedPackets ? 'err' : 'ok');
    this.cards.errors.set(formatNumber(m.captureErrors), m.captureErrors ? '⚠ decode errors' : '✔ none', m.captureErrors ? 'warn' : 'ok');
    if (this.visible) {
      const t = Date.parse(m.timestamp);
      const last = this.perf.points[this.perf.points.length - 1];
      if (!last || t - last[0] >= 5000) {
        this.perf.push(t, m.cpuUsage, m.memoryUsage);
        this.perf.trim(t - 15 * 60000);
        this.redraw();
      }
    }
  }

  renderSensors(list) {
    const rows = list.map((s) => {
      const state = !s.connected ? badge('err', 'disconnected') : s.stale ? badge('warn', 'stale') : badge('ok', 'connected');
      const lossy = s.lostFlows > 0 || s.lostPackets > 0 || s.kernelDrops > 0;
      const m = s.metrics || {};
      return h('tr', { class: lossy ? 'lossy' : '', dataset: { sensor: s.sensorId } },
        h('td', { class: 'sensor', text: s.sensorId }), h('td', { text: s.hostname || '–' }), h('td', { text: s.interface || '–' }),
        h('td', null, state), h('td', { class: 'num', text: `${formatNumber(s.lagMs)} ms` }),
        h('td', { class: 'num', text: formatNumber(s.kernelDrops) }), h('td', { class: 'num', text: formatNumber(s.lostFlows) }),
        h('td', { class: 'num', text: formatNumber(s.lostPackets) }),
        h('td', { class: 'num', text: m.cpuUsage != null ? formatPercent(m.cpuUsage) : '–' }),
        h('td', { text: formatAgo(s.lastBatchAt), title: s.lastBatchAt || '' }));
    });
    if (!rows.length) rows.push(h('tr', null, h('td', { colspan: 10, class: 'empty', text: '✖ No sensor has connected' })));
    this.sensors.replaceChildren(...rows);
  }

  renderAlerts() {
    const alerts = this.ctx.alerts;
    const item = (a) => h('li', { class: 'alert ' + (a.state === 'cleared' ? 'ok' : a.severity === 'critical' ? 'err' : 'warn'), dataset: { kind: a.kind } },
      h('span', { class: 'icon', 'aria-hidden': 'true', text: a.state === 'cleared' ? '✔' : a.severity === 'critical' ? '✖' : '⚠' }),
      h('span', { class: 'sev', text: a.state === 'cleared' ? 'CLEARED' : a.severity.toUpperCase() }),
      h('span', { class: 'msg', text: a.message }),
      h('time', { text: formatTime(a.state === 'cleared' ? a.ts : a.since) }));
    const active = [...alerts.active.values()];
    replace(this.alertList, active.length ? active.map(item) : h('li', { class: 'alert ok none', text: '✔ No active alerts' }));
    replace(this.alertHistory, alerts.history.slice(0, 20).map(item));
  }
}
