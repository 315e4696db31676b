// Package output turns the flow table's deltas into the contract's messages: FlowDelta
// protobufs for the collector, and NetworkFlow JSON lines (the REST API's names) for
// --output jsonl.
package output

import (
	"bufio"
	"io"
	"time"
	"unsafe"

	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/inspect"
)

var statusOf = [...]netwatchv1.FlowStatus{
	flow.StatusActive: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
	flow.StatusIdle:   netwatchv1.FlowStatus_FLOW_STATUS_IDLE,
	flow.StatusClosed: netwatchv1.FlowStatus_FLOW_STATUS_CLOSED,
}

var endReasonOf = [...]netwatchv1.EndReason{
	flow.EndNone:          netwatchv1.EndReason_END_REASON_UNSPECIFIED,
	flow.EndFIN:           netwatchv1.EndReason_END_REASON_FIN,
	flow.EndRST:           netwatchv1.EndReason_END_REASON_RST,
	flow.EndIdleTimeout:   netwatchv1.EndReason_END_REASON_IDLE_TIMEOUT,
	flow.EndActiveTimeout: netwatchv1.EndReason_END_REASON_ACTIVE_TIMEOUT,
	flow.EndEvicted:       netwatchv1.EndReason_END_REASON_EVICTED,
	flow.EndSensorStopped: netwatchv1.EndReason_END_REASON_SENSOR_STOPPED,
}

// Status is the contract's value of a flow status.
func Status(s flow.Status) netwatchv1.FlowStatus {
	if int(s) < len(statusOf) {
		return statusOf[s]
	}
	return netwatchv1.FlowStatus_FLOW_STATUS_UNSPECIFIED
}

// EndReason is the contract's value of an end reason.
func EndReason(r flow.EndReason) netwatchv1.EndReason {
	if int(r) < len(endReasonOf) {
		return endReasonOf[r]
	}
	return netwatchv1.EndReason_END_REASON_UNSPECIFIED
}

// CommunityID appends the delta's flow's Community ID v1 with seed (nothing for a
// flow that has none: ICMP without its type). It runs on the writer goroutine,
// never in a capture worker: a SHA-1 a flow is more than the per-packet budget.
func CommunityID(b []byte, d *flow.Delta, seed uint16) []byte {
	return flowmeta.AppendCommunityID(b, seed, d.Protocol, d.Src(), d.Dst(), d.SrcPort, d.DstPort, d.ICMPType, d.ICMPCode, d.HasICMP)
}

// Application is the delta's application label: what its payload showed, else its
// well-known port's service, else "".
func Application(d *flow.Delta) string {
	if d.App != flowmeta.AppNone {
		return d.App.String()
	}
	return flowmeta.PortApp(d.Protocol, d.SrcPort, d.DstPort).String()
}

// ServerName is the delta's server name as the contract bounds it (at most 253
// bytes of [a-z0-9.-_:]), "" for one outside (the collector would refuse the
// batch for it).
func ServerName(d *flow.Delta) string {
	s := d.ServerName
	if len(s) > 253 {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':') {
			return ""
		}
	}
	return s
}

// FlowDelta converts one delta for the collector, with its Community ID computed
// with seed. Addresses are 4 bytes for IPv4.
func FlowDelta(d *flow.Delta, seed uint16) *netwatchv1.FlowDelta {
	src, dst := d.Src(), d.Dst()
	var cid [flowmeta.CommunityIDMaxLen]byte
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{
			Protocol: uint32(d.Protocol),
			SrcAddr:  src.AsSlice(), SrcPort: uint32(d.SrcPort),
			DstAddr: dst.AsSlice(), DstPort: uint32(d.DstPort),
		},
		VlanId:      uint32(d.VLAN),
		SrcPackets:  d.SrcPackets,
		SrcBytes:    d.SrcBytes,
		DstPackets:  d.DstPackets,
		DstBytes:    d.DstBytes,
		FirstSeen:   timestamppb.New(time.Unix(0, d.FirstSeen)),
		LastSeen:    timestamppb.New(time.Unix(0, d.LastSeen)),
		SrcTcpFlags: uint32(d.SrcTCPFlags),
		DstTcpFlags: uint32(d.DstTCPFlags),
		Status:      Status(d.Status),
		EndReason:   EndReason(d.EndReason),
		CommunityId: string(CommunityID(cid[:0], d, seed)),
		ServerName:  ServerName(d),
		Application: Application(d),
	}
}

// DNSObservation converts one DNS answer for the collector; nil when its address
// is not valid. Addresses are 4 bytes for IPv4.
func DNSObservation(a *inspect.DNSAnswer) *netwatchv1.DnsObservation {
	if !a.Addr.IsValid() {
		return nil
	}
	return &netwatchv1.DnsObservation{
		Name: a.Name, Canonical: a.Canonical, Addr: a.Addr.Unmap().AsSlice(), Ttl: a.TTL,
		Seen: timestamppb.New(time.Unix(0, a.Seen)),
	}
}

// recordKey identifies one flow record while its deltas are being summed.
type recordKey struct {
	src, dst         [16]byte
	srcPort, dstPort uint16
	proto            uint8
	firstSeen        int64
}

// record is a flow record's totals so far.
type record struct {
	d                  flow.Delta // identity, times, status of the latest delta
	srcPkts, srcBytes  uint64
	dstPkts, dstBytes  uint64
	srcFlags, dstFlags uint8
}

// JSONL writes one NetworkFlow JSON object per flow record when the record ends
// (FIN/RST, idle or active timeout, eviction, end of input), the offline equivalent of
// `zeek -r` or `softflowd -r`. A flow cut by the active timeout gives several lines whose
// counters add up to the flow's totals.
type JSONL struct {
	w        *bufio.Writer
	sensorID string
	seed     uint16
	open     map[recordKey]*record
	one      record
	view     restjson.Flow
	cid      [flowmeta.CommunityIDMaxLen]byte
	buf      []byte
	written  uint64
}

// NewJSONL writes to w; sensorID goes into each line's sensorId and flowKey, seed
// into its communityId.
func NewJSONL(w io.Writer, sensorID string, seed uint16) *JSONL {
	return &JSONL{w: bufio.NewWriterSize(w, 256<<10), sensorID: sensorID, seed: seed, open: make(map[recordKey]*record)}
}

// Add sums one delta into its record and writes the record if it ended.
func (j *JSONL) Add(d *flow.Delta) error {
	k := recordKey{src: d.SrcAddr, dst: d.DstAddr, srcPort: d.SrcPort, dstPort: d.DstPort, proto: d.Protocol, firstSeen: d.FirstSeen}
	r := j.open[k]
	if r == nil {
		if d.EndReason != flow.EndNone {
			// A whole record in one delta (always so with Table.ExportEnded): write
			// it without going through the map.
			j.one = record{d: *d, srcPkts: d.SrcPackets, srcBytes: d.SrcBytes, dstPkts: d.DstPackets,
				dstBytes: d.DstBytes, srcFlags: d.SrcTCPFlags, dstFlags: d.DstTCPFlags}
			return j.write(&j.one)
		}
		r = &record{}
		j.open[k] = r
	}
	app, server := r.d.App, r.d.ServerName
	r.d = *d
	if r.d.App == flowmeta.AppNone { // a label once seen stays
		r.d.App = app
	}
	if r.d.ServerName == "" {
		r.d.ServerName = server
	}
	r.srcPkts += d.SrcPackets
	r.srcBytes += d.SrcBytes
	r.dstPkts += d.DstPackets
	r.dstBytes += d.DstBytes
	r.srcFlags |= d.SrcTCPFlags
	r.dstFlags |= d.DstTCPFlags
	if d.EndReason == flow.EndNone {
		return nil
	}
	delete(j.open, k)
	return j.write(r)
}

// Open is the number of records not written yet.
func (j *JSONL) Open() int { return len(j.open) }

// Written is the number of lines written.
func (j *JSONL) Written() uint64 { return j.written }

// Flush writes buffered lines to the underlying writer.
func (j *JSONL) Flush() error { return j.w.Flush() }

func (j *JSONL) write(r *record) error {
	r.view(j.sensorID, &j.view)
	// The Community ID goes through the view without a string allocation: it is
	// a view of j.cid, which stays unchanged until AppendFlow has copied it.
	cid := CommunityID(j.cid[:0], &r.d, j.seed)
	if len(cid) > 0 {
		j.view.CommunityID = unsafe.String(&cid[0], len(cid))
	}
	j.view.ServerName, j.view.Application = ServerName(&r.d), Application(&r.d)
	j.buf = restjson.AppendFlow(j.buf[:0], &j.view)
	j.buf = append(j.buf, '\n')
	j.view.CommunityID = ""
	j.written++
	_, err := j.w.Write(j.buf)
	return err
}

// view is the record as the contract's flow view, which restjson.AppendFlow writes as
// the REST API's NetworkFlow JSON.
func (r *record) view(sensorID string, v *restjson.Flow) {
	d := &r.d
	*v = restjson.Flow{
		SensorID: sensorID, Protocol: d.Protocol, Src: d.Src(), Dst: d.Dst(),
		SrcPort: d.SrcPort, DstPort: d.DstPort, VLAN: d.VLAN,
		FirstSeen: d.FirstSeen, LastSeen: d.LastSeen,
		SrcPackets: r.srcPkts, SrcBytes: r.srcBytes, DstPackets: r.dstPkts, DstBytes: r.dstBytes,
		SrcTCPFlags: r.srcFlags, DstTCPFlags: r.dstFlags,
		Status: Status(d.Status), EndReason: EndReason(d.EndReason),
	}
}
