// Top talkers without the DOM: what a talker's row shows and where it leads.

/** talkerTarget: a talker of a ranking by (any, src, dst, asn, country) as shown:
 *  ip (hosts: the address, linked to its host view) or label (an AS as "AS13335",
 *  a country code), name (the display name when it is not the identifier itself),
 *  and filter: the #/flows parameters its flow count opens (null for "unknown"). */
export function talkerTarget(t, by) {
  const id = String(t.identifier || '');
  const name = t.displayName && t.displayName !== id ? t.displayName : '';
  if (by === 'asn' || by === 'country') {
    const known = id !== '' && id.toLowerCase() !== 'unknown';
    const code = by === 'asn' ? id.replace(/^AS/i, '') : id.toUpperCase();
    const numeric = /^\d+$/.test(code);
    const label = by === 'asn' && known && numeric ? 'AS' + code : id || 'unknown';
    const ok = known && (by === 'country' ? /^[A-Z]{2}$/.test(code) : numeric);
    return { ip: '', label, name: name === label ? '' : name, filter: ok ? { [by]: code } : null, title: ok ? `Flows with an end in ${label}` : '' };
  }
  const side = by === 'src' ? 'src_ip' : by === 'dst' ? 'dst_ip' : hostSide(t);
  return { ip: id, label: id, name, filter: { [side]: id }, title: `Flows with ${id} as ${side === 'src_ip' ? 'source' : 'destination'}` };
}

/** hostSide: which end of its flows a talker is on, judged by the flows that come
 *  with it (the API filters by source or destination, not by either). */
export function hostSide(t) {
  const flows = t.flows || [];
  const asSrc = flows.filter((f) => f.srcIP === t.identifier).length;
  return asSrc >= flows.length - asSrc ? 'src_ip' : 'dst_ip';
}
