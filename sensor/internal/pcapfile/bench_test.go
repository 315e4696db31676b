package pcapfile

import (
	"os"
	"path/filepath"
	"testing"

	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/synth"
)

// BenchmarkFilePath reads a generated 4M-packet pcap (1M distinct frames
// written 4 times, 100k flows) through reader -> decoder -> table. One op is
// the whole file; packets/s is the figure of merit.
func BenchmarkFilePath(b *testing.B) {
	s, err := synth.Generate(synth.Config{Frames: 1 << 20, Flows: 100_000, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	const repeat = 4
	path := filepath.Join(b.TempDir(), "synth.pcap")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := synth.WritePcap(f, s, repeat); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	var dec decode.Decoder
	var packets uint64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		r, err := NewReader(f)
		if err != nil {
			b.Fatal(err)
		}
		t, err := flow.New(flow.DefaultConfig())
		if err != nil {
			b.Fatal(err)
		}
		st, err := Run(r, &dec, t, RunOptions{ExportInterval: 1e9, Emit: func(*flow.Delta) {}})
		if err != nil {
			b.Fatal(err)
		}
		t.Flush(flow.EndSensorStopped, func(*flow.Delta) {})
		if err := t.Close(); err != nil {
			b.Fatal(err)
		}
		f.Close()
		packets += st.Packets
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(packets)/sec, "packets/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(packets), "ns/packet")
}
