package query

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/oracle"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// dnsCapture loads pcapplusplus-DnsPackets (219 flows over 21 minutes) into a store
// whose clock stands 10 s after the capture's last packet.
func dnsCapture(t *testing.T) (*Service, *store.Store, *clock, []oracle.Stored) {
	t.Helper()
	all, err := oracle.LoadStored()
	require.NoError(t, err)
	var flows []oracle.Stored
	var last time.Time
	for _, f := range all {
		if f.Sensor == "pcapplusplus-DnsPackets" {
			flows = append(flows, f)
			if f.LastSeen.After(last) {
				last = f.LastSeen
			}
		}
	}
	require.Len(t, flows, 219)
	st := store.New(store.DefaultConfig())
	clk := &clock{last.Add(10 * time.Second)}
	st.Apply("dns", oracle.BySensor(flows)["pcapplusplus-DnsPackets"], clk.t)
	return New(st, "test", clk.now), st, clk, flows
}

type hostTotal struct {
	bytes, packets uint64
	flows          uint32
}

// expectedTalkers sums, independently of the store, what each host transferred in
// the window: a flow's whole traffic is one delta that counts in the bucket of its
// last packet, and the window starts at the beginning of the minute now-window
// falls in (the store's documented one-minute resolution).
func expectedTalkers(flows []oracle.Stored, now time.Time, window time.Duration, side string) (map[netip.Addr]hostTotal, uint64) {
	from := now.Add(-window).Truncate(time.Minute)
	out := map[netip.Addr]hostTotal{}
	var total uint64
	add := func(a netip.Addr, f *oracle.Stored) {
		h := out[a]
		h.bytes += f.Bytes()
		h.packets += f.Packets()
		h.flows++
		out[a] = h
	}
	for i := range flows {
		f := &flows[i]
		if f.LastSeen.Before(from) || f.LastSeen.After(now) {
			continue
		}
		total += f.Bytes()
		if side != "dst" {
			add(f.Src, f)
		}
		if side == "dst" || (side == "any" && f.Dst != f.Src) {
			add(f.Dst, f)
		}
	}
	return out, total
}

func TestTopTalkersMatchIndependentSums(t *testing.T) {
	svc, _, clk, flows := dnsCapture(t)
	ctx := context.Background()
	check := func(window time.Duration, side string) {
		want, total := expectedTalkers(flows, clk.t, window, side)
		resp, err := svc.ListTopTalkers(ctx, &netwatchv1.ListTopTalkersRequest{Limit: "50", Duration: formatDuration(window), By: side})
		require.NoError(t, err)
		got := resp.GetTopTalkers()
		require.Len(t, got, min(50, len(want)), "%s by %s", window, side)
		// The ranking: bytes desc, then packets desc, then address.
		hosts := make([]netip.Addr, 0, len(want))
		for h := range want {
			hosts = append(hosts, h)
		}
		slices.SortFunc(hosts, func(a, b netip.Addr) int {
			x, y := want[a], want[b]
			switch {
			case x.bytes != y.bytes:
				return cmpDesc(x.bytes, y.bytes)
			case x.packets != y.packets:
				return cmpDesc(x.packets, y.packets)
			}
			return a.Compare(b)
		})
		for i, tt := range got {
			h := hosts[i]
			w := want[h]
			assert.Equal(t, h.String(), tt.GetIdentifier(), "%s by %s rank %d", window, side, i+1)
			assert.Equal(t, w.bytes, tt.GetTotalBytes(), "%s by %s %s", window, side, h)
			assert.Equal(t, w.packets, tt.GetTotalPackets(), "%s by %s %s", window, side, h)
			assert.Equal(t, w.flows, tt.GetFlowCount(), "%s by %s %s", window, side, h)
			assert.Equal(t, uint32(i+1), tt.GetRank())
			assert.InDelta(t, float64(w.bytes)*100/float64(total), tt.GetPercentageOfTotal(), 1e-9)
			assert.LessOrEqual(t, len(tt.GetFlows()), TopFlowsPerHost)
		}
	}
	for _, w := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, 60 * time.Minute} {
		for _, side := range []string{"any", "src", "dst"} {
			check(w, side)
		}
	}
	// Move the clock: the capture's traffic slides out of the short windows (the
	// flows stay stored: retention counts from their receipt, 7 minutes ago).
	clk.t = clk.t.Add(7 * time.Minute)
	for _, side := range []string{"any", "src", "dst"} {
		check(5*time.Minute, side)
		check(15*time.Minute, side)
	}
	resp, err := svc.ListTopTalkers(ctx, &netwatchv1.ListTopTalkersRequest{Duration: "5m"})
	require.NoError(t, err)
	assert.Empty(t, resp.GetTopTalkers(), "nothing transferred in the last 5 minutes")
	_, err = svc.ListTopTalkers(ctx, &netwatchv1.ListTopTalkersRequest{By: "sideways"})
	requireParamError(t, err, "by")
}

func TestWindowedBytesMatchIndependentSums(t *testing.T) {
	_, st, clk, flows := dnsCapture(t)
	for _, step := range []time.Duration{0, 2 * time.Minute, 3 * time.Minute, 10 * time.Minute} {
		clk.t = clk.t.Add(step)
		for _, window := range []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute} {
			_, want := expectedTalkers(flows, clk.t, window, "any")
			var got uint64
			st.Window(clk.t.Add(-window), clk.t, func(w store.WindowFlow) { got += w.Bytes })
			assert.Equal(t, want, got, "window %s at +%s", window, step)
		}
	}
}

func TestTimeFiltersUsePacketTimeWithAMovedClock(t *testing.T) {
	svc, _, clk, flows := dnsCapture(t)
	ctx := context.Background()
	start := flows[0].FirstSeen.Add(5 * time.Minute)
	count := func() int {
		n := 0
		for _, f := range flows {
			if !f.LastSeen.Before(start) {
				n++
			}
		}
		return n
	}
	req := &netwatchv1.ListFlowsRequest{TimeStart: start.Format(time.RFC3339Nano), Limit: "1000"}
	received := clk.t
	for _, step := range []time.Duration{0, 30 * time.Minute, 59 * time.Minute} {
		clk.t = received.Add(step)
		resp, err := svc.ListFlows(ctx, req)
		require.NoError(t, err)
		assert.Equal(t, uint64(count()), resp.GetPagination().GetTotalCount(), "packet-time filter, whatever the clock (+%s)", step)
	}
}

func TestRetentionBoundaryIsExact(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.Retention = 10 * time.Minute
	st := store.New(cfg)
	clk := &clock{t0}
	svc := New(st, "test", clk.now)
	ctx := context.Background()
	st.Apply("s1", []*netwatchv1.FlowDelta{delta("10.0.0.1", "10.0.0.2", 1, t0.Add(-2*time.Hour), t0.Add(-2*time.Hour), 1, 1, 1)}, t0)
	st.Apply("s1", []*netwatchv1.FlowDelta{delta("10.0.0.1", "10.0.0.3", 2, t0, t0, 1, 1, 1)}, t0.Add(time.Second))
	total := func() uint64 {
		resp, err := svc.ListFlows(ctx, &netwatchv1.ListFlowsRequest{})
		require.NoError(t, err)
		return resp.GetPagination().GetTotalCount()
	}
	clk.t = t0.Add(10 * time.Minute)
	assert.Equal(t, uint64(2), total(), "exactly at the boundary the flow is still kept")
	assert.Equal(t, 0, st.Expire(clk.t))
	clk.t = t0.Add(10*time.Minute + time.Nanosecond)
	assert.Equal(t, uint64(1), total(), "one nanosecond later it is gone from answers (a replayed capture counts from receipt, not packet time)")
	assert.Equal(t, 1, st.Expire(clk.t))
	assert.Equal(t, 1, st.Len())
	clk.t = t0.Add(10*time.Minute + time.Second)
	assert.Equal(t, uint64(1), total())
	clk.t = t0.Add(10*time.Minute + time.Second + time.Nanosecond)
	assert.Equal(t, uint64(0), total())
	assert.Equal(t, 1, st.Expire(clk.t))
}

type fakeRegistry []*netwatchv1.Sensor

func (f fakeRegistry) Sensors() []*netwatchv1.Sensor { return f }

func TestHealthStatusAndReasons(t *testing.T) {
	up := &netwatchv1.SystemMetrics{InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP}
	down := &netwatchv1.SystemMetrics{InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_DOWN}
	for _, tc := range []struct {
		name    string
		sensors fakeRegistry
		fill    int // flows stored, of max 10
		drops   bool
		status  string
		reasons []string
		// problems of the collector's own; incomplete is the answer's flag.
		problems   []Problem
		incomplete bool
	}{
		{"no sensor", nil, 0, false, StatusUnhealthy, []string{"no sensor connected"}, nil, false},
		{"one good sensor", fakeRegistry{{SensorId: "s1", Connected: true, Metrics: up}}, 0, false, StatusHealthy, nil, nil, false},
		{"only sensor stale", fakeRegistry{{SensorId: "s1", Connected: true, Stale: true, Metrics: up}}, 0, false, StatusUnhealthy, []string{"no connected sensor is capturing", "sensor s1 is stale"}, nil, false},
		{"one of two stale", fakeRegistry{{SensorId: "s1", Connected: true, Metrics: up}, {SensorId: "s2", Connected: true, Stale: true, Metrics: up}}, 0, false, StatusDegraded, []string{"sensor s2 is stale"}, nil, false},
		{"interface down", fakeRegistry{{SensorId: "s1", Connected: true, Metrics: up}, {SensorId: "s2", Interface: "eth1", Connected: true, Metrics: down}}, 0, false, StatusDegraded, []string{"sensor s2: interface eth1 is down"}, nil, false},
		{"spool loss", fakeRegistry{{SensorId: "s1", Connected: true, Metrics: up, LostFlows: 3, LostPackets: 9}}, 0, false, StatusDegraded, []string{"sensor s1 lost 3 flow updates (9 packets) from a full spool"}, nil, false},
		{"kernel drops", fakeRegistry{{SensorId: "s1", Connected: true, Metrics: up}}, 0, true, StatusDegraded, []string{"sensor s1 dropped 40 packets in the last 5m"}, nil, false},
		{"near max-flows", fakeRegistry{{SensorId: "s1", Connected: true, Metrics: up}}, 9, false, StatusDegraded, []string{"store holds 9 flows, 90% of --max-flows 10"}, nil, false},
		{"collector fault, sensor fine", fakeRegistry{{SensorId: "s1", Connected: true, Metrics: up}}, 0, false, StatusUnhealthy,
			[]string{"data dir /d: no space left on device"}, []Problem{{Reason: "data dir /d: no space left on device", Unhealthy: true}}, false},
		{"collector lost data, listed first", fakeRegistry{{SensorId: "s1", Connected: true, Stale: true, Metrics: up}, {SensorId: "s2", Connected: true, Metrics: up}}, 0, false, StatusDegraded,
			[]string{"log segment wal-7 damaged", "sensor s1 is stale"}, []Problem{{Reason: "log segment wal-7 damaged", Incomplete: true}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scfg := store.DefaultConfig()
			scfg.MaxFlows = 10
			st := store.New(scfg)
			for i := range tc.fill {
				st.Apply("x", []*netwatchv1.FlowDelta{delta("10.0.0.1", "10.0.0.2", uint16(i+1), t0, t0, 1, 1, 1)}, t0)
			}
			clk := &clock{t0}
			svc := New(st, "test", clk.now)
			if tc.sensors != nil {
				svc.SetSensors(tc.sensors)
			}
			if tc.problems != nil {
				svc.SetProblems(func() []Problem { return tc.problems })
			}
			if tc.drops {
				svc.History().RecordSensor(t0.Add(-time.Minute), "s1", MetricsPoint{Dropped: 100})
				svc.History().RecordSensor(t0, "s1", MetricsPoint{Dropped: 140})
			}
			h, err := svc.GetHealth(context.Background(), &netwatchv1.GetHealthRequest{})
			require.NoError(t, err)
			assert.Equal(t, tc.status, h.GetStatus())
			assert.Equal(t, tc.incomplete || tc.name == "spool loss", h.GetIncomplete())
			require.Len(t, h.GetReasons(), len(tc.reasons), "%q", h.GetReasons())
			for i, r := range tc.reasons {
				assert.Contains(t, h.GetReasons()[i], r)
			}
		})
	}
}

func TestMetricsPerSensor(t *testing.T) {
	st := store.New(store.DefaultConfig())
	clk := &clock{t0}
	svc := New(st, "test", clk.now)
	svc.SetSensors(fakeRegistry{{SensorId: "s1", Connected: true, Metrics: &netwatchv1.SystemMetrics{CpuUsage: 12, DroppedPackets: 7}}})
	svc.History().RecordSensor(t0, "s1", MetricsPoint{PacketsPerSecond: 500, BytesPerSecond: 60000})
	svc.History().RecordSensor(t0, "gone", MetricsPoint{CPU: 3, ActiveFlows: 9})
	ctx := context.Background()
	m, err := svc.GetMetrics(ctx, &netwatchv1.GetMetricsRequest{Sensor: "s1"})
	require.NoError(t, err)
	assert.Equal(t, 12.0, m.GetMetrics().GetCpuUsage())
	assert.Equal(t, uint64(7), m.GetMetrics().GetDroppedPackets())
	assert.Equal(t, uint64(500), m.GetMetrics().GetPacketsPerSecond())
	m, err = svc.GetMetrics(ctx, &netwatchv1.GetMetricsRequest{Sensor: "gone"})
	require.NoError(t, err, "a sensor no longer in the registry but in the history")
	assert.Equal(t, uint64(9), m.GetMetrics().GetActiveFlows())
	_, err = svc.GetMetrics(ctx, &netwatchv1.GetMetricsRequest{Sensor: "nope"})
	assert.Equal(t, codes.NotFound, status.Code(err))
}
