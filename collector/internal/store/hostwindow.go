package store

// WIP store seam: the signatures of CONTRACT.md's host view methods, with a
// plain implementation over Window and ScanBuckets so the query side compiles and
// its tests run. The store's own implementation replaces this file.

import (
	"net/netip"
	"time"
)

// HostFlow is what one flow of a host transferred inside a window.
type HostFlow struct {
	Ref            FlowRef
	Flow           Flow   // a copy
	Bytes, Packets uint64 // inside the window, both directions
	Initiated      bool   // the host is the flow's Src
}

// Point is what was transferred in one bucket.
type Point struct {
	Start          int64 // unix nanos of the bucket start
	Bytes, Packets uint64
}

// HostWindow calls fn for each flow with a at one end that transferred something
// inside [from, to] (bucket-widened like Window).
func (s *Store) HostWindow(a netip.Addr, from, to time.Time, fn func(HostFlow)) {
	a = a.Unmap()
	unpin := s.PinHosts()
	defer unpin()
	var ws []WindowFlow
	s.Window(from, to, func(w WindowFlow) { ws = append(ws, w) })
	for _, w := range ws {
		src, dst := s.HostAddr(w.SrcHost), s.HostAddr(w.DstHost)
		if src != a && dst != a {
			continue
		}
		f, ok := s.Get(w.Ref)
		if !ok {
			continue
		}
		fn(HostFlow{Ref: w.Ref, Flow: f, Bytes: w.Bytes, Packets: w.Packets, Initiated: f.Src == a})
	}
}

// HostSeries is what a's flows transferred per bucket of [from, to], oldest first,
// zero buckets included.
func (s *Store) HostSeries(a netip.Addr, from, to time.Time) []Point {
	a = a.Unmap()
	bFrom, bTo := max(s.bucketOf(from.UnixNano()), 1), s.bucketOf(to.UnixNano())
	if bTo < bFrom {
		return nil
	}
	out := make([]Point, bTo-bFrom+1)
	for i := range out {
		out[i].Start = int64(bFrom+uint32(i)) * s.width
	}
	s.ScanBuckets(func(f *Flow) bool { return f.Src == a || f.Dst == a }, func(_ Flow, bs []BucketTraffic) {
		for _, b := range bs {
			if i := (b.Start - out[0].Start) / s.width; b.Start >= out[0].Start && int(i) < len(out) {
				out[i].Bytes += b.Bytes
				out[i].Packets += b.Packets
			}
		}
	})
	return out
}
