// The expanded detail of one flow: both directions, TCP flags, end reason, sensor,
// timing. Text only.
import { h } from '../../utils/dom.js';
import { formatBytes, formatNumber, formatDuration } from '../../utils/format.js';

export function flowDetail(f) {
  const dir = (title, ip, port, packets, bytes, flags) => h('div', { class: 'dir' },
    h('h3', { text: title }),
    h('dl', null,
      h('dt', { text: 'Address' }), h('dd', { class: 'addr', text: ip }),
      h('dt', { text: 'Port' }), h('dd', { text: port }),
      h('dt', { text: 'Packets' }), h('dd', { text: formatNumber(packets) }),
      h('dt', { text: 'Bytes' }), h('dd', { text: `${formatBytes(bytes)} (${formatNumber(bytes)})` }),
      h('dt', { text: 'TCP flags' }), h('dd', { class: 'flags', text: flags || '–' })));
  return h('div', { class: 'flow-detail' },
    dir('→ Source (initiator)', f.srcIP, f.srcPort, f.srcPackets, f.srcBytes, f.srcTcpFlags),
    dir('← Destination (responder)', f.dstIP, f.dstPort, f.dstPackets, f.dstBytes, f.dstTcpFlags),
    h('div', { class: 'dir' }, h('h3', { text: 'Flow' }),
      h('dl', null,
        h('dt', { text: 'Protocol' }), h('dd', { text: `${f.protocolName || '?'} (${f.protocol})` }),
        h('dt', { text: 'Status' }), h('dd', { text: f.status || '–' }),
        h('dt', { text: 'End reason' }), h('dd', { text: f.endReason || '– (not ended)' }),
        h('dt', { text: 'Duration' }), h('dd', { text: formatDuration(f.duration) }),
        h('dt', { text: 'First seen' }), h('dd', { text: f.firstSeen || '–' }),
        h('dt', { text: 'Last seen' }), h('dd', { text: f.lastSeen || '–' }),
        h('dt', { text: 'Sensor' }), h('dd', { class: 'sensor', text: f.sensorId }),
        h('dt', { text: 'VLAN' }), h('dd', { text: f.vlanId || '–' }),
        h('dt', { text: 'Flow key' }), h('dd', { class: 'addr', text: f.flowKey }))));
}
