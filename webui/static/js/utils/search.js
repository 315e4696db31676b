// The flow search syntax: space-separated field:value terms, e.g.
// "src_ip:192.168.1.0/24 protocol:tcp port:443". The collector parses the same
// syntax (GET /api/v1/flows?q=); this parser validates as the user types and keeps
// the filter controls in step with the search box.

export const FIELDS = ['src_ip', 'dst_ip', 'protocol', 'port', 'time_start', 'time_end', 'sensor', 'status'];
const STATUSES = ['active', 'idle', 'closed'];
const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmpv6', 'sctp', 'gre', 'esp', 'ah', 'igmp', 'udplite', 'dccp', 'ospf', 'pim', 'vrrp', 'l2tp', 'ipip', 'ipv6'];

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
    else filter[field] = field === 'protocol' ? value.toLowerCase() : value;
  }
  return { filter, errors };
}

/** formatSearch is the inverse of parseSearch, fields in FIELDS order. */
export function formatSearch(filter) {
  return FIELDS.filter((f) => filter[f] != null && filter[f] !== '').map((f) => `${f}:${filter[f]}`).join(' ');
}

/** flowParams: a filter plus paging and sort as GET /api/v1/flows parameters. */
export function flowParams(filter, { limit, offset, sortBy, sortOrder, format } = {}) {
  const p = new URLSearchParams();
  for (const f of FIELDS) if (filter[f] != null && filter[f] !== '') p.set(f, filter[f]);
  if (limit != null) p.set('limit', String(limit));
  if (offset) p.set('offset', String(offset));
  if (sortBy) p.set('sort_by', sortBy);
  if (sortOrder) p.set('sort_order', sortOrder);
  if (format) p.set('format', format);
  return p;
}
