// Package output turns the flow table's deltas into the contract's messages: FlowDelta
// protobufs for the collector, and NetworkFlow JSON lines (the REST API's names) for
// --output jsonl.
package output

import (
	"bufio"
	"io"
	"strconv"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
	"netwatch.dev/sensor/internal/flow"
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

// FlowDelta converts one delta for the collector. Addresses are 4 bytes for IPv4.
func FlowDelta(d *flow.Delta) *netwatchv1.FlowDelta {
	src, dst := d.Src(), d.Dst()
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
	open     map[recordKey]*record
	one      record
	buf      []byte
	written  uint64
}

// NewJSONL writes to w; sensorID goes into each line's sensorId and flowKey.
func NewJSONL(w io.Writer, sensorID string) *JSONL {
	return &JSONL{w: bufio.NewWriterSize(w, 256<<10), sensorID: sensorID, open: make(map[recordKey]*record)}
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
	r.d = *d
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
	j.buf = appendRecord(j.buf[:0], j.sensorID, r)
	j.buf = append(j.buf, '\n')
	j.written++
	_, err := j.w.Write(j.buf)
	return err
}

// networkFlow is the record as the REST API's NetworkFlow message.
func networkFlow(sensorID string, r *record) *netwatchv1.NetworkFlow {
	d := &r.d
	src, dst := d.Src(), d.Dst()
	return &netwatchv1.NetworkFlow{
		FlowKey:      flowmeta.ID(sensorID, d.Protocol, src, d.SrcPort, dst, d.DstPort, d.FirstSeen),
		SrcIp:        src.String(),
		DstIp:        dst.String(),
		SrcPort:      uint32(d.SrcPort),
		DstPort:      uint32(d.DstPort),
		Protocol:     uint32(d.Protocol),
		ProtocolName: flowmeta.ProtocolName(d.Protocol),
		Bytes:        r.srcBytes + r.dstBytes,
		Packets:      r.srcPkts + r.dstPkts,
		FirstSeen:    timestamppb.New(time.Unix(0, d.FirstSeen)),
		LastSeen:     timestamppb.New(time.Unix(0, d.LastSeen)),
		Duration:     (d.LastSeen - d.FirstSeen) / int64(time.Millisecond),
		Status:       Status(d.Status),
		SrcPackets:   r.srcPkts,
		SrcBytes:     r.srcBytes,
		DstPackets:   r.dstPkts,
		DstBytes:     r.dstBytes,
		EndReason:    EndReason(d.EndReason),
		SensorId:     sensorID,
		VlanId:       uint32(d.VLAN),
		SrcTcpFlags:  flowmeta.TCPFlags(r.srcFlags),
		DstTcpFlags:  flowmeta.TCPFlags(r.dstFlags),
	}
}

// appendRecord writes the same JSON as restjson.Marshal(networkFlow(sensorID, r))
// (a test holds them byte-identical) without building the message and without
// reflection: offline runs write a line per flow, and reflection made that half of
// the CPU of a --read.
func appendRecord(b []byte, sensorID string, r *record) []byte {
	d := &r.d
	src, dst := d.Src(), d.Dst()
	b = append(b, `{"flowKey":`...)
	b = restjson.AppendString(b, flowmeta.ID(sensorID, d.Protocol, src, d.SrcPort, dst, d.DstPort, d.FirstSeen))
	b = append(b, `,"srcIP":"`...)
	b = src.AppendTo(b)
	b = append(b, `","dstIP":"`...)
	b = dst.AppendTo(b)
	b = append(b, `","srcPort":`...)
	b = strconv.AppendUint(b, uint64(d.SrcPort), 10)
	b = append(b, `,"dstPort":`...)
	b = strconv.AppendUint(b, uint64(d.DstPort), 10)
	b = append(b, `,"protocol":`...)
	b = strconv.AppendUint(b, uint64(d.Protocol), 10)
	b = append(b, `,"protocolName":`...)
	b = restjson.AppendString(b, flowmeta.ProtocolName(d.Protocol))
	b = append(b, `,"bytes":`...)
	b = strconv.AppendUint(b, r.srcBytes+r.dstBytes, 10)
	b = append(b, `,"packets":`...)
	b = strconv.AppendUint(b, r.srcPkts+r.dstPkts, 10)
	b = append(b, `,"firstSeen":`...)
	b = restjson.AppendTime(b, time.Unix(0, d.FirstSeen))
	b = append(b, `,"lastSeen":`...)
	b = restjson.AppendTime(b, time.Unix(0, d.LastSeen))
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, (d.LastSeen-d.FirstSeen)/int64(time.Millisecond), 10)
	b = append(b, `,"status":`...)
	b = restjson.AppendString(b, statusNames[Status(d.Status)])
	b = append(b, `,"srcPackets":`...)
	b = strconv.AppendUint(b, r.srcPkts, 10)
	b = append(b, `,"srcBytes":`...)
	b = strconv.AppendUint(b, r.srcBytes, 10)
	b = append(b, `,"dstPackets":`...)
	b = strconv.AppendUint(b, r.dstPkts, 10)
	b = append(b, `,"dstBytes":`...)
	b = strconv.AppendUint(b, r.dstBytes, 10)
	b = append(b, `,"endReason":`...)
	b = restjson.AppendString(b, endReasonNames[EndReason(d.EndReason)])
	b = append(b, `,"sensorId":`...)
	b = restjson.AppendString(b, sensorID)
	b = append(b, `,"vlanId":`...)
	b = strconv.AppendUint(b, uint64(d.VLAN), 10)
	b = append(b, `,"srcTcpFlags":`...)
	b = restjson.AppendString(b, flowmeta.TCPFlags(r.srcFlags))
	b = append(b, `,"dstTcpFlags":`...)
	b = restjson.AppendString(b, flowmeta.TCPFlags(r.dstFlags))
	return append(b, '}')
}

// The REST spellings of the enums by number, computed once (restjson.EnumString
// builds strings on every call). The values are small and dense.
var (
	statusNames    = enumNames(netwatchv1.FlowStatus(0).Descriptor())
	endReasonNames = enumNames(netwatchv1.EndReason(0).Descriptor())
)

func enumNames(ed protoreflect.EnumDescriptor) []string {
	vals := ed.Values()
	out := make([]string, vals.Len())
	for i := range out {
		n := vals.Get(i).Number()
		if int(n) >= len(out) || n < 0 {
			panic("enum " + string(ed.FullName()) + " is not dense") // a contract change; the tests catch it
		}
		out[n] = restjson.EnumString(ed, n)
	}
	return out
}
