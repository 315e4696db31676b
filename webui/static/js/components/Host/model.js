// The host view without the DOM: what GET /api/v1/hosts/{ip} says, as shown.
import { asLabel } from '../../utils/format.js';

export const DURATIONS = ['5m', '15m', '30m', '60m'];

/** hostParams reads the route #/host?ip=…&duration=…: the address (trimmed; the
 *  collector validates it) and a window of DURATIONS (default 5m). */
export function hostParams(params) {
  const ip = String((params && params.get('ip')) || '').trim();
  const d = params && params.get('duration');
  return { ip, duration: DURATIONS.includes(d) ? d : '5m' };
}

/** summary: the names line and the AS · country line of a host. */
export function summary(res) {
  const names = (res.names || []).filter(Boolean);
  return { name: names[0] || '', others: names.slice(1), as: asLabel(res.asn, res.asName, res.country) };
}

/** serviceLabel: "tcp/443", "icmp" for a portless protocol. */
export function serviceLabel(s) {
  const proto = s.protocolName || String(s.protocol ?? '?');
  return s.port ? `${proto}/${s.port}` : proto;
}

/** chartData: the series as chart labels (local time) and two columns. */
export function chartData(series, labelOf = (t) => new Date(t).toLocaleTimeString([], { hour12: false })) {
  const pts = (series || []).filter((p) => p && !Number.isNaN(Date.parse(p.timestamp)));
  return {
    labels: pts.map((p) => labelOf(Date.parse(p.timestamp))),
    bytes: pts.map((p) => Number(p.bytes) || 0),
    packets: pts.map((p) => Number(p.packets) || 0),
  };
}
