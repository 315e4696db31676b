package telemetry

import (
	"bufio"
	"io"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/promtext/promcheck"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// sources is a store holding one flow, two sensors (one with a label value that
// needs escaping), a further counter and gauge, and a latency histogram with a
// few requests.
func sources(t *testing.T) Sources {
	t.Helper()
	st := store.New(store.DefaultConfig())
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st.Apply("s1", []*netwatchv1.FlowDelta{{
		Key:        &netwatchv1.FlowKey{Protocol: 6, SrcAddr: []byte{10, 0, 0, 1}, SrcPort: 1234, DstAddr: []byte{10, 0, 0, 2}, DstPort: 443},
		SrcPackets: 3, SrcBytes: 300, DstPackets: 2, DstBytes: 1200,
		FirstSeen: timestamppb.New(now.Add(-time.Second)), LastSeen: timestamppb.New(now),
	}}, now)
	lat := NewLatency(Endpoint{"rest", "/api/v1/flows"}, Endpoint{"grpc", "ListFlows"})
	lat.Observe(Endpoint{"rest", "/api/v1/flows"}, 3*time.Millisecond)
	lat.Observe(Endpoint{"rest", "/api/v1/flows"}, 700*time.Millisecond)
	lat.Observe(Endpoint{"rest", "/api/v1/flows"}, time.Minute)
	lat.Observe(Endpoint{"grpc", `Odd"name\`}, 250*time.Millisecond)
	return Sources{
		Store:   st,
		Latency: lat,
		Sensors: func() []*netwatchv1.Sensor {
			return []*netwatchv1.Sensor{
				{SensorId: "s1", Connected: true, LagMs: 1500, Batches: 7, KernelDrops: 1, LostFlows: 2, LostPackets: 3, RejectedBatches: 4},
				{SensorId: "rack \"4\"\nb\\c", Stale: true},
			}
		},
		Counters: []Counter{{Name: "netwatch_collector_requests_limited_total", Help: "Requests refused by the rate limit.", Value: func() uint64 { return 5 }}},
		Gauges:   []Counter{{Name: "netwatch_collector_wal_bytes", Help: "Bytes of the durable log.", Value: func() uint64 { return 4096 }}},
		RSS:      func() uint64 { return 1 << 20 },
	}
}

// TestExposition: /metrics is exactly this text, with its content type.
func TestExposition(t *testing.T) {
	srv := httptest.NewServer(Handler(sources(t)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	want, err := os.ReadFile("testdata/metrics.txt")
	require.NoError(t, err)
	assert.Equal(t, string(want), string(body))
}

// TestPromtoolAcceptsTheExposition: Prometheus's own checker finds nothing wrong
// with the text (syntax, and its lint rules for names, types and help).
func TestPromtoolAcceptsTheExposition(t *testing.T) {
	promcheck.Lint(t, func(w *bufio.Writer) { Write(w, sources(t)) })
}
