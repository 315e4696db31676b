package pipeline

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/oracle"
	"netwatch.dev/common/testproc"
	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/export"
	"netwatch.dev/sensor/internal/flow"
)

var pcapDir = oracle.Dir()

// readConfig reads a shared capture, exporting every second of packet time.
func readConfig(t *testing.T, name string) Config {
	t.Helper()
	path, err := filepath.Abs(filepath.Join(pcapDir, name))
	require.NoError(t, err)
	cfg := Config{Read: path, Capture: capture.DefaultConfig(""), Flow: flow.DefaultConfig(), Export: export.DefaultConfig()}
	cfg.Export.SensorID, cfg.Export.Interval = "pipeline-test", 1e9
	return cfg
}

// openFiles counts this process's descriptors open on path.
func openFiles(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

var discard = slog.New(slog.DiscardHandler)

// TestNewFailureReleasesWhatItBuilt: New opens the capture file first; when a later
// step fails (the exporter's CA file is missing) the file is closed again.
func TestNewFailureReleasesWhatItBuilt(t *testing.T) {
	cfg := readConfig(t, "pcapplusplus-DnsPackets.pcap")
	cfg.Export.Collector, cfg.Export.CAFile = "collector.example:9090", filepath.Join(t.TempDir(), "ca.pem")
	_, err := New(cfg, discard, io.Discard)
	var fe *flagconfig.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "Export.CAFile", fe.Field)
	assert.Zero(t, openFiles(t, cfg.Read), "the capture file is closed")
}

// TestStartFailureUndoesTheStepsBefore: Start starts the exporter, then listens for
// metrics; when the address is taken, Start fails, the exporter's sender is stopped
// and the capture file closed: the pipeline holds nothing, and a Stop after it
// returns at once.
func TestStartFailureUndoesTheStepsBefore(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	cfg := readConfig(t, "pcapplusplus-DnsPackets.pcap")
	cfg.Export.Collector, cfg.MetricsListen = testproc.FreeAddr(t), busy.Addr().String()
	before := len(testproc.Goroutines("netwatch.dev/sensor/internal/export.(*Exporter).run"))
	p, err := New(cfg, discard, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 1, openFiles(t, cfg.Read), "New opened the capture file")
	err = p.Start(context.Background())
	require.ErrorContains(t, err, "metrics-listen "+cfg.MetricsListen+": ")
	assert.Equal(t, before, len(testproc.Goroutines("netwatch.dev/sensor/internal/export.(*Exporter).run")), "no exporter sender left running")
	assert.Zero(t, openFiles(t, cfg.Read), "the capture file is closed")
	assert.NoError(t, p.Stop(context.Background()))
}

// TestCloseReleasesWithoutStarting: New then Close (what --check does) reads
// nothing and closes the capture file.
func TestCloseReleasesWithoutStarting(t *testing.T) {
	cfg := readConfig(t, "pcapplusplus-DnsPackets.pcap")
	var deltas int
	cfg.Deltas = func(ds []flow.Delta) { deltas += len(ds) }
	p, err := New(cfg, discard, io.Discard)
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Zero(t, openFiles(t, cfg.Read))
	assert.Zero(t, deltas, "nothing was read")
}

// TestStopEndsALoopingRead: a --loop read never ends by itself; Stop ends it, flushes
// every flow (end reason sensor-stopped) and closes the file.
func TestStopEndsALoopingRead(t *testing.T) {
	cfg := readConfig(t, "pcapplusplus-DnsPackets.pcap")
	cfg.Loop = true
	var (
		deltas   int
		stopped  int
		exported = make(chan struct{})
	)
	cfg.Deltas = func(ds []flow.Delta) {
		if deltas == 0 && len(ds) > 0 {
			close(exported)
		}
		deltas += len(ds)
		for i := range ds {
			if ds[i].EndReason == flow.EndSensorStopped {
				stopped++
			}
		}
	}
	p, err := New(cfg, discard, io.Discard)
	require.NoError(t, err)
	require.NoError(t, p.Start(context.Background()))
	select {
	case <-exported: // the read is under way
	case <-p.Done():
		t.Fatal("a looping read ended by itself")
	case <-time.After(30 * time.Second):
		t.Fatal("no export in 30 s")
	}
	require.NoError(t, p.Stop(context.Background()))
	<-p.Done()
	dec, _ := p.Counters()
	assert.Positive(t, dec[0].Frames)
	assert.Positive(t, deltas)
	assert.Positive(t, stopped, "the flows open at Stop end as sensor-stopped")
	assert.Zero(t, openFiles(t, cfg.Read))
}
