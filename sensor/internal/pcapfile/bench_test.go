package pcapfile_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/export"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/pipeline"
	"netwatch.dev/sensor/internal/synth"
)

// BenchmarkFilePath reads a generated 4M-packet pcap (1M distinct frames
// written 4 times, 100k flows) through the sensor's offline pipeline (reader ->
// decoder -> table -> exports every second of packet time), as --read does. One
// op is the whole file; packets/s is the figure of merit.
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
	// No output: exports hand the flows that ended to the writer, as for --output jsonl.
	cfg := pipeline.Config{Read: path, Capture: capture.DefaultConfig(""), Flow: flow.DefaultConfig(), Export: export.DefaultConfig()}
	cfg.Export.Interval = time.Second
	log := slog.New(slog.DiscardHandler)
	var packets uint64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := pipeline.New(cfg, log, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Run(context.Background()); err != nil {
			b.Fatal(err)
		}
		dec, _ := p.Counters()
		packets += dec[0].Frames
	}
	sec := b.Elapsed().Seconds()
	b.ReportMetric(float64(packets)/sec, "packets/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(packets), "ns/packet")
}
