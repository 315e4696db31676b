package restjson

import (
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Flow is the one view of a flow record that every encoding of a NetworkFlow is made
// from: the sensor's --output jsonl lines, the collector's REST JSON (ListFlows, top
// talkers' flows), its CSV download and its WebSocket "flows" message. The sensor
// fills it from its summed record, the collector from a stored flow. Everything the
// NetworkFlow message derives (flow key, protocol name, both-direction totals,
// duration, TCP flag letters) is computed from these fields, the same way for all.
type Flow struct {
	SensorID string
	Protocol uint8
	// Src is the initiator (source of the first packet seen), Dst the responder.
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	VLAN             uint16
	// FirstSeen and LastSeen are unix nanoseconds.
	FirstSeen, LastSeen      int64
	SrcPackets, SrcBytes     uint64 // sent by the initiator
	DstPackets, DstBytes     uint64 // sent by the responder
	SrcTCPFlags, DstTCPFlags uint8
	Status                   netwatchv1.FlowStatus
	EndReason                netwatchv1.EndReason
	// CommunityID (Community ID v1), ServerName (TLS SNI or HTTP Host) and
	// Application (a flowmeta.App label) are the flow's own; "" when unknown.
	CommunityID, ServerName, Application string
	// What the collector knows of each address (its enricher): the latest DNS
	// name, the autonomous system and the country; zero when unknown.
	SrcName, DstName       string
	SrcASN, DstASN         uint32
	SrcASName, DstASName   string
	SrcCountry, DstCountry string
}

// ID is the flow's flowKey (flowmeta.ID).
func (f *Flow) ID() string {
	return flowmeta.ID(f.SensorID, f.Protocol, f.Src, f.SrcPort, f.Dst, f.DstPort, f.FirstSeen)
}

func (f *Flow) appendID(b []byte) []byte {
	return flowmeta.AppendID(b, f.SensorID, f.Protocol, f.Src, f.SrcPort, f.Dst, f.DstPort, f.FirstSeen)
}

// duration is last_seen - first_seen in milliseconds.
func (f *Flow) duration() int64 { return (f.LastSeen - f.FirstSeen) / int64(time.Millisecond) }

// Proto is the flow as the contract's NetworkFlow message (the gRPC answer); the
// only place one is built from flow fields.
func (f *Flow) Proto() *netwatchv1.NetworkFlow {
	return &netwatchv1.NetworkFlow{
		FlowKey:      f.ID(),
		SrcIp:        f.Src.String(),
		DstIp:        f.Dst.String(),
		SrcPort:      uint32(f.SrcPort),
		DstPort:      uint32(f.DstPort),
		Protocol:     uint32(f.Protocol),
		ProtocolName: flowmeta.ProtocolName(f.Protocol),
		Bytes:        f.SrcBytes + f.DstBytes,
		Packets:      f.SrcPackets + f.DstPackets,
		FirstSeen:    timestamppb.New(time.Unix(0, f.FirstSeen)),
		LastSeen:     timestamppb.New(time.Unix(0, f.LastSeen)),
		Duration:     f.duration(),
		Status:       f.Status,
		SrcPackets:   f.SrcPackets,
		SrcBytes:     f.SrcBytes,
		DstPackets:   f.DstPackets,
		DstBytes:     f.DstBytes,
		EndReason:    f.EndReason,
		SensorId:     f.SensorID,
		VlanId:       uint32(f.VLAN),
		SrcTcpFlags:  flowmeta.TCPFlags(f.SrcTCPFlags),
		DstTcpFlags:  flowmeta.TCPFlags(f.DstTCPFlags),
		CommunityId:  f.CommunityID,
		ServerName:   f.ServerName,
		Application:  f.Application,
		SrcName:      f.SrcName,
		DstName:      f.DstName,
		SrcAsn:       f.SrcASN,
		SrcAsName:    f.SrcASName,
		SrcCountry:   f.SrcCountry,
		DstAsn:       f.DstASN,
		DstAsName:    f.DstASName,
		DstCountry:   f.DstCountry,
	}
}

// FlowFromProto is the view m was made from: ok when m is exactly what Proto builds
// from some Flow (every derived field consistent, addresses in their canonical
// spelling, timestamps set), so that Proto of the result equals m. A message built
// otherwise (by hand, with fields that disagree) is not ok; Marshal then encodes it
// field by field.
func FlowFromProto(m *netwatchv1.NetworkFlow) (f Flow, ok bool) {
	if m.SrcPort > 0xffff || m.DstPort > 0xffff || m.Protocol > 0xff || m.VlanId > 0xffff {
		return Flow{}, false
	}
	f = Flow{
		SensorID: m.SensorId, Protocol: uint8(m.Protocol),
		SrcPort: uint16(m.SrcPort), DstPort: uint16(m.DstPort), VLAN: uint16(m.VlanId),
		SrcPackets: m.SrcPackets, SrcBytes: m.SrcBytes, DstPackets: m.DstPackets, DstBytes: m.DstBytes,
		Status: m.Status, EndReason: m.EndReason,
		CommunityID: m.CommunityId, ServerName: m.ServerName, Application: m.Application,
		SrcName: m.SrcName, DstName: m.DstName,
		SrcASN: m.SrcAsn, SrcASName: m.SrcAsName, SrcCountry: m.SrcCountry,
		DstASN: m.DstAsn, DstASName: m.DstAsName, DstCountry: m.DstCountry,
	}
	var okA, okB, okC, okD bool
	f.Src, okA = canonicalAddr(m.SrcIp)
	f.Dst, okB = canonicalAddr(m.DstIp)
	f.FirstSeen, okC = unixNanos(m.FirstSeen)
	f.LastSeen, okD = unixNanos(m.LastSeen)
	if !okA || !okB || !okC || !okD {
		return Flow{}, false
	}
	f.SrcTCPFlags, okA = flowmeta.ParseTCPFlags(m.SrcTcpFlags)
	f.DstTCPFlags, okB = flowmeta.ParseTCPFlags(m.DstTcpFlags)
	if !okA || !okB || m.ProtocolName != flowmeta.ProtocolName(f.Protocol) ||
		m.Bytes != f.SrcBytes+f.DstBytes || m.Packets != f.SrcPackets+f.DstPackets || m.Duration != f.duration() {
		return Flow{}, false
	}
	var id [16]byte
	if string(f.appendID(id[:0])) != m.FlowKey {
		return Flow{}, false
	}
	return f, true
}

// canonicalAddr parses s, ok only if netip spells the address back as s.
func canonicalAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	var buf [64]byte
	return a, string(a.AppendTo(buf[:0])) == s
}

// unixNanos is ts in unix nanoseconds, ok if ts is set, normalized and representable.
func unixNanos(ts *timestamppb.Timestamp) (int64, bool) {
	if ts == nil || ts.Nanos < 0 || ts.Nanos >= 1e9 {
		return 0, false
	}
	ns := time.Unix(ts.Seconds, int64(ts.Nanos)).UnixNano()
	t := time.Unix(0, ns)
	return ns, t.Unix() == ts.Seconds && int32(t.Nanosecond()) == ts.Nanos
}

// AppendFlow appends the REST JSON of f: the bytes Marshal writes for f.Proto(),
// without building the message or reflecting over it (--read writes a line per flow,
// and reflection made that half of the CPU of a --read).
func AppendFlow(b []byte, f *Flow) []byte {
	b = append(b, `{"flowKey":"`...)
	b = f.appendID(b) // hex digits: nothing to escape
	b = append(b, `","srcIP":`...)
	b = appendAddr(b, f.Src)
	b = append(b, `,"dstIP":`...)
	b = appendAddr(b, f.Dst)
	b = append(b, `,"srcPort":`...)
	b = strconv.AppendUint(b, uint64(f.SrcPort), 10)
	b = append(b, `,"dstPort":`...)
	b = strconv.AppendUint(b, uint64(f.DstPort), 10)
	b = append(b, `,"protocol":`...)
	b = strconv.AppendUint(b, uint64(f.Protocol), 10)
	b = append(b, `,"protocolName":"`...)
	b = append(b, flowmeta.ProtocolName(f.Protocol)...) // lower-case letters or digits
	b = append(b, `","bytes":`...)
	b = strconv.AppendUint(b, f.SrcBytes+f.DstBytes, 10)
	b = append(b, `,"packets":`...)
	b = strconv.AppendUint(b, f.SrcPackets+f.DstPackets, 10)
	b = append(b, `,"firstSeen":`...)
	b = AppendTime(b, time.Unix(0, f.FirstSeen))
	b = append(b, `,"lastSeen":`...)
	b = AppendTime(b, time.Unix(0, f.LastSeen))
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, f.duration(), 10)
	b = append(b, `,"status":`...)
	b = appendString(b, statusName(f.Status))
	b = append(b, `,"srcPackets":`...)
	b = strconv.AppendUint(b, f.SrcPackets, 10)
	b = append(b, `,"srcBytes":`...)
	b = strconv.AppendUint(b, f.SrcBytes, 10)
	b = append(b, `,"dstPackets":`...)
	b = strconv.AppendUint(b, f.DstPackets, 10)
	b = append(b, `,"dstBytes":`...)
	b = strconv.AppendUint(b, f.DstBytes, 10)
	b = append(b, `,"endReason":`...)
	b = appendString(b, endReasonName(f.EndReason))
	b = append(b, `,"sensorId":`...)
	b = appendString(b, f.SensorID)
	b = append(b, `,"vlanId":`...)
	b = strconv.AppendUint(b, uint64(f.VLAN), 10)
	b = append(b, `,"srcTcpFlags":"`...)
	b = flowmeta.AppendTCPFlags(b, f.SrcTCPFlags) // letters
	b = append(b, `","dstTcpFlags":"`...)
	b = flowmeta.AppendTCPFlags(b, f.DstTCPFlags)
	b = append(b, `","communityId":`...)
	b = appendString(b, f.CommunityID)
	b = append(b, `,"serverName":`...)
	b = appendString(b, f.ServerName)
	b = append(b, `,"application":`...)
	b = appendString(b, f.Application)
	b = append(b, `,"srcName":`...)
	b = appendString(b, f.SrcName)
	b = append(b, `,"dstName":`...)
	b = appendString(b, f.DstName)
	b = append(b, `,"srcAsn":`...)
	b = strconv.AppendUint(b, uint64(f.SrcASN), 10)
	b = append(b, `,"srcAsName":`...)
	b = appendString(b, f.SrcASName)
	b = append(b, `,"srcCountry":`...)
	b = appendString(b, f.SrcCountry)
	b = append(b, `,"dstAsn":`...)
	b = strconv.AppendUint(b, uint64(f.DstASN), 10)
	b = append(b, `,"dstAsName":`...)
	b = appendString(b, f.DstASName)
	b = append(b, `,"dstCountry":`...)
	b = appendString(b, f.DstCountry)
	return append(b, '}')
}

// appendAddr writes a as the JSON string of a.String(): without a zone there is
// nothing to escape.
func appendAddr(b []byte, a netip.Addr) []byte {
	if !a.IsValid() || a.Zone() != "" {
		return appendString(b, a.String())
	}
	b = append(b, '"')
	b = a.AppendTo(b)
	return append(b, '"')
}

// The REST spellings of the flow enums, computed once (EnumString builds strings on
// every call); numbers the table lacks go to EnumString.
var (
	statusNames    = newEnumNames(netwatchv1.FlowStatus(0).Descriptor())
	endReasonNames = newEnumNames(netwatchv1.EndReason(0).Descriptor())
)

type enumNames struct {
	ed    protoreflect.EnumDescriptor
	known [16]bool
	names [16]string
}

func newEnumNames(ed protoreflect.EnumDescriptor) *enumNames {
	t := &enumNames{ed: ed}
	for i := range ed.Values().Len() {
		if n := ed.Values().Get(i).Number(); n >= 0 && int(n) < len(t.names) {
			t.known[n], t.names[n] = true, EnumString(ed, n)
		}
	}
	return t
}

func (t *enumNames) name(n protoreflect.EnumNumber) string {
	if n >= 0 && int(n) < len(t.names) && t.known[n] {
		return t.names[n]
	}
	return EnumString(t.ed, n)
}

func statusName(s netwatchv1.FlowStatus) string { return statusNames.name(protoreflect.EnumNumber(s)) }

func endReasonName(r netwatchv1.EndReason) string {
	return endReasonNames.name(protoreflect.EnumNumber(r))
}
