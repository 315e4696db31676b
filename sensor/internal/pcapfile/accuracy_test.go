// The oracle tests read the captures through the sensor's own offline path
// (pipeline: reader → filter → decoder → flow table → exports), as --read does.
package pcapfile_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/oracle"
	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/export"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/pipeline"
)

var (
	pcapDir    = oracle.Dir()
	derivedDir = oracle.DerivedDir() // cut from pcapDir's captures, with their own oracle output
)

func captures(t testing.TB) []string {
	names, err := oracle.Captures(pcapDir)
	require.NoError(t, err)
	require.Len(t, names, 30, "captures in %s", pcapDir)
	return names
}

// everyCapture is captures and the derived ones.
func everyCapture(t testing.TB) []string {
	derived, err := oracle.Captures(derivedDir)
	require.NoError(t, err)
	require.NotEmpty(t, derived, "captures in %s", derivedDir)
	return append(captures(t), derived...)
}

// runCapture reads a capture through the sensor's offline pipeline with flow table
// configuration cfg, exporting every exportEvery of packet time, and returns every
// delta as a record, with the decoder's and the table's counters.
func runCapture(t *testing.T, path string, cfg flow.Config, exportEvery time.Duration) ([]oracle.Record, decode.Counters, flow.Stats) {
	t.Helper()
	var records []oracle.Record
	pc := pipeline.Config{Read: path, Capture: capture.DefaultConfig(""), Flow: cfg, Export: export.DefaultConfig()}
	pc.Export.Interval = exportEvery
	pc.Deltas = func(ds []flow.Delta) {
		for i := range ds {
			d := &ds[i]
			records = append(records, oracle.Record{
				Proto: d.Protocol, Src: d.Src().String(), SrcPort: d.SrcPort, Dst: d.Dst().String(), DstPort: d.DstPort,
				SrcPackets: d.SrcPackets, SrcBytes: d.SrcBytes, DstPackets: d.DstPackets, DstBytes: d.DstBytes,
				FirstSeen: d.FirstSeen, LastSeen: d.LastSeen,
			})
		}
	}
	p, err := pipeline.New(pc, slog.New(slog.DiscardHandler), io.Discard)
	require.NoError(t, err)
	require.NoError(t, p.Run(context.Background()))
	dec, tables := p.Counters()
	require.Len(t, dec, 1, "one flow table reading a file")
	return records, dec[0], tables[0]
}

// TestOracleAccuracy runs every shared capture through reader -> decoder ->
// flow table and compares the flows with the oracle's. Timeouts are far
// longer than any capture, and Export runs every 10 ms of packet time, so
// the test also checks that deltas sum to the totals.
func TestOracleAccuracy(t *testing.T) {
	for _, path := range everyCapture(t) {
		name := oracle.Name(path)
		t.Run(name, func(t *testing.T) {
			want, sum, err := oracle.Load(filepath.Dir(path), name)
			require.NoError(t, err)
			cfg := flow.DefaultConfig()
			cfg.IdleTimeout, cfg.ActiveTimeout, cfg.FinLinger = 1000*time.Hour, 1000*time.Hour, 1000*time.Hour
			cfg.MaxFlows = 10_000
			records, c, ts := runCapture(t, path, cfg, 10*time.Millisecond)

			require.Equal(t, sum.Frames, c.Frames, "frames")
			require.Equal(t, sum.NonIPFrames, c.ByResult[decode.ResultNonIP], "non_ip_frames (by kind %v)", c.NonIPKind)
			require.Equal(t, sum.MalformedIPFrames, c.ByResult[decode.ResultMalformed], "malformed_ip_frames")
			require.Zero(t, c.ByResult[decode.ResultUnsupportedLink], "unsupported link frames")
			require.Equal(t, sum.IPPackets, ts.Packets, "ip_packets")
			require.Equal(t, sum.IPBytes, ts.Bytes, "ip_bytes")
			require.Equal(t, sum.FragmentsAttributed, ts.FragmentsAttributed, "fragments_attributed")
			require.Equal(t, sum.FragmentsUnattributed, ts.FragmentsUnattributed, "fragments_unattributed")
			require.Len(t, want, sum.Flows)
			if err := oracle.Compare(want, oracle.Fold(want, records)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
}

// TestDefaultConfigConservesTotals runs every capture with the default
// timeouts (so flows end by FIN/RST, idle and active timeouts and are
// re-created) and a small table (so flows are evicted) and checks that no
// packet or byte is lost or counted twice.
func TestDefaultConfigConservesTotals(t *testing.T) {
	for _, path := range captures(t) {
		name := oracle.Name(path)
		_, sum, err := oracle.Load(pcapDir, name)
		require.NoError(t, err)
		cfg := flow.DefaultConfig()
		cfg.MaxFlows = 64 // small, to exercise eviction on the bigger captures
		records, _, _ := runCapture(t, path, cfg, time.Second)
		var pkts, bytes uint64
		for _, r := range records {
			pkts += r.SrcPackets + r.DstPackets
			bytes += r.SrcBytes + r.DstBytes
		}
		assert.Equal(t, sum.IPPackets, pkts, "%s: packets", name)
		assert.Equal(t, sum.IPBytes, bytes, "%s: bytes", name)
	}
}
