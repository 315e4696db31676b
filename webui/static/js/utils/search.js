// The flow search syntax: space-separated field:value terms, e.g.
// "src_ip:192.168.1.0/24 protocol:tcp port:443 application:tls". The collector
// parses the same syntax (GET /api/v1/flows?q=); this parser validates as the user
// types and keeps the filter controls in step with the search box.

// QFIELDS travel to the collector as terms of q: the WebSocket subscription takes
// only the older fields as keys (and q), and q means the same to REST.
export const QFIELDS = ['community_id', 'application', 'server_name', 'host', 'asn', 'country'];
export const FIELDS = ['src_ip', 'dst_ip', 'protocol', 'port', 'time_start', 'time_end', 'sensor', 'status', ...QFIELDS];

/** HELP: one line per search term, for the help under the search box. */
export const HELP = [
  ['src_ip', '192.168.1.0/24', 'initiator address or CIDR'],
  ['dst_ip', '2001:db8::/32', 'responder address or CIDR'],
  ['protocol', 'tcp', 'name or number'],
  ['port', '443', 'either side'],
  ['time_start', '2026-12-02T10:00:00Z', 'flows overlapping [time_start, time_end]'],
  ['time_end', '2026-12-02T11:00:00Z', ''],
  ['sensor', 'edge-1', 'sensor id'],
  ['status', 'active', 'active, idle or closed'],
  ['community_id', '1:LQU9qZlK+B5F3KDmev6m5PMibrg=', 'Community ID v1 of a flow'],
  ['application', 'tls', 'application label (tls, http, dns, ssh, quic, …)'],
  ['server_name', 'example.com', 'TLS SNI or HTTP Host: the name or a parent domain'],
  ['host', 'example.com', 'an end whose DNS name is this or under it'],
  ['asn', '13335', 'an end in this autonomous system'],
  ['country', 'US', 'an end in this country (ISO 3166 code)'],
];

/** APPLICATIONS: the labels the sensor gives (suggestions; the collector validates). */
export const APPLICATIONS = ['tls', 'http', 'dns', 'ssh', 'quic', 'ntp', 'dhcp', 'snmp', 'smb', 'rdp', 'ldap', 'smtp', 'imap', 'pop3', 'ftp',
  'telnet', 'syslog', 'mysql', 'postgresql', 'redis', 'mdns', 'netbios', 'bgp', 'kerberos', 'sip', 'ipsec', 'openvpn', 'wireguard'];
const STATUSES = ['active', 'idle', 'closed'];
const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'gre', 'esp', 'ah', 'igmp', 'udplite', 'dccp', 'ospf', 'pim', 'vrrp', 'l2tp', 'ipip', 'ipv6'];

const HOSTNAME = /^\.?[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?$/;
const COMMUNITY_ID = /^1:[A-Za-z0-9+/]{27}=$/;

const V4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;

/** isIP: an IPv4 or IPv6 address (syntax only; the server has the last word). */
export function isIP(s) {
  if (V4.test(s)) return true;
  if (!s.includes(':') || !/^[0-9a-fA-F:.]+$/.test(s)) return false;
  const dbl = s.split('::');
  if (dbl.length > 2) return false;
  const groups = s.split(':').filter((g) => g !== '');
  const last = groups[groups.length - 1] || '';
  const v4tail = last.includes('.');
  if (v4tail && !V4.test(last)) return false;
  const n = groups.length + (v4tail ? 1 : 0);
  if (groups.some((g) => !g.includes('.') && !/^[0-9a-fA-F]{1,4}$/.test(g))) return false;
  return dbl.length === 2 ? n < 8 : n === 8;
}

/** isCIDR: an address or address/prefix-length. */
export function isCIDR(s) {
  const [ip, bits, extra] = s.split('/');
  if (extra !== undefined || !isIP(ip)) return false;
  if (bits === undefined) return true;
  if (!/^\d{1,3}$/.test(bits)) return false;
  return Number(bits) <= (ip.includes(':') ? 128 : 32);
}

/** checkValue returns why value is wrong for field, or "" when it is fine. */
export function checkValue(field, value) {
  switch (field) {
    case 'src_ip':
    case 'dst_ip':
      return isCIDR(value) ? '' : `${field}: "${value}" is not an IP address or CIDR prefix`;
    case 'protocol':
      if (PROTOCOLS.includes(value.toLowerCase())) return '';
      return /^\d{1,3}$/.test(value) && Number(value) <= 255 ? '' : `protocol: "${value}" is not a protocol number (0-255) or name`;
    case 'port':
      return /^\d{1,5}$/.test(value) && Number(value) <= 65535 ? '' : `port: "${value}" is not a port (0-65535)`;
    case 'status':
      return STATUSES.includes(value) ? '' : `status: "${value}" is not one of ${STATUSES.join(', ')}`;
    case 'time_start':
    case 'time_end':
      return Number.isNaN(Date.parse(value)) ? `${field}: "${value}" is not an ISO 8601 time` : '';
    case 'sensor':
      return value ? '' : 'sensor: empty';
    case 'community_id':
      return COMMUNITY_ID.test(value) ? '' : `community_id: "${value}" is not a Community ID v1 ("1:" and 28 base64 characters)`;
    case 'application':
      return /^[a-z0-9][a-z0-9_.-]{0,31}$/i.test(value) ? '' : `application: "${value}" is not an application label (e.g. ${APPLICATIONS.slice(0, 5).join(', ')})`;
    case 'server_name':
    case 'host':
      return HOSTNAME.test(value) && !value.includes('..') ? '' : `${field}: "${value}" is not a host name (e.g. example.com)`;
    case 'asn':
      return /^\d{1,10}$/.test(value) && Number(value) <= 4294967295 ? '' : `asn: "${value}" is not an AS number (e.g. 13335)`;
    case 'country':
      return /^[A-Za-z]{2}$/.test(value) ? '' : `country: "${value}" is not a two-letter country code (e.g. US)`;
  }
  return `unknown field "${field}" (use ${FIELDS.join(', ')})`;
}

/** parseSearch: "src_ip:10.0.0.0/8 protocol:tcp" → {filter: {src_ip, protocol}, errors: []}. */
export function parseSearch(q) {
  const filter = {};
  const errors = [];
  for (const term of String(q || '').trim().split(/\s+/).filter(Boolean)) {
    const i = term.indexOf(':');
    if (i <= 0 || i === term.length - 1) {
      errors.push(`term "${term}" is not field:value`);
      continue;
    }
    const field = term.slice(0, i);
    const value = term.slice(i + 1);
    if (!FIELDS.includes(field)) {
      errors.push(`unknown field "${field}" (use ${FIELDS.join(', ')})`);
      continue;
    }
    if (field in filter) {
      errors.push(`field "${field}" given twice`);
      continue;
    }
    const why = checkValue(field, value);
    if (why) errors.push(why);
    else filter[field] = normalize(field, value);
  }
  return { filter, errors };
}

/** normalize: the spelling a valid value is kept in (protocol and application lower
 *  case, country upper case, names lower case: DNS names are case-insensitive). */
export function normalize(field, value) {
  switch (field) {
    case 'protocol':
    case 'application':
    case 'server_name':
    case 'host':
      return value.toLowerCase();
    case 'country':
      return value.toUpperCase();
  }
  return value;
}

/** serverFilter: a filter as the collector takes it (REST parameters and the
 *  WebSocket subscription alike): the QFIELDS as terms of q, the rest as keys. */
export function serverFilter(filter) {
  const out = {};
  const q = [];
  for (const f of FIELDS) {
    const v = filter[f];
    if (v == null || v === '') continue;
    if (QFIELDS.includes(f)) q.push(`${f}:${v}`);
    else out[f] = v;
  }
  if (q.length) out.q = q.join(' ');
  return out;
}

/** formatSearch is the inverse of parseSearch, fields in FIELDS order. */
export function formatSearch(filter) {
  return FIELDS.filter((f) => filter[f] != null && filter[f] !== '').map((f) => `${f}:${filter[f]}`).join(' ');
}

/** flowParams: a filter plus paging and sort as GET /api/v1/flows parameters. */
export function flowParams(filter, { limit, offset, sortBy, sortOrder, format } = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(serverFilter(filter))) p.set(k, v);
  if (limit != null) p.set('limit', String(limit));
  if (offset) p.set('offset', String(offset));
  if (sortBy) p.set('sort_by', sortBy);
  if (sortOrder) p.set('sort_order', sortOrder);
  if (format) p.set('format', format);
  return p;
}
