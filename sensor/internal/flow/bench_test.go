package flow

import (
	"fmt"
	"sync"
	"testing"

	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/synth"
)

// The benchmark stream: 1M 64-byte Ethernet/IPv4 TCP+UDP frames across 100k
// flows, 1 µs apart (so 1 s of packet time), as the brief specifies.
var benchStreams sync.Map // flows -> func() (*synth.Stream, error)

func benchStream(b *testing.B, flows int) *synth.Stream {
	f, _ := benchStreams.LoadOrStore(flows, sync.OnceValues(func() (*synth.Stream, error) {
		return synth.Generate(synth.Config{Frames: 1 << 20, Flows: flows, Seed: 1})
	}))
	s, err := f.(func() (*synth.Stream, error))()
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// warmTable returns a table holding every flow of s, in steady state.
func warmTable(b *testing.B, s *synth.Stream) *Table {
	t, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { t.Close() })
	var d decode.Decoder
	var p decode.Packet
	for i := range s.N {
		d.Decode(decode.LinkEthernet, s.Frame(i), &p)
		t.Add(&p, s.Timestamp(i))
	}
	t.Export(s.Timestamp(s.N-1), func(*Delta) {})
	return t
}

// BenchmarkDecodeAggregate is the per-packet hot path with Add: decode a
// 64-byte frame and add it to a table of 100k flows; Export once per second
// of packet time (every 1M packets), as a live sensor would. One op is one
// packet.
func BenchmarkDecodeAggregate(b *testing.B) {
	s := benchStream(b, 100_000)
	t := warmTable(b, s)
	var d decode.Decoder
	var p decode.Packet
	emit := func(*Delta) {}
	base := int64(s.N)
	b.ReportAllocs()
	i, ts := 0, s.Timestamp(0)+base*s.StepNS
	for b.Loop() {
		if d.Decode(decode.LinkEthernet, s.Frame(i), &p).IsIP() {
			t.Add(&p, ts)
		}
		if i++; i == s.N { // once per second of packet time
			t.Export(ts, emit)
			i = 0
		}
		ts += s.StepNS
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}

// BenchmarkDecodeAggregateBatch is the same with packets decoded into a batch
// of BatchSize and added with AddBatch, the way the sensor's pipeline drives
// the table (reading a file and capturing). flows=100000 is the brief's stream; flows=10000 fits
// in the CPU caches and shows the cost without memory stalls.
func BenchmarkDecodeAggregateBatch(b *testing.B) {
	for _, flows := range []int{100_000, 10_000} {
		b.Run(fmt.Sprint("flows=", flows), func(b *testing.B) {
			s := benchStream(b, flows)
			t := warmTable(b, s)
			var (
				d    decode.Decoder
				pkts [BatchSize]decode.Packet
				tss  [BatchSize]int64
				nb   int
			)
			emit := func(*Delta) {}
			base := int64(s.N)
			b.ReportAllocs()
			i, ts := 0, s.Timestamp(0)+base*s.StepNS
			for b.Loop() {
				if d.Decode(decode.LinkEthernet, s.Frame(i), &pkts[nb]).IsIP() {
					tss[nb] = ts
					if nb++; nb == BatchSize {
						t.AddBatch(pkts[:], tss[:])
						nb = 0
					}
				}
				if i++; i == s.N { // once per second of packet time
					t.AddBatch(pkts[:nb], tss[:nb])
					nb = 0
					t.Export(ts, emit)
					i = 0
				}
				ts += s.StepNS
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
		})
	}
}

// BenchmarkAggregateBatch is AddBatch alone on pre-decoded packets (100k
// flows). One op is one batch of BatchSize packets.
func BenchmarkAggregateBatch(b *testing.B) {
	s := benchStream(b, 100_000)
	t := warmTable(b, s)
	var d decode.Decoder
	pkts := make([]decode.Packet, s.N)
	tss := make([]int64, s.N)
	for i := range s.N {
		d.Decode(decode.LinkEthernet, s.Frame(i), &pkts[i])
		tss[i] = s.Timestamp(i)
	}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		t.AddBatch(pkts[n:n+BatchSize], tss[n:n+BatchSize])
		if n += BatchSize; n+BatchSize > s.N {
			n = 0
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/BatchSize, "ns/packet")
}

// BenchmarkExportScan is the cost of an Export with ~630k flows in the table,
// none of them changed or idle: the sequential pass that looks for idle flows.
// One op is one Export.
func BenchmarkExportScan(b *testing.B) {
	s, err := synth.Generate(synth.Config{Frames: 1 << 20, Flows: 1 << 20, Seed: 2})
	if err != nil {
		b.Fatal(err)
	}
	t := warmTable(b, s)
	now := s.Timestamp(s.N - 1)
	emit := func(*Delta) { b.Fatal("nothing should be exported") }
	for b.Loop() {
		t.Export(now, emit)
	}
	b.ReportMetric(float64(t.Stats().Flows), "flows")
}
