package store

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/common/flagconfig"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

type dl struct {
	src, dst         string
	sport, dport     uint32
	proto            uint32
	first, last      time.Time
	srcPk, srcB      uint64
	dstPk, dstB      uint64
	status           netwatchv1.FlowStatus
	end              netwatchv1.EndReason
	srcFlag, dstFlag uint32
	name, app        string // server name, application
}

func (d dl) delta() *netwatchv1.FlowDelta {
	if d.proto == 0 {
		d.proto = 6
	}
	if d.last.IsZero() {
		d.last = d.first
	}
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: d.proto, SrcAddr: netip.MustParseAddr(d.src).AsSlice(), SrcPort: d.sport,
			DstAddr: netip.MustParseAddr(d.dst).AsSlice(), DstPort: d.dport},
		SrcPackets: d.srcPk, SrcBytes: d.srcB, DstPackets: d.dstPk, DstBytes: d.dstB,
		FirstSeen: timestamppb.New(d.first), LastSeen: timestamppb.New(d.last),
		Status: d.status, EndReason: d.end, SrcTcpFlags: d.srcFlag, DstTcpFlags: d.dstFlag,
		ServerName: d.name, Application: d.app,
	}
}

func all(s *Store) []Flow {
	var out []Flow
	s.Scan(func(*Flow) bool { return true }, func(f Flow) { out = append(out, f) })
	slices.SortFunc(out, func(a, b Flow) int { return int(a.FirstSeen - b.FirstSeen) })
	return out
}

func TestApplySumsDeltasInPlace(t *testing.T) {
	s := New(DefaultConfig())
	base := dl{src: "192.168.1.10", dst: "10.0.0.1", sport: 50000, dport: 443, first: t0}
	d1, d2 := base, base
	d1.last, d1.srcPk, d1.srcB, d1.dstPk, d1.dstB, d1.srcFlag = t0.Add(time.Second), 2, 120, 1, 60, 0x02
	d1.status = netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE
	d2.last, d2.srcPk, d2.srcB, d2.dstPk, d2.dstB, d2.srcFlag, d2.dstFlag = t0.Add(3*time.Second), 3, 300, 4, 4000, 0x11, 0x12
	d2.status, d2.end = netwatchv1.FlowStatus_FLOW_STATUS_CLOSED, netwatchv1.EndReason_END_REASON_FIN
	s.Apply("s1", []*netwatchv1.FlowDelta{d1.delta()}, t0.Add(time.Second))
	// Same 5-tuple, other sensor, other first_seen, IPv6 form: three more records.
	other := base
	other.first = t0.Add(time.Minute)
	v6 := dl{src: "2001:db8::1", dst: "2001:db8::2", sport: 1, dport: 2, first: t0.Add(2 * time.Minute), srcPk: 1, srcB: 100}
	s.Apply("s1", []*netwatchv1.FlowDelta{d2.delta(), other.delta(), v6.delta()}, t0.Add(4*time.Second))
	s.Apply("s2", []*netwatchv1.FlowDelta{base.delta()}, t0.Add(5*time.Second))
	// Unusable keys are counted, not stored.
	bad := base.delta()
	bad.Key.SrcAddr = []byte{1, 2, 3}
	badPort := base.delta()
	badPort.Key.DstPort = 70000
	s.Apply("s1", []*netwatchv1.FlowDelta{bad, badPort}, t0)

	require.Equal(t, 4, s.Len())
	st := s.Stats()
	assert.Equal(t, uint64(2), st.Rejected)
	assert.Equal(t, uint64(5), st.Deltas)
	assert.Equal(t, uint64(2+1+3+4+1), st.Packets)
	assert.Equal(t, uint64(120+60+300+4000+100), st.Bytes)

	flows := all(s)
	var got Flow
	for _, f := range flows {
		if f.SensorID == "s1" && f.FirstSeen == t0.UnixNano() {
			got = f
		}
	}
	assert.Equal(t, Flow{
		Key: Key{SensorID: "s1", Protocol: 6, Src: netip.MustParseAddr("192.168.1.10"), Dst: netip.MustParseAddr("10.0.0.1"),
			SrcPort: 50000, DstPort: 443, FirstSeen: t0.UnixNano()},
		SrcPackets: 5, SrcBytes: 420, DstPackets: 5, DstBytes: 4060,
		LastSeen: t0.Add(3 * time.Second).UnixNano(), SrcTCPFlags: 0x13, DstTCPFlags: 0x12,
		Status: netwatchv1.FlowStatus_FLOW_STATUS_CLOSED, EndReason: netwatchv1.EndReason_END_REASON_FIN,
		ReceivedAt: t0.Add(4 * time.Second).UnixNano(),
	}, got)
	assert.True(t, got.Src.Is4(), "4-byte addresses come back as IPv4")
	for _, f := range flows {
		if f.Protocol == 6 && f.SrcPort == 1 {
			assert.Equal(t, netip.MustParseAddr("2001:db8::1"), f.Src)
		}
	}
	assert.NotEqual(t, flows[0].ID(), flows[1].ID())
}

func TestWindowCountsOnlyWhatWasTransferredInside(t *testing.T) {
	s := New(DefaultConfig())
	now := t0.Add(30 * time.Second) // 12:00:30; a 5m window counts buckets 11:55..12:00
	old := dl{src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 80, first: now.Add(-12 * time.Minute)}
	long := dl{src: "10.0.0.3", dst: "10.0.0.4", sport: 2, dport: 80, first: now.Add(-9 * time.Minute)}
	var deltas []*netwatchv1.FlowDelta
	// old: active 12 to 10 minutes ago only.
	for _, ago := range []time.Duration{12 * time.Minute, 11 * time.Minute, 10 * time.Minute} {
		d := old
		d.last, d.srcPk, d.srcB = now.Add(-ago), 1, 1000
		deltas = append(deltas, d.delta())
	}
	// long: one delta a minute from 9 minutes ago to now, 100 bytes + 10 back each.
	for ago := 9; ago >= 0; ago-- {
		d := long
		d.last, d.srcPk, d.srcB, d.dstPk, d.dstB = now.Add(-time.Duration(ago)*time.Minute), 1, 100, 1, 10
		deltas = append(deltas, d.delta())
	}
	s.Apply("s1", deltas, now)

	window := func(d time.Duration) map[string][2]uint64 {
		out := map[string][2]uint64{}
		s.Window(now.Add(-d), now, func(w WindowFlow) {
			out[s.HostAddr(w.SrcHost).String()] = [2]uint64{w.Bytes, w.Packets}
		})
		return out
	}
	// 5m window: buckets 11:55 .. 12:00 hold the deltas 5, 4, 3, 2, 1 and 0 minutes ago
	// (at :30 past each minute).
	assert.Equal(t, map[string][2]uint64{"10.0.0.3": {6 * 110, 12}}, window(5*time.Minute))
	assert.Equal(t, map[string][2]uint64{"10.0.0.3": {10 * 110, 20}, "10.0.0.1": {2000, 2}}, window(11*time.Minute))
	assert.Len(t, window(time.Minute), 1)

	// The lifetime totals are untouched by windows.
	for _, f := range all(s) {
		if f.Src.String() == "10.0.0.3" {
			assert.Equal(t, uint64(1100), f.SrcBytes+f.DstBytes)
		}
	}
	// A ref from the window resolves to the flow.
	s.Window(now.Add(-time.Minute), now, func(w WindowFlow) {
		f, ok := s.Get(w.Ref)
		assert.True(t, ok)
		assert.Equal(t, s.HostAddr(w.SrcHost), f.Src)
		assert.Equal(t, s.HostAddr(w.DstHost), f.Dst)
	})
}

func TestRetentionCountsFromReceiveTime(t *testing.T) {
	s := New(configWith(func(c *Config) { c.Retention = 10 * time.Minute }))
	// Packets from a day ago (a replayed capture), received at t0.
	replay := dl{src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, first: t0.Add(-24 * time.Hour), srcPk: 1, srcB: 10}
	live := dl{src: "10.0.0.3", dst: "10.0.0.4", sport: 1, dport: 2, first: t0, srcPk: 1, srcB: 10}
	s.Apply("s1", []*netwatchv1.FlowDelta{replay.delta()}, t0)
	s.Apply("s1", []*netwatchv1.FlowDelta{live.delta()}, t0.Add(time.Minute))

	assert.Equal(t, 0, s.Expire(t0.Add(10*time.Minute)), "exactly at the boundary the flow stays")
	assert.Equal(t, 2, s.Len())
	page, total := s.Query(Filter{Protocol: -1, Port: -1, ReceivedSince: t0.Add(time.Nanosecond).UnixNano()}, Order{}, 0, 10)
	assert.Equal(t, 1, total, "queries hide flows past retention before Expire runs")
	require.Len(t, page, 1)
	assert.Equal(t, "10.0.0.3", page[0].Src.String())

	assert.Equal(t, 1, s.Expire(t0.Add(10*time.Minute+time.Nanosecond)))
	require.Equal(t, 1, s.Len())
	assert.Equal(t, "10.0.0.3", all(s)[0].Src.String())
	// An update moves the flow's expiry.
	s.Apply("s1", []*netwatchv1.FlowDelta{live.delta()}, t0.Add(5*time.Minute))
	assert.Equal(t, 0, s.Expire(t0.Add(15*time.Minute)))
	assert.Equal(t, 1, s.Expire(t0.Add(15*time.Minute+time.Nanosecond)))
	assert.Equal(t, uint64(2), s.Stats().Expired)
	assert.Equal(t, 0, s.Len())
}

func TestMaxFlowsEvictsTheOldestIdle(t *testing.T) {
	s := New(configWith(func(c *Config) { c.MaxFlows = 3 }))
	flow := func(i int) *netwatchv1.FlowDelta {
		return dl{src: fmt.Sprintf("10.0.0.%d", i), dst: "10.1.0.1", sport: 1000, dport: 80, first: t0, srcPk: 1, srcB: 100}.delta()
	}
	for i := 1; i <= 3; i++ {
		s.Apply("s1", []*netwatchv1.FlowDelta{flow(i)}, t0.Add(time.Duration(i)*time.Second))
	}
	s.Apply("s1", []*netwatchv1.FlowDelta{flow(1)}, t0.Add(4*time.Second)) // 1 is no longer the oldest-idle
	s.Apply("s1", []*netwatchv1.FlowDelta{flow(4), flow(5)}, t0.Add(5*time.Second))
	assert.Equal(t, 3, s.Len())
	assert.Equal(t, uint64(2), s.Stats().Evicted)
	var srcs []string
	for _, f := range all(s) {
		srcs = append(srcs, f.Src.String())
	}
	slices.Sort(srcs)
	assert.Equal(t, []string{"10.0.0.1", "10.0.0.4", "10.0.0.5"}, srcs)
	// The evicted flows' bucket entries no longer count, even once their slots are reused.
	var bytes uint64
	s.Window(t0.Add(-time.Minute), t0.Add(time.Minute), func(w WindowFlow) { bytes += w.Bytes })
	assert.Equal(t, uint64(400), bytes, "flow 1 twice, 4 and 5")
}

// TestChurnKeepsTheIndexExact removes and re-adds many flows in one shard table and
// checks every live flow is still found (an index bug would duplicate or lose flows).
func TestChurnKeepsTheIndexExact(t *testing.T) {
	s := New(configWith(func(c *Config) { c.Retention = time.Minute }))
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]*netwatchv1.FlowDelta, 20000)
	for i := range keys {
		keys[i] = dl{src: fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), dst: "10.255.0.1", sport: uint32(rng.IntN(65536)), dport: 53, proto: 17,
			first: t0, srcPk: 1, srcB: 1}.delta()
	}
	// Even flows received at t0, odd at t0+2m; expiring at t0+1m30s drops the even ones.
	for i, d := range keys {
		s.Apply("s1", []*netwatchv1.FlowDelta{d}, t0.Add(time.Duration(i%2)*2*time.Minute))
	}
	require.Equal(t, 20000, s.Len())
	require.Equal(t, 10000, s.Expire(t0.Add(90*time.Second)))
	for i := 1; i < len(keys); i += 2 {
		s.Apply("s1", []*netwatchv1.FlowDelta{keys[i]}, t0.Add(3*time.Minute))
	}
	assert.Equal(t, 10000, s.Len(), "every odd flow was found again")
	for _, f := range all(s) {
		require.Equal(t, uint64(2), f.SrcPackets, f.Src.String())
	}
	for i := 0; i < len(keys); i += 2 {
		s.Apply("s1", []*netwatchv1.FlowDelta{keys[i]}, t0.Add(3*time.Minute))
	}
	assert.Equal(t, 20000, s.Len())
}

// TestQueryMatchesAReferenceScan compares filtered, sorted, paged queries with a
// brute-force evaluation over Scan.
func TestQueryMatchesAReferenceScan(t *testing.T) {
	s := New(DefaultConfig())
	rng := rand.New(rand.NewPCG(3, 4))
	protos := []uint32{6, 17, 1}
	var deltas []*netwatchv1.FlowDelta
	for i := range 5000 {
		src := fmt.Sprintf("192.168.%d.%d", rng.IntN(4), rng.IntN(256))
		if i%10 == 0 {
			src = fmt.Sprintf("2001:db8::%x", rng.IntN(1000))
		}
		dst := "10.0.0.1"
		if i%10 == 0 {
			dst = "2001:db8:1::1"
		}
		first := t0.Add(time.Duration(rng.IntN(3600)) * time.Second)
		deltas = append(deltas, dl{src: src, dst: dst, sport: uint32(rng.IntN(65536)), dport: []uint32{80, 443, 53}[rng.IntN(3)],
			proto: protos[rng.IntN(3)], first: first, last: first.Add(time.Duration(rng.IntN(600)) * time.Second),
			srcPk: uint64(rng.IntN(100)), srcB: uint64(rng.IntN(100000)), status: netwatchv1.FlowStatus(1 + rng.IntN(3))}.delta())
	}
	s.Apply("s1", deltas[:2500], t0)
	s.Apply("s2", deltas[2500:], t0)
	key := func(f *Flow, by SortField) int64 {
		switch by {
		case ByBytes:
			return int64(f.SrcBytes + f.DstBytes)
		case ByPackets:
			return int64(f.SrcPackets + f.DstPackets)
		case ByDuration:
			return f.LastSeen - f.FirstSeen
		case ByFirstSeen:
			return f.FirstSeen
		}
		return f.LastSeen
	}
	for _, tc := range []struct {
		name   string
		f      Filter
		o      Order
		offset int
		limit  int
	}{
		{"everything, newest first", Filter{Protocol: -1, Port: -1}, Order{ByLastSeen, true}, 0, 100},
		{"by bytes ascending, near the end", Filter{Protocol: -1, Port: -1}, Order{ByBytes, false}, 4900, 200},
		{"src prefix and TCP, by bytes", Filter{Src: netip.MustParsePrefix("192.168.1.0/24"), Protocol: 6, Port: -1}, Order{ByBytes, true}, 10, 50},
		{"dst prefix and port 443, by duration", Filter{Dst: netip.MustParsePrefix("2001:db8::/32"), Protocol: -1, Port: 443}, Order{ByDuration, true}, 0, 1000},
		{"port, sensor and idle status, by first seen", Filter{Protocol: -1, Port: 53, Sensor: "s2", Status: netwatchv1.FlowStatus_FLOW_STATUS_IDLE}, Order{ByFirstSeen, false}, 3, 7},
		{"a one-minute window, by packets", Filter{Protocol: -1, Port: -1, Start: t0.Add(30 * time.Minute).UnixNano(), End: t0.Add(31 * time.Minute).UnixNano()}, Order{ByPackets, true}, 0, 20},
		{"unknown sensor", Filter{Protocol: -1, Port: -1, Sensor: "nope"}, Order{}, 0, 10},
		{"IPv4-mapped src prefix", Filter{Src: netip.MustParsePrefix("::ffff:0:0/96"), Protocol: -1, Port: -1}, Order{}, 0, 10},
		{"offset past the end", Filter{Protocol: -1, Port: -1}, Order{ByBytes, true}, 6000, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page, total := s.Query(tc.f, tc.o, tc.offset, tc.limit)
			var want []Flow
			s.Scan(func(f *Flow) bool {
				return (!tc.f.Src.IsValid() || tc.f.Src.Contains(f.Src)) && (!tc.f.Dst.IsValid() || tc.f.Dst.Contains(f.Dst)) &&
					(tc.f.Protocol < 0 || int(f.Protocol) == tc.f.Protocol) &&
					(tc.f.Port < 0 || int(f.SrcPort) == tc.f.Port || int(f.DstPort) == tc.f.Port) &&
					(tc.f.Start == 0 || f.LastSeen >= tc.f.Start) && (tc.f.End == 0 || f.FirstSeen <= tc.f.End) &&
					(tc.f.Sensor == "" || f.SensorID == tc.f.Sensor) && (tc.f.Status == 0 || f.Status == tc.f.Status)
			}, func(f Flow) { want = append(want, f) })
			require.Equal(t, len(want), total)
			slices.SortStableFunc(want, func(a, b Flow) int {
				ka, kb := key(&a, tc.o.By), key(&b, tc.o.By)
				if tc.o.Desc {
					ka, kb = kb, ka
				}
				return int(min(max(ka-kb, -1), 1))
			})
			want = want[min(tc.offset, len(want)):min(tc.offset+tc.limit, len(want))]
			require.Len(t, page, len(want))
			for j := range page {
				require.Equal(t, key(&want[j], tc.o.By), key(&page[j], tc.o.By), "row %d", j)
			}
			// Pages do not overlap: the next page starts after this one.
			if len(page) > 0 {
				next, _ := s.Query(tc.f, tc.o, tc.offset+len(page), tc.limit)
				for _, a := range page {
					for _, b := range next {
						require.NotEqual(t, a.ID(), b.ID(), "a flow on two pages")
					}
				}
			}
		})
	}
}

func TestSelectK(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 2, 3, 10, 100, 1000} {
		for _, k := range []int{1, n / 2, n} {
			if k == 0 {
				continue
			}
			a := make([]cand, n)
			for i := range a {
				a[i] = cand{k: int64(rng.IntN(20)), ref: FlowRef(i)}
			}
			sorted := slices.Clone(a)
			slices.SortFunc(sorted, candCmp)
			selectK(a, k)
			got := slices.Clone(a[:k])
			slices.SortFunc(got, candCmp)
			require.Equal(t, sorted[:k], got, "n=%d k=%d", n, k)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	require.NoError(t, DefaultConfig().Check())
	for _, tc := range []struct {
		name  string
		set   func(*Config)
		field string
	}{
		{"retention below a minute", func(c *Config) { c.Retention = time.Second }, "Retention: "},
		{"zero retention is not the default", func(c *Config) { c.Retention = 0 }, "Retention: "},
		{"negative max flows", func(c *Config) { c.MaxFlows = -1 }, "MaxFlows: "},
		{"zero max flows is not the default", func(c *Config) { c.MaxFlows = 0 }, "MaxFlows: "},
		{"bucket width not dividing a minute", func(c *Config) { c.BucketWidth = 7 * time.Second }, "BucketWidth: "},
		{"bucket width above a minute", func(c *Config) { c.BucketWidth = 2 * time.Minute }, "BucketWidth: "},
		{"zero bucket width is not the default", func(c *Config) { c.BucketWidth = 0 }, "BucketWidth: "},
		{"zero sensor ids is not the default", func(c *Config) { c.MaxSensorIDs = 0 }, "MaxSensorIDs: "},
		{"more sensor ids than a uint16 numbers", func(c *Config) { c.MaxSensorIDs = DefaultMaxSensorIDs + 1 }, "MaxSensorIDs: "},
		{"zero server names is not the default", func(c *Config) { c.MaxServerNames = 0 }, "MaxServerNames: "},
		{"more server names than a record's 20 bits number", func(c *Config) { c.MaxServerNames = 1 << 20 }, "MaxServerNames: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := configWith(tc.set).Check()
			require.Error(t, err)
			var fe *flagconfig.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.field, fe.Field+": ", err.Error())
		})
	}
	require.Error(t, Config{}.Check(), "zero values are not defaults")
}

// configWith is DefaultConfig changed by set.
func configWith(set func(*Config)) Config {
	c := DefaultConfig()
	set(&c)
	return c
}

// whileIngesting calls round(0), round(1)... for 300 ms while two goroutines apply
// one delta after another to s (delta(w, i) of writer w, received at t0 + i ms), and
// stops them before it returns.
func whileIngesting(s *Store, delta func(w, i int) (sensor string, d dl), round func(i int)) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				sensor, d := delta(w, i)
				s.Apply(sensor, []*netwatchv1.FlowDelta{d.delta()}, t0.Add(time.Duration(i)*time.Millisecond))
			}
		})
	}
	defer wg.Wait()
	defer close(stop)
	deadline := time.Now().Add(300 * time.Millisecond)
	for i := 0; time.Now().Before(deadline); i++ {
		round(i)
	}
}

// TestConcurrentIngestQueryExpire runs ingest, queries, windows, scans, eviction and
// expiry together (run it with -race).
func TestConcurrentIngestQueryExpire(t *testing.T) {
	s := New(configWith(func(c *Config) { c.MaxFlows = 3000; c.Retention = time.Minute }))
	whileIngesting(s, func(w, i int) (string, dl) {
		return fmt.Sprintf("s%d", w), dl{src: fmt.Sprintf("10.%d.%d.%d", w, i>>8&255, i&255), dst: "10.255.0.1", sport: uint32(i % 7), dport: 80,
			first: t0, last: t0.Add(time.Duration(i%120) * time.Second), srcPk: 1, srcB: 100}
	}, func(i int) {
		page, total := s.Query(Filter{Protocol: 6, Port: 80}, Order{ByBytes, true}, 0, 50)
		require.LessOrEqual(t, len(page), total)
		s.Window(t0, t0.Add(5*time.Minute), func(w WindowFlow) { require.NotZero(t, w.Bytes) })
		s.Scan(func(*Flow) bool { return true }, func(Flow) {})
		s.Expire(t0.Add(time.Duration(i) * time.Millisecond))
	})
	assert.LessOrEqual(t, s.Len(), 3000)
	st := s.Stats()
	n := 0
	s.Scan(func(*Flow) bool { return true }, func(Flow) { n++ })
	assert.Equal(t, s.Len(), n, "the counter matches the records")
	assert.NotZero(t, st.Evicted+st.Expired)
}

// TestScanBucketsAndRestoreKeepWindows: a flow taken out with ScanBuckets and put
// into another store with Restore answers every window question as before, where
// Apply of its totals would put all of its traffic in the bucket of its last packet.
func TestScanBucketsAndRestoreKeepWindows(t *testing.T) {
	s := New(DefaultConfig())
	now := t0.Add(30 * time.Second)
	long := dl{src: "10.0.0.3", dst: "10.0.0.4", sport: 2, dport: 80, first: now.Add(-9 * time.Minute)}
	short := dl{src: "10.0.0.5", dst: "10.0.0.6", sport: 3, dport: 53, proto: 17, first: now.Add(-2 * time.Minute)}
	var deltas []*netwatchv1.FlowDelta
	for ago := 9; ago >= 0; ago-- {
		d := long
		d.last, d.srcPk, d.srcB, d.dstPk, d.dstB = now.Add(-time.Duration(ago)*time.Minute), 1, 100*uint64(ago+1), 1, 10
		deltas = append(deltas, d.delta())
	}
	d := short
	d.last, d.srcPk, d.srcB = now.Add(-time.Minute), 3, 300
	deltas = append(deltas, d.delta())
	s.Apply("s1", deltas, now)

	type taken struct {
		f       Flow
		buckets []BucketTraffic
	}
	var out []taken
	s.ScanBuckets(func(*Flow) bool { return true }, func(f Flow, b []BucketTraffic) {
		out = append(out, taken{f, slices.Clone(b)})
	})
	require.Len(t, out, 2)

	restored, naive := New(DefaultConfig()), New(DefaultConfig())
	for _, tk := range out {
		f := tk.f
		total := &netwatchv1.FlowDelta{
			Key: &netwatchv1.FlowKey{Protocol: uint32(f.Protocol), SrcAddr: f.Src.AsSlice(), SrcPort: uint32(f.SrcPort),
				DstAddr: f.Dst.AsSlice(), DstPort: uint32(f.DstPort)},
			SrcPackets: f.SrcPackets, SrcBytes: f.SrcBytes, DstPackets: f.DstPackets, DstBytes: f.DstBytes,
			FirstSeen: timestamppb.New(time.Unix(0, f.FirstSeen)), LastSeen: timestamppb.New(time.Unix(0, f.LastSeen)),
			Status: f.Status,
		}
		restored.Restore(f.SensorID, total, time.Unix(0, f.ReceivedAt), tk.buckets)
		naive.Apply(f.SensorID, []*netwatchv1.FlowDelta{total}, time.Unix(0, f.ReceivedAt))
	}
	window := func(st *Store, d time.Duration) map[string][2]uint64 {
		m := map[string][2]uint64{}
		st.Window(now.Add(-d), now, func(w WindowFlow) { m[st.HostAddr(w.SrcHost).String()] = [2]uint64{w.Bytes, w.Packets} })
		return m
	}
	for _, w := range []time.Duration{time.Minute, 3 * time.Minute, 5 * time.Minute, 15 * time.Minute} {
		assert.Equal(t, window(s, w), window(restored, w), "window %v", w)
	}
	assert.NotEqual(t, window(s, 3*time.Minute), window(naive, 3*time.Minute), "the totals alone lose the per-minute split")
	assert.Equal(t, all(s), all(restored))
	assert.Equal(t, s.Stats().Flows, restored.Stats().Flows)
}
