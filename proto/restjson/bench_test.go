package restjson_test

import (
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// BenchmarkMarshalListFlows is the REST body of one full ListFlows page (1,000
// flows, a quarter IPv6) as the gateway's marshaler writes it.
func BenchmarkMarshalListFlows(b *testing.B) {
	resp := &netwatchv1.ListFlowsResponse{Pagination: &netwatchv1.Pagination{TotalCount: 5000, HasMore: true, Limit: 1000}}
	first := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 1000 {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{172, 16, byte(i), 1})
		if i%4 == 0 {
			src, dst = netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 14: byte(i >> 8), 15: byte(i)}), netip.MustParseAddr("2001:db8::53")
		}
		fs, ls := first.Add(time.Duration(i)*time.Millisecond), first.Add(time.Duration(i)*time.Second+1234567)
		resp.Flows = append(resp.Flows, &netwatchv1.NetworkFlow{
			FlowKey: flowmeta.ID("sensor-a", 6, src, uint16(1024+i), dst, 443, fs.UnixNano()),
			SrcIp:   src.String(), DstIp: dst.String(), SrcPort: uint32(1024 + i), DstPort: 443,
			Protocol: 6, ProtocolName: "tcp", Bytes: uint64(1000 * i), Packets: uint64(2 * i),
			FirstSeen: timestamppb.New(fs), LastSeen: timestamppb.New(ls), Duration: ls.Sub(fs).Milliseconds(),
			Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, SrcPackets: uint64(i), SrcBytes: uint64(300 * i),
			DstPackets: uint64(i), DstBytes: uint64(700 * i), SensorId: "sensor-a",
			SrcTcpFlags: flowmeta.TCPFlags(0x1b), DstTcpFlags: flowmeta.TCPFlags(0x12),
		})
	}
	var n int
	for b.Loop() {
		n = len(restjson.Marshal(resp))
	}
	b.SetBytes(int64(n))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/flow")
}
