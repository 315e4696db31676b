// The expanded detail of one flow: both directions (address with its name, AS and
// country, a link to its host view), TCP flags, application, server name,
// Community ID (copyable, and a filter), end reason, sensor, timing. Text only.
import { h } from '../../utils/dom.js';
import { formatBytes, formatNumber, formatDuration, asLabel } from '../../utils/format.js';
import { hostRef } from '../Common/hosts.js';

export function flowDetail(f) {
  const dir = (title, end) => h('div', { class: 'dir' },
    h('h3', { text: title }),
    h('dl', null,
      h('dt', { text: 'Address' }), h('dd', null, hostRef(end.ip)),
      h('dt', { text: 'Name' }), h('dd', { class: 'name', title: end.name || null, text: end.name || '–' }),
      h('dt', { text: 'AS · country' }), h('dd', { class: 'asinfo', text: asLabel(end.asn, end.asName, end.country) || '–' }),
      h('dt', { text: 'Port' }), h('dd', { text: end.port }),
      h('dt', { text: 'Packets' }), h('dd', { text: formatNumber(end.packets) }),
      h('dt', { text: 'Bytes' }), h('dd', { text: `${formatBytes(end.bytes)} (${formatNumber(end.bytes)})` }),
      h('dt', { text: 'TCP flags' }), h('dd', { class: 'flags', text: end.flags || '–' })));
  const filter = (field, value) => value
    ? h('button', { type: 'button', class: 'link filter', title: `Only flows with ${field}:${value}`, dataset: { filter: field, value }, text: value })
    : '–';
  const cid = f.communityId
    ? [h('code', { class: 'cid', text: f.communityId }), ' ',
      h('button', { type: 'button', class: 'btn tiny copy', title: 'Copy the Community ID', dataset: { copy: f.communityId }, text: 'copy' }), ' ',
      h('button', { type: 'button', class: 'btn tiny', dataset: { filter: 'community_id', value: f.communityId }, title: 'Only this flow\'s Community ID', text: 'filter' })]
    : '–';
  return h('div', { class: 'flow-detail' },
    dir('→ Source (initiator)', { ip: f.srcIP, name: f.srcName, asn: f.srcAsn, asName: f.srcAsName, country: f.srcCountry,
      port: f.srcPort, packets: f.srcPackets, bytes: f.srcBytes, flags: f.srcTcpFlags }),
    dir('← Destination (responder)', { ip: f.dstIP, name: f.dstName, asn: f.dstAsn, asName: f.dstAsName, country: f.dstCountry,
      port: f.dstPort, packets: f.dstPackets, bytes: f.dstBytes, flags: f.dstTcpFlags }),
    h('div', { class: 'dir' }, h('h3', { text: 'Flow' }),
      h('dl', null,
        h('dt', { text: 'Protocol' }), h('dd', { text: `${f.protocolName || '?'} (${f.protocol})` }),
        h('dt', { text: 'Application' }), h('dd', { class: 'app' }, filter('application', f.application)),
        h('dt', { text: 'Server name' }), h('dd', { class: 'server' }, filter('server_name', f.serverName)),
        h('dt', { text: 'Community ID' }), h('dd', { class: 'community-id' }, cid),
        h('dt', { text: 'Status' }), h('dd', { text: f.status || '–' }),
        h('dt', { text: 'End reason' }), h('dd', { text: f.endReason || '– (not ended)' }),
        h('dt', { text: 'Duration' }), h('dd', { text: formatDuration(f.duration) }),
        h('dt', { text: 'First seen' }), h('dd', { text: f.firstSeen || '–' }),
        h('dt', { text: 'Last seen' }), h('dd', { text: f.lastSeen || '–' }),
        h('dt', { text: 'Sensor' }), h('dd', { class: 'sensor', text: f.sensorId }),
        h('dt', { text: 'VLAN' }), h('dd', { text: f.vlanId || '–' }),
        h('dt', { text: 'Flow key' }), h('dd', { class: 'addr', text: f.flowKey }))));
}
