// Formatters: numbers as analysts read them. Pure functions, unit-tested in node.

const SI = ['', 'k', 'M', 'G', 'T', 'P'];

function scaled(n, base, units, digits) {
  if (!Number.isFinite(n)) return '–';
  let i = 0;
  let v = Math.abs(n);
  while (v >= base && i < units.length - 1) { v /= base; i++; }
  const s = i === 0 ? String(Math.round(v)) : v.toFixed(v >= 100 ? 0 : digits);
  return (n < 0 ? '-' : '') + s + ' ' + units[i];
}

/** formatBytes: 1536 → "1.5 KiB" (binary units, as storage is counted). */
export function formatBytes(n) {
  return scaled(Number(n), 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'], 1);
}

/** formatBits: a rate in bits per second, decimal units: 1.2e6 → "1.2 Mbit/s". */
export function formatBits(bps) {
  return scaled(Number(bps), 1000, SI.map((p) => p + 'bit/s'), 1);
}

/** formatRate: events per second, decimal: 12500 → "12.5 kpkt/s". */
export function formatRate(n, unit = 'pkt/s') {
  return scaled(Number(n), 1000, SI.map((p) => p + unit), 1);
}

/** formatNumber: 1234567 → "1,234,567". */
export function formatNumber(n) {
  n = Number(n);
  if (!Number.isFinite(n)) return '–';
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** formatPercent: 12.345 → "12.3 %". */
export function formatPercent(p, digits = 1) {
  p = Number(p);
  return Number.isFinite(p) ? p.toFixed(digits) + ' %' : '–';
}

/** formatDuration: milliseconds → "850 ms", "4.2 s", "3m 05s", "2h 04m", "3d 01h". */
export function formatDuration(ms) {
  ms = Number(ms);
  if (!Number.isFinite(ms) || ms < 0) return '–';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(1) + ' s';
  const pad = (x) => String(Math.floor(x)).padStart(2, '0');
  if (s < 3600) return Math.floor(s / 60) + 'm ' + pad(s % 60) + 's';
  if (s < 86400) return Math.floor(s / 3600) + 'h ' + pad((s % 3600) / 60) + 'm';
  return Math.floor(s / 86400) + 'd ' + pad((s % 86400) / 3600) + 'h';
}

/** formatTime: an ISO time → local "HH:MM:SS" (with the date when not today). */
export function formatTime(iso, now = new Date()) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '–';
  const t = [d.getHours(), d.getMinutes(), d.getSeconds()].map((x) => String(x).padStart(2, '0')).join(':');
  if (d.toDateString() === now.toDateString()) return t;
  return d.toISOString().slice(0, 10) + ' ' + t;
}

/** formatAgo: an ISO time → "4 s ago", "never" when empty. */
export function formatAgo(iso, now = Date.now()) {
  if (!iso) return 'never';
  const ms = now - new Date(iso).getTime();
  if (!Number.isFinite(ms)) return 'never';
  return ms < 1000 ? 'just now' : formatDuration(ms) + ' ago';
}

/** endpoint: "10.0.0.1:443", "[2001:db8::1]:443", or the address alone without a port. */
export function endpoint(ip, port, protocolName) {
  const ported = ['tcp', 'udp', 'sctp', 'udplite', 'dccp'].includes(protocolName);
  if (!ported) return ip;
  return (ip.includes(':') ? '[' + ip + ']' : ip) + ':' + port;
}

/** asLabel: an address's AS and country, "AS13335 Cloudflare · US"; parts that are
 *  unknown are left out, "" when all are. */
export function asLabel(asn, asName, country) {
  const as = [Number(asn) > 0 ? 'AS' + Number(asn) : '', asName || ''].filter(Boolean).join(' ');
  return [as, country || ''].filter(Boolean).join(' · ');
}

/** hostHash: the route of an address's host view, "#/host?ip=10.1.2.3". */
export function hostHash(ip) {
  return '#/host?' + new URLSearchParams({ ip }).toString();
}

/** hostPath: GET /api/v1/hosts/{ip} relative to the API base. Colons stay as they
 *  are (a path segment may hold them; an escaped one would reach the server as
 *  "%3A"), anything else is escaped. */
export function hostPath(ip) {
  return 'hosts/' + encodeURIComponent(ip).replace(/%3A/gi, ':');
}

/** shareOf: part of total as a percentage (0 when total is 0). */
export function shareOf(part, total) {
  part = Number(part);
  total = Number(total);
  return total > 0 && Number.isFinite(part) ? (100 * part) / total : 0;
}
