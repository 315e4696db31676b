package store

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// snapFlow is one flow as a snapshot holds it: what Restore takes.
type snapFlow struct {
	sensor   string
	d        *netwatchv1.FlowDelta
	received time.Time
	buckets  []BucketTraffic
}

// snapshotFlows builds n distinct flows from the given number of sensors, applied
// to a store in batches of 64 (sensors in turn) with the receive time moving
// forward over the 50 minutes before benchNow, and returns them in the order a
// snapshot holds them: ScanBuckets' order, shard by shard.
func snapshotFlows(n, sensors int) []snapFlow {
	src := New(DefaultConfig())
	const batch = 64
	span := 50 * time.Minute
	start := benchNow.Add(-span)
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		deltas := make([]*netwatchv1.FlowDelta, 0, hi-lo)
		at := start.Add(time.Duration(int64(span) * int64(lo) / int64(n)))
		for i := lo; i < hi; i++ {
			s, d := make([]byte, 4), make([]byte, 4)
			binary.BigEndian.PutUint32(s, 10<<24|uint32(i))
			binary.BigEndian.PutUint32(d, 172<<24|16<<16|uint32(i%1000))
			first := at.Add(-time.Duration(i%600) * time.Second)
			deltas = append(deltas, &netwatchv1.FlowDelta{
				Key:       &netwatchv1.FlowKey{Protocol: 6, SrcAddr: s, DstAddr: d, SrcPort: uint32(1024 + i%60000), DstPort: 443},
				FirstSeen: timestamppb.New(first), LastSeen: timestamppb.New(at),
				SrcPackets: 2, SrcBytes: 120, DstPackets: 1, DstBytes: 60, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
			})
		}
		src.Apply(fmt.Sprintf("sensor-%d", lo/batch%sensors), deltas, at)
	}
	out := make([]snapFlow, 0, n)
	src.ScanBuckets(func(*Flow) bool { return true }, func(f Flow, b []BucketTraffic) {
		out = append(out, snapFlow{sensor: f.SensorID, d: &netwatchv1.FlowDelta{
			Key: &netwatchv1.FlowKey{Protocol: uint32(f.Protocol), SrcAddr: f.Src.AsSlice(), SrcPort: uint32(f.SrcPort),
				DstAddr: f.Dst.AsSlice(), DstPort: uint32(f.DstPort)},
			SrcPackets: f.SrcPackets, SrcBytes: f.SrcBytes, DstPackets: f.DstPackets, DstBytes: f.DstBytes,
			FirstSeen: timestamppb.New(time.Unix(0, f.FirstSeen)), LastSeen: timestamppb.New(time.Unix(0, f.LastSeen)),
			Status: f.Status,
		}, received: time.Unix(0, f.ReceivedAt), buckets: slices.Clone(b)})
	})
	return out
}

func restoreAll(s *Store, flows []snapFlow) {
	for i := range flows {
		f := &flows[i]
		s.Restore(f.sensor, f.d, f.received, f.buckets)
	}
}

// checkReceiveOrder checks what the store relies on of each shard's receive-order
// list: a well-linked list of exactly the live records, and the shard's published
// oldest receive time (evict picks the shard by it) being its oldest record's. With
// sorted, the list must also be in receive order, oldest first.
func checkReceiveOrder(t *testing.T, s *Store, sorted bool) {
	t.Helper()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n, prev, oldest := 0, nilSlot, int64(1<<63-1)
		inOrder := true
		for slot := sh.head; slot != nilSlot; slot = sh.rec(slot).next {
			r := sh.rec(slot)
			require.Equal(t, prev, r.prev, "shard %d: prev link of slot %d", i, slot)
			require.NotZero(t, r.meta&metaLive, "shard %d: slot %d in the list is live", i, slot)
			if prev != nilSlot && sh.rec(prev).received > r.received {
				inOrder = false
			}
			oldest = min(oldest, r.received)
			prev = slot
			n++
			require.LessOrEqual(t, n, sh.used, "shard %d: the list has no cycle", i)
		}
		assert.Equal(t, prev, sh.tail, "shard %d: tail", i)
		assert.Equal(t, sh.used, n, "shard %d: every live record is in the list", i)
		assert.Equal(t, oldest, sh.headReceived.Load(), "shard %d: published oldest receive time", i)
		if sorted {
			assert.True(t, inOrder, "shard %d: list in receive order", i)
		}
		sh.mu.RUnlock()
	}
}

// TestRestoreOutOfReceiveOrder: 200,000 flows from 100 sensors restored in a
// shuffled order (a snapshot is written shard by shard, and sensors are numbered
// again in a new order on restore, so it is never in receive order) keep what the
// receive-order list gives the store: Recent finds exactly the flows received after
// a time, the --max-flows eviction drops the flows received first, and Expire those
// received before the retention's cutoff.
func TestRestoreOutOfReceiveOrder(t *testing.T) {
	const n, sensors = 200_000, 100
	flows := snapshotFlows(n, sensors)
	require.Len(t, flows, n)
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(flows), func(i, j int) { flows[i], flows[j] = flows[j], flows[i] })
	byReceived := slices.Clone(flows)
	slices.SortStableFunc(byReceived, func(a, b snapFlow) int { return a.received.Compare(b.received) })
	keyOf := func(f snapFlow) string {
		return fmt.Sprintf("%s %v %d", f.sensor, f.d.Key.SrcAddr, f.d.Key.SrcPort)
	}
	keys := func(s *Store) map[string]bool {
		m := map[string]bool{}
		s.Scan(func(*Flow) bool { return true }, func(f Flow) { m[fmt.Sprintf("%s %v %d", f.SensorID, f.Src.AsSlice(), f.SrcPort)] = true })
		return m
	}

	s := New(DefaultConfig())
	restoreAll(s, flows)
	require.Equal(t, n, s.Len())
	checkReceiveOrder(t, s, false)
	var walked uint64
	for i := range s.shards {
		walked += s.shards[i].linkSteps
	}
	// Linear: inserting each flow in place walked about n²/(4·16) records here.
	assert.LessOrEqual(t, walked, uint64(n), "records walked past to restore %d flows", n)

	// Recent: exactly the flows received after the time of the 190,000th.
	since := byReceived[n-10_000-1].received.UnixNano()
	want := 0
	for _, f := range byReceived {
		if f.received.UnixNano() > since {
			want++
		}
	}
	got := 0
	s.Recent(since, func(f Flow) {
		got++
		assert.Greater(t, f.ReceivedAt, since)
	})
	assert.Equal(t, want, got, "Recent after a restore out of order")
	// Just before and at the newest receive time: the newest flows, then none (a
	// shard not sorted yet is skipped only when nothing in it is that recent).
	newestAt := byReceived[n-1].received.UnixNano()
	atNewest := 0
	for _, f := range byReceived {
		if f.received.UnixNano() == newestAt {
			atNewest++
		}
	}
	got = 0
	s.Recent(newestAt-1, func(Flow) { got++ })
	assert.Equal(t, atNewest, got, "Recent just before the newest receive time")
	got = 0
	s.Recent(newestAt, func(Flow) { got++ })
	assert.Zero(t, got, "Recent at the newest receive time")

	// Expire: the flows received before the cutoff, and only those.
	cutoff := byReceived[n/4].received
	expired := 0
	for _, f := range byReceived {
		if f.received.Before(cutoff) {
			expired++
		}
	}
	require.Equal(t, expired, s.Expire(cutoff.Add(s.cfg.Retention)))
	checkReceiveOrder(t, s, true)
	left := keys(s)
	for _, f := range byReceived {
		assert.Equal(t, !f.received.Before(cutoff), left[keyOf(f)], "flow received at %v, cutoff %v", f.received, cutoff)
	}

	// Eviction: a store holding fewer flows than the snapshot keeps the most
	// recently received ones.
	const maxFlows = 150_000
	cfg := DefaultConfig()
	cfg.MaxFlows = maxFlows
	small := New(cfg)
	restoreAll(small, flows)
	small.Expire(benchNow) // nothing is past retention: this only brings the store back to MaxFlows
	require.Equal(t, maxFlows, small.Len())
	assert.Equal(t, uint64(n-maxFlows), small.Stats().Evicted)
	checkReceiveOrder(t, small, true)
	left = keys(small)
	lastEvicted := byReceived[n-maxFlows-1].received
	for _, f := range byReceived {
		if f.received.Before(lastEvicted) {
			assert.False(t, left[keyOf(f)], "received at %v, before the last evicted (%v): evicted", f.received, lastEvicted)
		} else if f.received.After(lastEvicted) {
			assert.True(t, left[keyOf(f)], "received at %v, after the last evicted (%v): kept", f.received, lastEvicted)
		}
	}

	// Apply after a restore links new deltas by receive time as always: the newest
	// flow is the one Recent finds.
	s2 := New(DefaultConfig())
	restoreAll(s2, flows)
	s2.Apply("sensor-new", []*netwatchv1.FlowDelta{flows[0].d}, benchNow)
	checkReceiveOrder(t, s2, false)
	var newest []string
	s2.Recent(benchNow.UnixNano()-1, func(f Flow) { newest = append(newest, f.SensorID) })
	assert.Equal(t, []string{"sensor-new"}, newest)
	s2.Expire(benchNow)
	checkReceiveOrder(t, s2, true)
}

// BenchmarkRestore restores a snapshot of 100 sensors' flows (in the order a
// snapshot holds them) into an empty store, at sizes ten times apart: ns/flow
// stays flat when restoring is linear.
func BenchmarkRestore(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("flows=%d/sensors=100", n), func(b *testing.B) {
			flows := snapshotFlows(n, 100)
			b.ResetTimer()
			for b.Loop() {
				s := New(DefaultConfig())
				restoreAll(s, flows)
				if s.Len() != n {
					b.Fatalf("restored %d flows of %d", s.Len(), n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/flow")
			flows = nil
			debug.FreeOSMemory()
		})
	}
}

// TestQueriesDuringARestore: queries run while a snapshot is restored (the
// collector answers them during its replay) see a consistent store: every flow
// Scan returns is whole, counts only grow. Run with -race.
func TestQueriesDuringARestore(t *testing.T) {
	flows := snapshotFlows(20_000, 100)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(flows), func(i, j int) { flows[i], flows[j] = flows[j], flows[i] })
	s := New(DefaultConfig())
	done := make(chan struct{})
	go func() {
		defer close(done)
		restoreAll(s, flows)
	}()
	last := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		n := 0
		s.Scan(func(*Flow) bool { return true }, func(f Flow) {
			n++
			if f.SrcBytes != 120 || !f.Src.IsValid() {
				t.Errorf("a torn flow: %+v", f)
			}
		})
		assert.GreaterOrEqual(t, n, last, "flows seen only grow during a restore")
		last = n
		s.Recent(0, func(Flow) {})
		s.Window(benchNow.Add(-time.Hour), benchNow, func(WindowFlow) {})
		_ = s.Stats()
	}
	assert.Equal(t, len(flows), s.Len())
	checkReceiveOrder(t, s, false)
}
