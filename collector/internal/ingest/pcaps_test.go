package ingest

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/testproc"
)

// TestRealSensorDeltasPassValidation runs the real sensor binary (built from the
// workspace) over every capture of the sensor's test data, exporting to a real
// ingest service over loopback gRPC: validation must refuse none of what the sensor
// makes of real traffic (IPv4 and IPv6, fragments, tunnels, truncated and bad
// packets, ICMP, VLANs, old captures), so its limits are not tighter than the
// sensor's own counting.
func TestRealSensorDeltasPassValidation(t *testing.T) {
	var captures []string
	for _, glob := range []string{filepath.Join(oracle.Dir(), "*.pcap*"), filepath.Join(oracle.DerivedDir(), "*.pcap*")} {
		m, err := filepath.Glob(glob)
		require.NoError(t, err)
		captures = append(captures, m...)
	}
	require.GreaterOrEqual(t, len(captures), 30, "the sensor's captures")
	bin := testproc.MustBuild(t, "netwatch.dev/sensor/cmd/netwatch-sensor")

	c := startCollector(t, "", nil)
	var batches uint64
	for _, path := range captures {
		id := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(path), ".pcap"), ".pcapng")
		// 100 ms export intervals: flows of the longer captures span several deltas.
		cmd := exec.Command(bin, "--read", path, "--collector", c.addr, "--sensor-id", id, "--export-interval", "100ms", "--log-level", "warn")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s", id, out)
		assert.NotContains(t, string(out), "refused", id)
	}
	assert.Zero(t, c.svc.RejectedBatches(), "batches refused")
	for _, s := range c.svc.Sensors() {
		assert.Zero(t, s.GetRejectedBatches(), "%s: %s", s.GetSensorId(), s.GetLastRejection())
		batches += s.GetBatches()
	}
	assert.Len(t, c.svc.Sensors(), len(captures), "every capture's sensor delivered")
	flows, packets, bytes := c.totals()
	t.Logf("%d captures: %d batches, %d flows, %d packets, %d bytes, none refused", len(captures), batches, flows, packets, bytes)
	assert.Positive(t, flows)
}
