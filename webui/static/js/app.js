// Netwatch dashboard entry: wires services and components, hash routes
// (#/dashboard, #/flows?src_ip=…, #/health, #/host?ip=… from any address),
// Ctrl+1/2/3 and "/" for search.
import { h, setText } from './utils/dom.js';
import { Api } from './services/api.js';
import { Live } from './services/live.js';
import { State, Alerts } from './services/state.js';
import { Header, TABS } from './components/Common/Header.js';
import { askToken } from './components/Common/TokenDialog.js';
import { Dashboard } from './components/Dashboard/Dashboard.js';
import { FlowTable } from './components/FlowTable/FlowTable.js';
import { Health } from './components/Health/Health.js';
import { HostView } from './components/Host/HostView.js';

const header = new Header(document.getElementById('header'));
const toastEl = document.getElementById('toast');
let toastTimer;

const ctx = {
  api: new Api({ askToken }),
  live: new Live(),
  state: new State(),
  alerts: new Alerts(),
  toast(msg) {
    setText(toastEl, '⚠ ' + msg);
    toastEl.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toastEl.hidden = true; }, 6000);
  },
  navigate(route, params) {
    const q = params ? new URLSearchParams(params).toString() : '';
    location.hash = '#/' + route + (q ? '?' + q : '');
  },
};

// The host view is a route without a tab (reached from addresses).
const ROUTES = [...TABS, { route: 'host', label: 'Host' }];
const views = {};
for (const t of ROUTES) {
  const el = h('section', { id: 'view-' + t.route, class: 'view', hidden: true, 'aria-label': t.label });
  document.getElementById('main').append(el);
  views[t.route] = { el };
}
views.dashboard.c = new Dashboard(views.dashboard.el, ctx);
views.flows.c = new FlowTable(views.flows.el, ctx);
views.health.c = new Health(views.health.el, ctx);
views.host.c = new HostView(views.host.el, ctx);

let current = null;
function route() {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  const name = views[path] ? path : 'dashboard';
  const params = new URLSearchParams(query || '');
  if (current && current !== name && views[current].c.hide) views[current].c.hide();
  for (const [k, v] of Object.entries(views)) v.el.hidden = k !== name;
  header.select(name);
  current = name;
  document.title = `Netwatch · ${ROUTES.find((t) => t.route === name).label}`;
  views[name].c.show(params);
}
window.addEventListener('hashchange', route);

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey && !e.altKey && !e.shiftKey && ['1', '2', '3'].includes(e.key)) {
    e.preventDefault();
    ctx.navigate(TABS[Number(e.key) - 1].route);
    return;
  }
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement && document.activeElement.tagName);
  if (e.key === '/' && !typing && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    if (current !== 'flows') ctx.navigate('flows');
    setTimeout(() => views.flows.c.focusSearch(), 0);
  }
});

ctx.live.on('state', (s) => header.setConnection(s, { retryAt: ctx.live.retryAt }));
ctx.live.on('alert', (a, msg) => {
  ctx.alerts.apply({ ...a, ts: msg.ts });
  header.setAlerts([...ctx.alerts.active.values()]);
  ctx.state.set('alerts', ctx.alerts.history[0]);
});
ctx.live.on('hello', () => {
  ctx.alerts.reset(); // the collector re-sends the active alerts after hello
  header.setAlerts([]);
});
ctx.live.on('lost', (d) => ctx.toast(`live stream fell behind: ${d.count} updates dropped; resyncing`));
// The countdown to the next reconnect: the live service owns retryAt.
setInterval(() => { if (ctx.live.state === 'offline') header.setConnection('offline', { retryAt: ctx.live.retryAt }); }, 1000);

// The first REST call also triggers the token dialog when the API needs one, before
// the WebSocket (which cannot show a 401 to the page) is opened.
ctx.api.health().catch((e) => ctx.toast(e.message)).finally(() => ctx.live.start());
route();
window.netwatch = { ctx, ready: performance.now() };
