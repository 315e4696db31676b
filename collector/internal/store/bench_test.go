package store

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// benchNow is the collector's clock during the benchmarks: flows' packets span the
// hour before it.
var benchNow = time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)

// fill applies n distinct flows, one delta each, from 4 sensors: 90% IPv4 in
// 10.0.0.0/8 to 1,000 servers, 10% IPv6; tcp/udp/icmp; ports 443/80/53/random; first
// packets spread over the last hour, durations up to 10 minutes. Deltas are built in a
// reused batch so only the store's memory remains afterwards. With longEvery > 0,
// every longEvery-th flow is long-lived: it also gets a delta in each of the 59
// minutes before benchNow, so it holds 60 bucket entries.
func fill(s *Store, n, longEvery int) { fillHosts(s, n, longEvery, 0, false) }

// Labels of the labelled benchmarks: a Community ID per flow (1,024 distinct, as
// distinct as a million for the store: 20 raw bytes each), one of 5,000 server
// names for TLS and HTTP flows, an application label from a handful.
var (
	benchCIDs  [1024]string
	benchNames [5000]string
	benchApps  = [...]string{"tls", "tls", "http", "dns", "http-alt", "ssh"}
)

func init() {
	for i := range benchCIDs {
		var h [20]byte
		binary.BigEndian.PutUint64(h[:], uint64(i)*0x9E3779B97F4A7C15)
		binary.BigEndian.PutUint64(h[8:], uint64(i))
		benchCIDs[i] = "1:" + base64.StdEncoding.EncodeToString(h[:])
	}
	for i := range benchNames {
		benchNames[i] = fmt.Sprintf("host-%d.service-%d.example.com", i, i%97)
	}
}

// label sets delta i's labels (labels false: none).
func label(d *netwatchv1.FlowDelta, i int, labels bool) {
	d.CommunityId, d.ServerName, d.Application = "", "", ""
	if !labels {
		return
	}
	d.CommunityId = benchCIDs[i%len(benchCIDs)]
	d.Application = benchApps[i%len(benchApps)]
	if d.Application == "tls" || d.Application == "http" {
		d.ServerName = benchNames[i%len(benchNames)]
	}
}

// fillHosts is fill with the sources drawn from srcHosts addresses (0: one per flow),
// labelled or not.
func fillHosts(s *Store, n, longEvery, srcHosts int, labels bool) {
	const batch = 1024
	deltas := make([]*netwatchv1.FlowDelta, batch)
	for i := range deltas {
		deltas[i] = &netwatchv1.FlowDelta{
			Key:       &netwatchv1.FlowKey{SrcAddr: make([]byte, 16), DstAddr: make([]byte, 16)},
			FirstSeen: &timestamppb.Timestamp{}, LastSeen: &timestamppb.Timestamp{},
		}
	}
	for start := 0; start < n; start += batch {
		m := min(batch, n-start)
		for j := range m {
			i := start + j
			x := uint64(i) * 0x9E3779B97F4A7C15 // spread
			d := deltas[j]
			k := d.Key
			if i%10 == 9 {
				k.SrcAddr, k.DstAddr = k.SrcAddr[:16], k.DstAddr[:16]
				binary.BigEndian.PutUint64(k.SrcAddr[:8], 0x20010db800000000)
				binary.BigEndian.PutUint64(k.SrcAddr[8:], uint64(srcOf(i, srcHosts)))
				binary.BigEndian.PutUint64(k.DstAddr[:8], 0x20010db800010000)
				binary.BigEndian.PutUint64(k.DstAddr[8:], x%1000)
			} else {
				k.SrcAddr, k.DstAddr = k.SrcAddr[:4], k.DstAddr[:4]
				binary.BigEndian.PutUint32(k.SrcAddr, 10<<24|uint32(srcOf(i, srcHosts)))
				binary.BigEndian.PutUint32(k.DstAddr, 172<<24|16<<16|uint32(x%1000))
			}
			k.Protocol = []uint32{6, 6, 6, 17, 17, 1}[x%6]
			k.SrcPort = uint32(1024 + i%60000)
			k.DstPort = []uint32{443, 443, 80, 53, 8080, 22}[x>>8%6]
			first := benchNow.Add(-time.Hour + time.Duration(x%3600_000)*time.Millisecond)
			last := first.Add(time.Duration(x>>20%600_000) * time.Millisecond)
			d.FirstSeen.Seconds, d.FirstSeen.Nanos = first.Unix(), int32(first.Nanosecond())
			d.LastSeen.Seconds, d.LastSeen.Nanos = last.Unix(), int32(last.Nanosecond())
			d.SrcPackets, d.SrcBytes = 1+x>>30%100, 60+x>>35%100000
			d.DstPackets, d.DstBytes = x>>40%100, x>>45%1000000
			d.Status = netwatchv1.FlowStatus(1 + x>>50%3)
			label(d, i, labels)
		}
		sensor := fmt.Sprintf("sensor-%d", start/batch%4)
		s.Apply(sensor, deltas[:m], benchNow)
		if longEvery <= 0 {
			continue
		}
		var long []*netwatchv1.FlowDelta
		for j := range m {
			if (start+j)%longEvery == 0 {
				long = append(long, deltas[j])
			}
		}
		for minute := 1; minute < 60; minute++ {
			last := benchNow.Add(-time.Duration(minute) * time.Minute)
			for _, d := range long {
				d.FirstSeen.Seconds, d.FirstSeen.Nanos = benchNow.Add(-time.Hour).Unix(), 0
				d.LastSeen.Seconds, d.LastSeen.Nanos = last.Unix(), 0
			}
			s.Apply(sensor, long, benchNow)
		}
	}
}

func srcOf(i, hosts int) int {
	if hosts > 0 {
		return i % hosts
	}
	return i
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkHeapPerFlow measures the heap held per stored flow at 1M flows, index,
// bucket entries, host table and slack included. In the first two every flow has a
// source address of its own (hosts/flow is 1.0), the worst case for the host table;
// in the third the sources are 50,000 addresses, 20 flows each.
func BenchmarkHeapPerFlow(b *testing.B) {
	const n = 1_000_000
	for _, long := range []struct {
		name         string
		every, hosts int
		labels       bool
	}{{"short_flows", 0, 0, false}, {"5pct_hour_long", 20, 0, false}, {"short_flows_50k_hosts", 0, 50_000, false},
		{"short_flows_labelled", 0, 0, true}} {
		b.Run(long.name, func(b *testing.B) {
			for b.Loop() {
				before := heapAlloc()
				s := New(DefaultConfig())
				fillHosts(s, n, long.every, long.hosts, long.labels)
				after := heapAlloc()
				b.ReportMetric(float64(after-before)/float64(s.Len()), "B/flow")
				b.ReportMetric(float64(s.Stats().BucketEntries)/float64(s.Len()), "entries/flow")
				b.ReportMetric(float64(s.Hosts())/float64(s.Len()), "hosts/flow")
				runtime.KeepAlive(s)
			}
			// Hand the memory back so the benchmarks after this one do not pay for it.
			debug.FreeOSMemory()
		})
	}
}

// BenchmarkApply measures ingest: batches of 256 deltas, 3/4 updates of flows already
// stored, 1/4 new flows; labelled: every delta carries a Community ID and an
// application, half of them a server name (the worst case: a sensor sends them in
// every delta of a flow).
func BenchmarkApply(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchApply(b, false) })
	b.Run("labelled", func(b *testing.B) { benchApply(b, true) })
}

func benchApply(b *testing.B, labels bool) {
	s := New(DefaultConfig())
	fillHosts(s, 200_000, 0, 0, labels)
	const batch = 256
	deltas := make([]*netwatchv1.FlowDelta, batch)
	first := benchNow.Add(-time.Minute)
	for i := range deltas {
		deltas[i] = &netwatchv1.FlowDelta{
			Key:       &netwatchv1.FlowKey{Protocol: 6, SrcAddr: make([]byte, 4), DstAddr: []byte{192, 168, 0, 1}, DstPort: 443},
			FirstSeen: timestamppb.New(first), LastSeen: timestamppb.New(benchNow),
			SrcPackets: 10, SrcBytes: 5000, DstPackets: 8, DstBytes: 400, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		for j, d := range deltas {
			id := uint32(n*batch + j)
			if j%4 != 0 {
				id %= 100_000 // an existing flow
			}
			binary.BigEndian.PutUint32(d.Key.SrcAddr, 10<<24|id)
			d.Key.SrcPort = id % 65536
			label(d, int(id), labels)
		}
		s.Apply("bench", deltas, benchNow)
		n++
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "deltas/s")
}

var (
	oneMillion     *Store
	oneMillionOnce sync.Once
)

// BenchmarkQuery1M runs five representative queries over 1,000,000 flows and reports
// the latency percentiles of each.
func BenchmarkQuery1M(b *testing.B) {
	oneMillionOnce.Do(func() {
		oneMillion = New(DefaultConfig())
		fill(oneMillion, 1_000_000, 0)
	})
	s := oneMillion
	retention := benchNow.Add(-time.Hour).UnixNano()
	for _, q := range []struct {
		name   string
		f      Filter
		o      Order
		offset int
		limit  int
	}{
		{"default", Filter{Protocol: -1, Port: -1, ReceivedSince: retention}, Order{ByLastSeen, true}, 0, 100},
		{"cidr+tcp_by_bytes", Filter{Src: netip.MustParsePrefix("10.0.0.0/16"), Protocol: 6, Port: -1, ReceivedSince: retention}, Order{ByBytes, true}, 0, 100},
		{"port443_by_duration_page10", Filter{Protocol: -1, Port: 443, ReceivedSince: retention}, Order{ByDuration, false}, 1000, 100},
		{"5min_sensor_by_first_seen", Filter{Protocol: -1, Port: -1, Sensor: "sensor-1", Start: benchNow.Add(-10 * time.Minute).UnixNano(),
			End: benchNow.Add(-5 * time.Minute).UnixNano(), ReceivedSince: retention}, Order{ByFirstSeen, true}, 0, 100},
		{"v6_dst_status_limit1000", Filter{Dst: netip.MustParsePrefix("2001:db8:1::/48"), Protocol: -1, Port: -1,
			Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, ReceivedSince: retention}, Order{ByPackets, true}, 0, 1000},
	} {
		b.Run(q.name, func(b *testing.B) {
			var lat []time.Duration
			var total int
			for b.Loop() {
				start := time.Now()
				_, total = s.Query(q.f, q.o, q.offset, q.limit)
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[(len(lat)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(total), "matches")
		})
	}
}

// BenchmarkWindow1M sums a 5- and a 60-minute window over 1,000,000 flows.
func BenchmarkWindow1M(b *testing.B) {
	oneMillionOnce.Do(func() {
		oneMillion = New(DefaultConfig())
		fill(oneMillion, 1_000_000, 0)
	})
	for _, d := range []time.Duration{5 * time.Minute, 60 * time.Minute} {
		b.Run(d.String(), func(b *testing.B) {
			for b.Loop() {
				n := 0
				oneMillion.Window(benchNow.Add(-d), benchNow, func(WindowFlow) { n++ })
				b.ReportMetric(float64(n), "flows")
			}
		})
	}
}

// BenchmarkSnapshotScan1M is what a snapshot's capture costs on the ingest path at
// 1M flows: Scan (the flows) against ScanBuckets (the flows with their per-bucket
// traffic, what snapshots take now). One op is one pass.
func BenchmarkSnapshotScan1M(b *testing.B) {
	oneMillionOnce.Do(func() {
		oneMillion = New(DefaultConfig())
		fill(oneMillion, 1_000_000, 0)
	})
	all := func(*Flow) bool { return true }
	b.Run("Scan", func(b *testing.B) {
		for b.Loop() {
			n := 0
			oneMillion.Scan(all, func(Flow) { n++ })
		}
	})
	b.Run("ScanBuckets", func(b *testing.B) {
		for b.Loop() {
			n := 0
			oneMillion.ScanBuckets(all, func(_ Flow, bt []BucketTraffic) { n += len(bt) })
		}
	})
}
