package api

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// benchHandler is the real HTTP handler over a store of 5,000 flows (a quarter of
// them IPv6, from two sensors).
func benchHandler(b *testing.B) http.Handler {
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	st := store.New(store.DefaultConfig())
	for s, sensor := range []string{"sensor-a", "sensor-b"} {
		deltas := make([]*netwatchv1.FlowDelta, 2500)
		for i := range deltas {
			x := uint64(s*len(deltas)+i) * 0x9E3779B97F4A7C15
			src, dst := make([]byte, 4), make([]byte, 4)
			if i%4 == 0 {
				src, dst = make([]byte, 16), make([]byte, 16)
				src[0], dst[0] = 0x20, 0xfd
			}
			binary.BigEndian.PutUint32(src[len(src)-4:], 10<<24|uint32(x%20000))
			binary.BigEndian.PutUint32(dst[len(dst)-4:], 172<<24|uint32(x>>16%2000))
			first := now.Add(-30*time.Minute + time.Duration(x>>32%1800_000)*time.Millisecond)
			last := first.Add(time.Duration(x>>20%120_000) * time.Millisecond)
			deltas[i] = &netwatchv1.FlowDelta{
				Key: &netwatchv1.FlowKey{Protocol: []uint32{6, 6, 17}[x>>24%3], SrcAddr: src, DstAddr: dst,
					SrcPort: uint32(1024 + i%60000), DstPort: []uint32{443, 80, 53}[x>>28%3]},
				FirstSeen: timestamppb.New(first), LastSeen: timestamppb.New(last),
				SrcPackets: 1 + x>>40%50, SrcBytes: 60 + x>>36%50000, DstPackets: x >> 44 % 50, DstBytes: x >> 30 % 500000,
				SrcTcpFlags: 0x12, DstTcpFlags: 0x19, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
			}
		}
		st.Apply(sensor, deltas, now)
	}
	h, err := NewHandler(context.Background(), query.New(st, "bench", func() time.Time { return now }), Options{Now: func() time.Time { return now }})
	if err != nil {
		b.Fatal(err)
	}
	return h
}

// BenchmarkFlowsREST is GET /api/v1/flows?limit=1000 through the whole handler.
func BenchmarkFlowsREST(b *testing.B) {
	benchGet(b, "/api/v1/flows?limit=1000", 1000)
}

// BenchmarkFlowsCSV is the CSV download of all 5,000 flows through the whole handler.
func BenchmarkFlowsCSV(b *testing.B) {
	benchGet(b, "/api/v1/flows?format=csv", 5000)
}

func benchGet(b *testing.B, url string, flows int) {
	h := benchHandler(b)
	var n int64
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", url, rec.Code, rec.Body)
		}
		n, _ = io.Copy(io.Discard, rec.Body)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(flows), "ns/flow")
	b.SetBytes(n)
}
