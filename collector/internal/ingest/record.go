package ingest

import (
	"encoding/binary"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Record kinds. A record's payload is:
//
//	kind u8 | at i64 (unix nanos) | seq u64 | len u16 + sensor id | len u16 + boot id | body
const (
	// recBatch (log): a FlowBatch accepted from (sensor, boot), received at at.
	recBatch byte = 1
	// recFlow (snapshot): one stored flow as a FlowDelta of its totals, last updated at at.
	recFlow byte = 2
	// recMark (snapshot): batches of (sensor, boot) applied through seq; body is the
	// boot's latest SpoolLoss.
	recMark byte = 3
	// recEnd closes a complete snapshot.
	recEnd byte = 4
	// recFlowBuckets (snapshot): recFlow with what the flow transferred per bucket;
	// body is uvarint length + FlowDelta, then per bucket varint start (unix nanos),
	// uvarint packets, uvarint bytes. Snapshots written before it hold recFlow.
	recFlowBuckets byte = 5
)

type record struct {
	kind             byte
	at               int64
	seq              uint64
	sensorID, bootID string
	body             []byte
}

func (r *record) appendPayload(dst []byte) []byte {
	dst = append(dst, r.kind)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.at))
	dst = binary.BigEndian.AppendUint64(dst, r.seq)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.sensorID)))
	dst = append(dst, r.sensorID...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(r.bootID)))
	dst = append(dst, r.bootID...)
	return append(dst, r.body...)
}

// frame is the framed record, ready to append to a log or snapshot.
func (r *record) frame() []byte { return appendFrame(nil, r.appendPayload(nil)) }

var errShortRecord = errors.New("record too short")

// parseRecord decodes a payload; body aliases p.
func parseRecord(p []byte) (record, error) {
	var r record
	if len(p) < 1+8+8+2 {
		return r, errShortRecord
	}
	r.kind = p[0]
	r.at = int64(binary.BigEndian.Uint64(p[1:]))
	r.seq = binary.BigEndian.Uint64(p[9:])
	p = p[17:]
	for _, dst := range []*string{&r.sensorID, &r.bootID} {
		if len(p) < 2 {
			return r, errShortRecord
		}
		n := int(binary.BigEndian.Uint16(p))
		if len(p) < 2+n {
			return r, errShortRecord
		}
		*dst = string(p[2 : 2+n])
		p = p[2+n:]
	}
	r.body = p
	return r, nil
}

// flowDelta is a stored flow's totals as one delta: applied to an empty store it
// rebuilds the flow exactly.
func flowDelta(f *store.Flow) *netwatchv1.FlowDelta {
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{
			Protocol: uint32(f.Protocol),
			SrcAddr:  f.Src.AsSlice(), SrcPort: uint32(f.SrcPort),
			DstAddr: f.Dst.AsSlice(), DstPort: uint32(f.DstPort),
		},
		VlanId:     uint32(f.VLAN),
		SrcPackets: f.SrcPackets, SrcBytes: f.SrcBytes,
		DstPackets: f.DstPackets, DstBytes: f.DstBytes,
		FirstSeen:   timestamppb.New(time.Unix(0, f.FirstSeen)),
		LastSeen:    timestamppb.New(time.Unix(0, f.LastSeen)),
		SrcTcpFlags: uint32(f.SrcTCPFlags), DstTcpFlags: uint32(f.DstTCPFlags),
		Status: f.Status, EndReason: f.EndReason,
		CommunityId: f.CommunityID, ServerName: f.ServerName, Application: f.Application,
	}
}

// flowBucketsBody is the body of a recFlowBuckets record.
func flowBucketsBody(dst []byte, f *store.Flow, buckets []store.BucketTraffic) []byte {
	d := marshal(flowDelta(f))
	dst = binary.AppendUvarint(dst, uint64(len(d)))
	dst = append(dst, d...)
	for _, b := range buckets {
		dst = binary.AppendVarint(dst, b.Start)
		dst = binary.AppendUvarint(dst, b.Packets)
		dst = binary.AppendUvarint(dst, b.Bytes)
	}
	return dst
}

var errBadFlowBuckets = errors.New("malformed flow-with-buckets record")

// parseFlowBuckets decodes a recFlowBuckets body.
func parseFlowBuckets(body []byte) (*netwatchv1.FlowDelta, []store.BucketTraffic, error) {
	n, k := binary.Uvarint(body)
	if k <= 0 || n > uint64(len(body)-k) {
		return nil, nil, errBadFlowBuckets
	}
	d := &netwatchv1.FlowDelta{}
	if err := proto.Unmarshal(body[k:k+int(n)], d); err != nil {
		return nil, nil, err
	}
	var buckets []store.BucketTraffic
	for p := body[k+int(n):]; len(p) > 0; {
		var b store.BucketTraffic
		var k1, k2, k3 int
		b.Start, k1 = binary.Varint(p)
		if k1 > 0 {
			b.Packets, k2 = binary.Uvarint(p[k1:])
		}
		if k1 > 0 && k2 > 0 {
			b.Bytes, k3 = binary.Uvarint(p[k1+k2:])
		}
		if k1 <= 0 || k2 <= 0 || k3 <= 0 {
			return nil, nil, errBadFlowBuckets
		}
		buckets = append(buckets, b)
		p = p[k1+k2+k3:]
	}
	return d, buckets, nil
}

func marshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil { // only for invalid UTF-8 in strings, which the decoder already refused
		return nil
	}
	return b
}
