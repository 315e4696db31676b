package output

import (
	"io"
	"math/rand/v2"
	"testing"

	"netwatch.dev/sensor/internal/flow"
)

// BenchmarkJSONL is --output jsonl's cost per flow record: deltas that each end a
// record (as Table.ExportEnded hands them out), half IPv6, written to io.Discard.
func BenchmarkJSONL(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	deltas := make([]flow.Delta, 1024)
	for i := range deltas {
		d := &deltas[i]
		d.Protocol = []uint8{6, 17, 1}[i%3]
		d.IsIPv6 = i%2 == 0
		for j := range d.SrcAddr {
			d.SrcAddr[j], d.DstAddr[j] = byte(r.IntN(256)), byte(r.IntN(256))
		}
		if !d.IsIPv6 {
			copy(d.SrcAddr[:12], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
			copy(d.DstAddr[:12], []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff})
		}
		d.SrcPort, d.DstPort = uint16(r.IntN(65536)), 443
		d.FirstSeen = 1_764_000_000_000_000_000 + r.Int64N(1e12)
		d.LastSeen = d.FirstSeen + r.Int64N(1e10)
		d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes = r.Uint64N(1e3), r.Uint64N(1e6), r.Uint64N(1e3), r.Uint64N(1e7)
		d.SrcTCPFlags, d.DstTCPFlags = 0x1b, 0x12
		d.Status, d.EndReason = flow.StatusClosed, flow.EndFIN
	}
	j := NewJSONL(io.Discard, "bench-sensor", 0)
	i := 0
	for b.Loop() {
		if err := j.Add(&deltas[i%len(deltas)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
