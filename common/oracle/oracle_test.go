package oracle

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/common/difftest"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// TestDirIsFoundFromAnyDirectory: the captures are found from the package's own
// source location, not from the working directory of the test that asks.
func TestDirIsFoundFromAnyDirectory(t *testing.T) {
	here, err := filepath.Abs("testdata")
	require.NoError(t, err)
	t.Chdir(t.TempDir())
	assert.Equal(t, filepath.Join(here, "pcaps"), Dir())
	assert.Equal(t, filepath.Join(here, "derived"), DerivedDir())
	caps, err := Captures(Dir())
	require.NoError(t, err)
	assert.Len(t, caps, 30, "captures in %s", Dir())
	derived, err := Captures(DerivedDir())
	require.NoError(t, err)
	assert.NotEmpty(t, derived, "captures in %s", DerivedDir())
	_, err = os.Stat(Path("ndpi-alexa-app.pcapng"))
	assert.NoError(t, err)
}

// TestLoadStored: every expected flow of Dir, once, each capture's under its name
// with as many flows as its summary counts and the statuses round robin.
func TestLoadStored(t *testing.T) {
	flows, err := LoadStored()
	require.NoError(t, err)
	require.Len(t, flows, 1137, "the flows of every expected/*.jsonl")
	perSensor := map[string]int{}
	keys := map[[2]any]bool{}
	for i, f := range flows {
		k := [2]any{f.Sensor, f.Delta().String()}
		require.False(t, keys[k], "duplicate flow in %s", f.Sensor)
		keys[k] = true
		perSensor[f.Sensor]++
		want := []netwatchv1.FlowStatus{netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, netwatchv1.FlowStatus_FLOW_STATUS_IDLE, netwatchv1.FlowStatus_FLOW_STATUS_CLOSED}[i%3]
		require.Equal(t, want, f.Status, "flow %d", i)
	}
	caps, err := Captures(Dir())
	require.NoError(t, err)
	total := 0
	for _, c := range caps {
		_, sum, err := Load(Dir(), Name(c))
		require.NoError(t, err)
		assert.Equal(t, sum.Flows, perSensor[Name(c)], "%s: flows of its summary", Name(c))
		total += sum.Flows
	}
	assert.Equal(t, len(flows), total, "every flow is a capture's")
}

// TestStoredDelta: the first flow of a capture, read from its JSON line, as the
// delta a collector test applies.
func TestStoredDelta(t *testing.T) {
	// {"src_ip": "10.0.0.1", "src_port": 56520, "dst_ip": "10.0.0.138", "dst_port": 53, "protocol": 17,
	//  "packets": 2, "bytes": 200, "fwd_packets": 1, "fwd_bytes": 60, "rev_packets": 1, "rev_bytes": 140,
	//  "first_seen": 1413054930.198203, "last_seen": 1413054930.215703}
	want, _, err := Load(Dir(), "pcapplusplus-DnsPackets")
	require.NoError(t, err)
	s := want[0].Stored("dns", netwatchv1.FlowStatus_FLOW_STATUS_IDLE)
	difftest.Equal(t, &netwatchv1.FlowDelta{
		Key:        &netwatchv1.FlowKey{Protocol: 17, SrcAddr: []byte{10, 0, 0, 1}, SrcPort: 56520, DstAddr: []byte{10, 0, 0, 138}, DstPort: 53},
		SrcPackets: 1, SrcBytes: 60, DstPackets: 1, DstBytes: 140,
		FirstSeen: timestamppb.New(time.Unix(1413054930, 198203000)), LastSeen: timestamppb.New(time.Unix(1413054930, 215703000)),
		Status: netwatchv1.FlowStatus_FLOW_STATUS_IDLE,
	}, s.Delta())
	assert.Equal(t, "dns", s.Sensor)
	assert.Equal(t, uint64(200), s.Bytes())
	assert.Equal(t, uint64(2), s.Packets())
	assert.Equal(t, time.UTC, s.FirstSeen.Location())
}

// TestLoadRefusesBadLines: a line that is not an expected flow is an error naming
// the file, not a zero flow.
func TestLoadRefusesBadLines(t *testing.T) {
	good := `{"src_ip": "10.0.0.1", "src_port": 1, "dst_ip": "10.0.0.2", "dst_port": 2, "protocol": 17, "packets": 1, "fwd_packets": 1, "fwd_bytes": 60, "rev_packets": 0, "rev_bytes": 0, "first_seen": 1.5, "last_seen": 1.5}`
	for _, tc := range []struct{ name, line string }{
		{"not JSON", "{"},
		{"bad source address", `{"src_ip": "10.0.0", "dst_ip": "10.0.0.2", "first_seen": 1, "last_seen": 1}`},
		{"bad destination address", `{"src_ip": "10.0.0.1", "dst_ip": "x", "first_seen": 1, "last_seen": 1}`},
		{"packets do not add up", `{"src_ip": "10.0.0.1", "dst_ip": "10.0.0.2", "packets": 2, "fwd_packets": 1, "first_seen": 1, "last_seen": 1}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.Mkdir(filepath.Join(dir, "expected"), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "expected", "x.jsonl"), []byte(good+"\n"+tc.line+"\n"), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "expected", "x.summary.json"), []byte(`{"flows": 2}`), 0o644))
			_, _, err := Load(dir, "x")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "x.jsonl")
		})
	}
	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "expected"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "expected", "x.jsonl"), []byte(good+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "expected", "x.summary.json"), []byte(`{"flows": 1}`), 0o644))
	flows, sum, err := Load(dir, "x")
	require.NoError(t, err, "the good line alone")
	assert.Equal(t, 1, sum.Flows)
	require.Len(t, flows, 1)
	assert.Equal(t, int64(1_500_000), flows[0].FirstSeenUS)
}
