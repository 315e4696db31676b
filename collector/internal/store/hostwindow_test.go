package store

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// The host view's sums, checked against the deltas applied: per flow of the host
// inside a window, and per bucket.
func TestHostWindowAndSeriesSumTheHostsFlows(t *testing.T) {
	s := New(DefaultConfig())
	now := t0.Add(30 * time.Minute)
	host := netip.MustParseAddr("10.0.0.1")
	rng := rand.New(rand.NewPCG(1, 2))
	type sent struct {
		bucket         int64 // minute of the delta's last packet
		bytes, packets uint64
	}
	byFlow := map[string][]sent{}  // flow id -> its deltas
	initiated := map[string]bool{} // flow id -> host is its source
	var deltas []*netwatchv1.FlowDelta
	for i := range 60 {
		d := dl{src: fmt.Sprintf("10.0.0.%d", 1+rng.IntN(4)), dst: fmt.Sprintf("10.0.1.%d", rng.IntN(3)), sport: uint32(1000 + i), dport: 443}
		if i%3 == 0 {
			d.src, d.dst = d.dst, "10.0.0.1" // the host as responder
		}
		if i%11 == 0 {
			d.src, d.dst = "10.0.0.1", "10.0.0.1" // to itself
		}
		d.first = now.Add(-time.Duration(20+rng.IntN(5)) * time.Minute)
		key := Flow{Key: Key{SensorID: "s1", Protocol: 6, Src: netip.MustParseAddr(d.src), Dst: netip.MustParseAddr(d.dst),
			SrcPort: uint16(d.sport), DstPort: uint16(d.dport), FirstSeen: d.first.UnixNano()}}
		for j := range 1 + rng.IntN(5) {
			x := d
			x.last = d.first.Add(time.Duration(j*4+rng.IntN(4))*time.Minute + time.Duration(rng.IntN(59))*time.Second)
			x.srcPk, x.dstPk = 1+uint64(rng.IntN(9)), uint64(rng.IntN(9))
			x.srcB, x.dstB = x.srcPk*100, x.dstPk*1000
			deltas = append(deltas, x.delta())
			byFlow[key.ID()] = append(byFlow[key.ID()], sent{x.last.UnixNano() / int64(time.Minute), x.srcB + x.dstB, x.srcPk + x.dstPk})
		}
		initiated[key.ID()] = d.src == "10.0.0.1"
		if d.src != "10.0.0.1" && d.dst != "10.0.0.1" {
			delete(byFlow, key.ID())
		}
	}
	s.Apply("s1", deltas, now)

	for _, w := range []struct{ from, to time.Time }{
		{now.Add(-10 * time.Minute), now},
		{now.Add(-17*time.Minute - 30*time.Second), now.Add(-5 * time.Minute)}, // widened to 12:12:00
		{now.Add(-time.Hour), now},
	} {
		lo, hi := w.from.UnixNano()/int64(time.Minute), w.to.UnixNano()/int64(time.Minute)
		want := map[string][2]uint64{}
		perBucket := map[int64][2]uint64{}
		for id, ds := range byFlow {
			var b, p uint64
			for _, d := range ds {
				if d.bucket >= lo && d.bucket <= hi {
					b, p = b+d.bytes, p+d.packets
					pb := perBucket[d.bucket]
					perBucket[d.bucket] = [2]uint64{pb[0] + d.bytes, pb[1] + d.packets}
				}
			}
			if b > 0 || p > 0 {
				want[id] = [2]uint64{b, p}
			}
		}
		got := map[string][2]uint64{}
		s.HostWindow(host, w.from, w.to, func(hf HostFlow) {
			id := hf.Flow.ID()
			_, dup := got[id]
			assert.False(t, dup, "one call per flow")
			got[id] = [2]uint64{hf.Bytes, hf.Packets}
			assert.Equal(t, initiated[id], hf.Initiated, id)
			fl, ok := s.Get(hf.Ref) // fn may call the store
			assert.True(t, ok)
			assert.Equal(t, hf.Flow, fl)
			var total uint64
			for _, d := range byFlow[id] {
				total += d.bytes
			}
			assert.Equal(t, total, hf.Flow.SrcBytes+hf.Flow.DstBytes, "the copy has the flow's totals")
		})
		require.NotEmpty(t, want)
		assert.Equal(t, want, got, "window %v - %v", w.from, w.to)

		pts := s.HostSeries(host, w.from, w.to)
		require.Len(t, pts, int(hi-lo+1))
		for i, pt := range pts {
			b := lo + int64(i)
			assert.Equal(t, b*int64(time.Minute), pt.Start, "oldest first, every bucket")
			assert.Equal(t, perBucket[b], [2]uint64{pt.Bytes, pt.Packets}, "bucket %d", i)
		}
	}

	// An address no flow has: no flows, a series of zeros.
	n := 0
	s.HostWindow(netip.MustParseAddr("192.0.2.1"), now.Add(-time.Hour), now, func(HostFlow) { n++ })
	assert.Zero(t, n)
	pts := s.HostSeries(netip.MustParseAddr("192.0.2.1"), now.Add(-5*time.Minute), now)
	require.Len(t, pts, 6)
	for _, p := range pts {
		assert.Zero(t, p.Bytes)
	}
	assert.Nil(t, s.HostSeries(host, now, now.Add(-time.Minute)), "to before from")
	assert.Len(t, s.HostSeries(host, now.Add(-100*time.Hour), now), 62, "cut to the buckets kept")
}
