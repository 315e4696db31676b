package decode

import (
	"sync"
	"testing"

	"netwatch.dev/sensor/internal/synth"
)

var benchStream = sync.OnceValues(func() (*synth.Stream, error) {
	return synth.Generate(synth.Config{Frames: 1 << 20, Flows: 100_000, Seed: 1})
})

// BenchmarkDecode decodes 64-byte Ethernet/IPv4 TCP and UDP frames; one op
// is one frame.
func BenchmarkDecode(b *testing.B) {
	s, err := benchStream()
	if err != nil {
		b.Fatal(err)
	}
	var d Decoder
	var p Packet
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if !d.Decode(LinkEthernet, s.Frame(i), &p).IsIP() {
			b.Fatal("not IP")
		}
		if i++; i == s.N {
			i = 0
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}
