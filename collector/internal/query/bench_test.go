package query

import (
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

var (
	benchNow  = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	benchSvc  *Service
	benchOnce sync.Once
)

// million is a service over 1,000,000 IPv4 flows of one delta each, from 20,000
// clients to 2,000 servers, their packets spread over the last hour.
func million() *Service {
	benchOnce.Do(func() {
		st := store.New(store.DefaultConfig())
		deltas := make([]*netwatchv1.FlowDelta, 1024)
		for i := range deltas {
			deltas[i] = &netwatchv1.FlowDelta{
				Key:       &netwatchv1.FlowKey{SrcAddr: make([]byte, 4), DstAddr: make([]byte, 4)},
				FirstSeen: &timestamppb.Timestamp{}, LastSeen: &timestamppb.Timestamp{},
			}
		}
		for start := 0; start < 1_000_000; start += len(deltas) {
			for j, d := range deltas {
				i := uint64(start + j)
				x := i * 0x9E3779B97F4A7C15
				binary.BigEndian.PutUint32(d.Key.SrcAddr, 10<<24|uint32(x%20000))
				binary.BigEndian.PutUint32(d.Key.DstAddr, 172<<24|16<<16|uint32(x>>16%2000))
				d.Key.Protocol = []uint32{6, 6, 17}[x>>24%3]
				d.Key.SrcPort, d.Key.DstPort = uint32(1024+i%60000), []uint32{443, 80, 53}[x>>28%3]
				first := benchNow.Add(-time.Hour + time.Duration(x>>32%3600_000)*time.Millisecond)
				last := first.Add(time.Duration(x>>20%120_000) * time.Millisecond)
				d.FirstSeen.Seconds, d.FirstSeen.Nanos = first.Unix(), int32(first.Nanosecond())
				d.LastSeen.Seconds, d.LastSeen.Nanos = last.Unix(), int32(last.Nanosecond())
				d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes = 1+x>>40%50, 60+x>>36%50000, x>>44%50, x>>30%500000
			}
			st.Apply("s1", deltas, benchNow)
		}
		benchSvc = New(st, "bench", func() time.Time { return benchNow })
	})
	return benchSvc
}

func percentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkListFlows1M is GET /api/v1/flows end to end below HTTP (parse, query,
// conversion of the page) over 1,000,000 flows.
func BenchmarkListFlows1M(b *testing.B) {
	svc := million()
	for _, tc := range []struct {
		name string
		req  *netwatchv1.ListFlowsRequest
	}{
		{"default", &netwatchv1.ListFlowsRequest{}},
		{"q_cidr_tcp_443_by_bytes", &netwatchv1.ListFlowsRequest{Q: "src_ip:10.0.0.0/20 protocol:tcp port:443", SortBy: "bytes"}},
		{"time_window_limit1000", &netwatchv1.ListFlowsRequest{TimeStart: "2026-11-25T12:50:00Z", TimeEnd: "2026-11-25T12:55:00Z", Limit: "1000", SortBy: "duration", SortOrder: "asc"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := svc.ListFlows(context.Background(), tc.req); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			percentiles(b, lat)
		})
	}
}

// BenchmarkTopTalkers1M ranks hosts over the 5- and 60-minute windows of 1,000,000 flows.
func BenchmarkTopTalkers1M(b *testing.B) {
	svc := million()
	for _, d := range []string{"5m", "60m"} {
		b.Run(d, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				start := time.Now()
				if _, err := svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{Duration: d, Limit: "50"}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			percentiles(b, lat)
		})
	}
}

// BenchmarkMetricsHistory downsamples an hour of per-second points.
func BenchmarkMetricsHistory(b *testing.B) {
	h := NewMetricsHistory(time.Hour)
	for s := range 3600 {
		h.Record(benchNow.Add(-time.Duration(s)*time.Second), MetricsPoint{PacketsPerSecond: uint64(s)})
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Query("", benchNow, time.Hour, 5*time.Second)
	}
}
