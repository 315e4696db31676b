// An address as shown everywhere: the address itself (a link to its host view),
// then its name in a muted span (the full name in the title: long names are cut),
// and in detail views its AS and country. Text only.
import { h } from '../../utils/dom.js';
import { hostHash, asLabel } from '../../utils/format.js';

/** hostRef(ip, {text, name, asn, asName, country, detail}): text is what the link
 *  shows (default the address, e.g. "10.0.0.1:443" with the port); the AS and
 *  country are shown when detail is set. */
export function hostRef(ip, { text, name, asn, asName, country, detail } = {}) {
  const el = h('span', { class: 'hostref' },
    ip ? h('a', { class: 'addr host-link', href: hostHash(ip), title: `Host view of ${ip}`, dataset: { ip }, text: text ?? ip })
      : h('span', { class: 'addr', text: text ?? '–' }));
  if (name) el.append(' ', h('span', { class: 'name', title: name, text: name }));
  const as = detail ? asLabel(asn, asName, country) : '';
  if (as) el.append(' ', h('span', { class: 'asinfo', title: as, text: as }));
  return el;
}
