package query

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func delta(src, dst string, sport uint16, first, last time.Time, srcB, dstB, packets uint64) *netwatchv1.FlowDelta {
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: 6, SrcAddr: netip.MustParseAddr(src).AsSlice(), SrcPort: uint32(sport),
			DstAddr: netip.MustParseAddr(dst).AsSlice(), DstPort: 443},
		SrcPackets: packets, SrcBytes: srcB, DstBytes: dstB,
		FirstSeen: timestamppb.New(first), LastSeen: timestamppb.New(last),
		Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
	}
}

// requireParamError checks err is InvalidArgument naming param in its message and
// in its BadRequest detail (which the REST layer turns into details.parameter).
func requireParamError(t *testing.T, err error, param string, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	st, ok := status.FromError(err)
	require.True(t, ok, msgAndArgs...)
	assert.Equal(t, codes.InvalidArgument, st.Code(), msgAndArgs...)
	assert.Contains(t, st.Message(), param, msgAndArgs...)
	var field string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			field = br.GetFieldViolations()[0].GetField()
		}
	}
	assert.Equal(t, param, field, msgAndArgs...)
}

func TestTopTalkersRankWindowTrafficOnly(t *testing.T) {
	st := store.New(store.DefaultConfig())
	clk := &clock{t0.Add(30 * time.Second)}
	svc := New(st, "test", clk.now)
	now := clk.t
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	st.Apply("s1", []*netwatchv1.FlowDelta{
		delta("10.0.0.1", "10.0.0.2", 1, ago(3*time.Minute), ago(time.Minute), 800, 200, 10),      // A
		delta("10.0.0.1", "10.0.0.3", 2, ago(3*time.Minute), ago(2*time.Minute), 500, 0, 5),       // B
		delta("10.0.0.4", "10.0.0.2", 3, ago(time.Minute), ago(30*time.Second), 300, 0, 3),        // C
		delta("10.0.0.5", "10.0.0.6", 4, ago(11*time.Minute), ago(10*time.Minute), 10000, 0, 100), // D: outside
		delta("10.0.0.4", "10.0.0.6", 5, ago(9*time.Minute), ago(8*time.Minute), 4000, 0, 40),     // E, outside part
		delta("10.0.0.4", "10.0.0.6", 5, ago(9*time.Minute), ago(time.Minute), 150, 50, 2),        // E, inside part
	}, now)

	resp, err := svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{})
	require.NoError(t, err)
	assert.Equal(t, "5m", resp.GetTimeWindow())
	assert.Equal(t, now, resp.GetGeneratedAt().AsTime())
	type row struct {
		host         string
		bytes, pkts  uint64
		flows, rank  uint32
		pct          float64
		topFlowPorts []uint32
	}
	var got []row
	for _, tt := range resp.GetTopTalkers() {
		r := row{tt.GetIdentifier(), tt.GetTotalBytes(), tt.GetTotalPackets(), tt.GetFlowCount(), tt.GetRank(), tt.GetPercentageOfTotal(), nil}
		assert.Equal(t, tt.GetIdentifier(), tt.GetDisplayName())
		for _, f := range tt.GetFlows() {
			r.topFlowPorts = append(r.topFlowPorts, f.GetSrcPort())
		}
		got = append(got, r)
	}
	// Window bytes: A 1000, B 500, C 300, E 200 (D and E's first 4000 are older): 2000.
	assert.Equal(t, []row{
		{"10.0.0.1", 1500, 15, 2, 1, 75, []uint32{1, 2}},
		{"10.0.0.2", 1300, 13, 2, 2, 65, []uint32{1, 3}},
		{"10.0.0.3", 500, 5, 1, 3, 25, []uint32{2}},
		{"10.0.0.4", 500, 5, 2, 4, 25, []uint32{3, 5}}, // ties 10.0.0.3 on bytes and packets: address order
		{"10.0.0.6", 200, 2, 1, 5, 10, []uint32{5}},
	}, got)
	// The drill-down flows are the stored records: E's lifetime bytes.
	assert.Equal(t, uint64(4200), resp.GetTopTalkers()[3].GetFlows()[1].GetBytes())

	resp, err = svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{Limit: "2", Duration: "15m"})
	require.NoError(t, err)
	assert.Equal(t, "15m", resp.GetTimeWindow())
	require.Len(t, resp.GetTopTalkers(), 2)
	// 15 minutes covers everything: 10.0.0.6 has D 10000 + E 4200.
	assert.Equal(t, "10.0.0.6", resp.GetTopTalkers()[0].GetIdentifier())
	assert.Equal(t, uint64(14200), resp.GetTopTalkers()[0].GetTotalBytes())
	assert.InDelta(t, 14200.0*100/16000, resp.GetTopTalkers()[0].GetPercentageOfTotal(), 1e-9)

	// Moving the clock moves the window: 20 minutes later nothing is inside.
	clk.t = now.Add(20 * time.Minute)
	resp, err = svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{})
	require.NoError(t, err)
	assert.Empty(t, resp.GetTopTalkers())
	assert.NotNil(t, resp.GetTopTalkers(), "an empty list, not null")
}

func TestBadParametersNameThemselves(t *testing.T) {
	svc := New(store.New(store.DefaultConfig()), "test", time.Now)
	ctx := context.Background()
	for _, tc := range []struct {
		req   *netwatchv1.ListTopTalkersRequest
		param string
	}{
		{&netwatchv1.ListTopTalkersRequest{Limit: "0"}, "limit"},
		{&netwatchv1.ListTopTalkersRequest{Limit: "51"}, "limit"},
		{&netwatchv1.ListTopTalkersRequest{Limit: "ten"}, "limit"},
		{&netwatchv1.ListTopTalkersRequest{Duration: "30s"}, "duration"},
		{&netwatchv1.ListTopTalkersRequest{Duration: "61m"}, "duration"},
		{&netwatchv1.ListTopTalkersRequest{Duration: "5"}, "duration"},
	} {
		_, err := svc.ListTopTalkers(ctx, tc.req)
		requireParamError(t, err, tc.param, "top talkers %v", tc.req)
	}
	for _, tc := range []struct {
		req   *netwatchv1.GetMetricsHistoryRequest
		param string
	}{
		{&netwatchv1.GetMetricsHistoryRequest{Duration: "10m"}, "duration"},
		{&netwatchv1.GetMetricsHistoryRequest{Duration: "forever"}, "duration"},
		{&netwatchv1.GetMetricsHistoryRequest{Interval: "2s"}, "interval"},
		{&netwatchv1.GetMetricsHistoryRequest{Interval: "x"}, "interval"},
	} {
		_, err := svc.GetMetricsHistory(ctx, tc.req)
		requireParamError(t, err, tc.param, "history %v", tc.req)
	}
	for _, tc := range []struct {
		req   *netwatchv1.ListFlowsRequest
		param string
	}{
		{&netwatchv1.ListFlowsRequest{Limit: "1001"}, "limit"},
		{&netwatchv1.ListFlowsRequest{Limit: "0"}, "limit"},
		{&netwatchv1.ListFlowsRequest{Offset: "-1"}, "offset"},
		{&netwatchv1.ListFlowsRequest{SrcIp: "10.0.0.0/33"}, "src_ip"},
		{&netwatchv1.ListFlowsRequest{DstIp: "2001:db8::/129"}, "dst_ip"},
		{&netwatchv1.ListFlowsRequest{Protocol: "tcpx"}, "protocol"},
		{&netwatchv1.ListFlowsRequest{Protocol: "256"}, "protocol"},
		{&netwatchv1.ListFlowsRequest{Port: "65536"}, "port"},
		{&netwatchv1.ListFlowsRequest{TimeStart: "noon"}, "time_start"},
		{&netwatchv1.ListFlowsRequest{TimeEnd: "noon"}, "time_end"},
		{&netwatchv1.ListFlowsRequest{TimeStart: "2026-11-25T12:00:00Z", TimeEnd: "2026-11-25T11:00:00Z"}, "time_end"},
		{&netwatchv1.ListFlowsRequest{Status: "open"}, "status"},
		{&netwatchv1.ListFlowsRequest{SortBy: "name"}, "sort_by"},
		{&netwatchv1.ListFlowsRequest{SortOrder: "up"}, "sort_order"},
		{&netwatchv1.ListFlowsRequest{Format: "xml"}, "format"},
		{&netwatchv1.ListFlowsRequest{Q: "color:red"}, "q"},
		{&netwatchv1.ListFlowsRequest{Q: "port:1 port:2"}, "q"},
		{&netwatchv1.ListFlowsRequest{Q: "port:99999"}, "port"},
	} {
		_, err := svc.ListFlows(ctx, tc.req)
		requireParamError(t, err, tc.param, "flows %v", tc.req)
	}
}

func TestListFlowsHidesFlowsPastRetention(t *testing.T) {
	scfg := store.DefaultConfig()
	scfg.Retention = 10 * time.Minute
	st := store.New(scfg)
	clk := &clock{t0}
	svc := New(st, "test", clk.now)
	st.Apply("s1", []*netwatchv1.FlowDelta{delta("10.0.0.1", "10.0.0.2", 1, t0, t0, 1, 1, 1)}, t0)
	count := func() uint64 {
		resp, err := svc.ListFlows(context.Background(), &netwatchv1.ListFlowsRequest{})
		require.NoError(t, err)
		return resp.GetPagination().GetTotalCount()
	}
	clk.t = t0.Add(10 * time.Minute)
	assert.Equal(t, uint64(1), count(), "kept up to the boundary")
	clk.t = t0.Add(10*time.Minute + time.Nanosecond)
	assert.Equal(t, uint64(0), count(), "gone past it, before Expire runs")
}

func TestMetricsHistoryDownsamples(t *testing.T) {
	h := NewMetricsHistory(time.Hour)
	now := t0.Add(29 * time.Second) // 12:00:29
	// Seconds 12:00:10 .. 12:00:29 except 12:00:22; pps = the second, memory varies,
	// flows = the second, drops = twice the second.
	for sec := 10; sec <= 29; sec++ {
		if sec == 22 {
			continue
		}
		h.Record(t0.Add(time.Duration(sec)*time.Second), MetricsPoint{
			CPU: float64(sec), Memory: uint64(100 + sec%7), ActiveFlows: uint64(sec),
			PacketsPerSecond: uint64(sec), BytesPerSecond: uint64(1000 * sec), Dropped: uint64(2 * sec),
		})
	}
	h.Record(now.Add(-6*time.Minute), MetricsPoint{PacketsPerSecond: 1e6}) // outside 5m
	h.RecordSensor(now, "s1", MetricsPoint{PacketsPerSecond: 7})

	type pt struct {
		at                   time.Time
		cpu                  float64
		mem, flows, pps, bps uint64
		drops                uint64
	}
	view := func(ms []*netwatchv1.SystemMetrics) (out []pt) {
		for _, m := range ms {
			out = append(out, pt{m.GetTimestamp().AsTime(), m.GetCpuUsage(), m.GetMemoryUsage(), m.GetActiveFlows(),
				m.GetPacketsPerSecond(), m.GetBytesPerSecond(), m.GetDroppedPackets()})
		}
		return out
	}
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// 5s: averages of cpu/pps/bps, max memory (100 + second%7), last flows and drops;
	// 12:00:22 is missing.
	got := view(h.Query("", now, 5*time.Minute, 5*time.Second))
	require.Len(t, got, 4)
	assert.Equal(t, pt{sec(10), 12, 106, 14, 12, 12000, 28}, got[0])
	assert.Equal(t, pt{sec(15), 17, 105, 19, 17, 17000, 38}, got[1])
	assert.Equal(t, pt{sec(20), 22, 106, 24, 22, 22000, 48}, got[2])
	assert.Equal(t, pt{sec(25), 27, 106, 29, 27, 27000, 58}, got[3])

	got = view(h.Query("", now, 5*time.Minute, 30*time.Second))
	require.Len(t, got, 1)
	sum := 0
	for s := 10; s <= 29; s++ {
		if s != 22 {
			sum += s
		}
	}
	assert.Equal(t, uint64(sum/19), got[0].pps)
	assert.Equal(t, sec(0), got[0].at)

	got = view(h.Query("", now, 15*time.Minute, time.Minute))
	require.Len(t, got, 2, "the 6-minute-old point is inside 15m")
	assert.Equal(t, uint64(1e6), got[0].pps)

	assert.Len(t, h.Query("s1", now, 5*time.Minute, time.Second), 1)
	latest, at, ok := h.Latest("")
	require.True(t, ok)
	assert.Equal(t, sec(29), at)
	assert.Equal(t, MetricsPoint{CPU: 29, Memory: 101, ActiveFlows: 29, PacketsPerSecond: 29, BytesPerSecond: 29000, Dropped: 58}, latest)
	_, _, ok = h.Latest("nope")
	assert.False(t, ok)
	assert.Empty(t, h.Query("nope", now, 5*time.Minute, time.Second))
	// An hour later the ring slots have other seconds; old points are not returned.
	assert.Empty(t, h.Query("", now.Add(time.Hour), time.Hour, time.Minute))
}

func TestSampleMetricsDerivesRatesFromTheStore(t *testing.T) {
	st := store.New(store.DefaultConfig())
	clk := &clock{t0}
	svc := New(st, "test", clk.now)
	svc.SampleMetrics(t0)
	st.Apply("s1", []*netwatchv1.FlowDelta{delta("10.0.0.1", "10.0.0.2", 1, t0, t0, 3000, 1000, 40)}, t0)
	svc.SampleMetrics(t0.Add(2 * time.Second))
	clk.t = t0.Add(2 * time.Second)
	resp, err := svc.GetMetricsHistory(context.Background(), &netwatchv1.GetMetricsHistoryRequest{Duration: "5m", Interval: "1s"})
	require.NoError(t, err)
	assert.Equal(t, "1s", resp.GetInterval())
	assert.Equal(t, "5m", resp.GetDuration())
	require.Len(t, resp.GetMetrics(), 2)
	last := resp.GetMetrics()[1]
	assert.Equal(t, uint64(20), last.GetPacketsPerSecond(), "40 packets over 2 seconds")
	assert.Equal(t, uint64(2000), last.GetBytesPerSecond())
	assert.Equal(t, uint64(1), last.GetActiveFlows())
	assert.NotZero(t, last.GetMemoryUsage())
}

// TestTopTalkersCache: with CacheTopTalkers an answer is reused for its TTL (same
// limit, window and side), then computed again; concurrent callers share one scan.
func TestTopTalkersCache(t *testing.T) {
	st := store.New(store.DefaultConfig())
	clk := &clock{t0.Add(30 * time.Second)}
	svc := New(st, "test", clk.now)
	svc.CacheTopTalkers(time.Second)
	top := func(limit string) string {
		resp, err := svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{Limit: limit})
		require.NoError(t, err)
		if len(resp.GetTopTalkers()) == 0 {
			return ""
		}
		return resp.GetTopTalkers()[0].GetIdentifier()
	}
	st.Apply("s1", []*netwatchv1.FlowDelta{delta("10.0.0.1", "10.0.0.2", 1, clk.t.Add(-time.Minute), clk.t, 100, 0, 1)}, clk.t)
	assert.Equal(t, "10.0.0.1", top("1"))
	st.Apply("s1", []*netwatchv1.FlowDelta{delta("10.0.0.7", "10.0.0.8", 2, clk.t.Add(-time.Minute), clk.t, 9999, 0, 1)}, clk.t)
	assert.Equal(t, "10.0.0.1", top("1"), "within the TTL the cached answer is reused")
	assert.Equal(t, "10.0.0.7", top("2"), "another limit is another answer")
	clk.t = clk.t.Add(time.Second)
	assert.Equal(t, "10.0.0.7", top("1"), "after the TTL it is computed again")

	var wg sync.WaitGroup
	clk.t = clk.t.Add(time.Second)
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); assert.Equal(t, "10.0.0.7", top("1")) }()
	}
	wg.Wait()
}
