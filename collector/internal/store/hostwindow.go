package store

import (
	"net/netip"
	"time"

	"netwatch.dev/common/sat"
)

// HostFlow is what one flow of a host transferred inside a window (HostWindow).
type HostFlow struct {
	Ref  FlowRef
	Flow Flow // a copy
	// Bytes and Packets are what the flow transferred inside the window, both
	// directions (bucket-widened, as Window).
	Bytes, Packets uint64
	// Initiated: the host is the flow's source.
	Initiated bool
}

// Point is what a host's flows transferred in one bucket (both directions); Start is
// the bucket's start (unix nanos).
type Point struct {
	Start          int64
	Bytes, Packets uint64
}

// lookup finds the id of a, if a stored flow uses it.
func (t *hostTable) lookup(a addr128) (HostID, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.index) == 0 {
		return 0, false
	}
	mask := uint64(len(t.index) - 1)
	w := words(a)
	for i := mix(a.hi, a.lo) & mask; t.index[i] != 0; i = (i + 1) & mask {
		if id := HostID(t.index[i] - 1); t.at(id).addr == w {
			return id, t.at(id).refs > 0
		}
	}
	return 0, false
}

// hostBuckets is the bucket range of a host question over [from, to], widened to
// whole buckets as Window, and cut at its old end to the buckets the store keeps.
func (s *Store) hostBuckets(from, to time.Time) (lo, hi uint32, ok bool) {
	lo, hi = max(s.bucketOf(from.UnixNano()), 1), s.bucketOf(to.UnixNano())
	if hi < lo {
		return 0, 0, false
	}
	if keep := uint32(int64(max(s.cfg.Retention, MaxWindow))/s.width) + 1; hi-lo > keep {
		lo = hi - keep
	}
	return lo, hi, true
}

// hostEntries calls fn, under each shard's read lock in turn, for every live bucket
// entry in [lo, hi] of a flow with host id at one end, then done for the shard.
func (s *Store) hostEntries(id HostID, lo, hi uint32, fn func(sh *shard, b uint32, e *entry, m *slotMeta), done func(sh *shard)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		visit := func(b uint32, bk *bucket) {
			for pos := range bk.entries {
				e := &bk.entries[pos]
				if !sh.live(e) {
					continue
				}
				if m := sh.meta(e.slot); m.src == id || m.dst == id {
					fn(sh, b, e, m)
				}
			}
		}
		if uint64(hi-lo) < uint64(len(sh.buckets)) {
			for b := lo; ; b++ {
				if bk := sh.buckets[b]; bk != nil {
					visit(b, bk)
				}
				if b == hi {
					break
				}
			}
		} else {
			for b, bk := range sh.buckets {
				if b >= lo && b <= hi {
					visit(b, bk)
				}
			}
		}
		done(sh)
		sh.mu.RUnlock()
	}
}

// HostWindow calls fn once for every stored flow with a at one end that transferred
// something inside [from, to] by packet time, with what it transferred there (both
// directions). The window is widened to whole buckets at its old end, as Window's.
// The flows are copied under each shard's read lock and fn runs with no lock held:
// it may call the store.
func (s *Store) HostWindow(a netip.Addr, from, to time.Time, fn func(HostFlow)) {
	lo, hi, ok := s.hostBuckets(from, to)
	if !ok || !a.IsValid() {
		return
	}
	unpin := s.PinHosts()
	id, ok := s.hosts.lookup(addrFromNetip(a.Unmap()))
	if !ok {
		unpin()
		return
	}
	type acc struct {
		bytes, packets uint64
		at             int // index in out + 1
	}
	var sums map[uint32]*acc
	var out []HostFlow
	s.hostEntries(id, lo, hi, func(sh *shard, _ uint32, e *entry, m *slotMeta) {
		if sums == nil {
			sums = map[uint32]*acc{}
		}
		x := sums[e.slot]
		if x == nil {
			x = &acc{}
			sums[e.slot] = x
		}
		x.bytes = sat.Add(x.bytes, e.bytes())
		x.packets = sat.Add(x.packets, uint64(e.packets))
	}, func(sh *shard) {
		for slot, x := range sums {
			m := sh.meta(slot)
			out = append(out, HostFlow{
				Ref: makeRef(sh.id, slot, m.gen&genMask), Flow: sh.flow(sh.rec(slot), &s.sensors),
				Bytes: x.bytes, Packets: x.packets, Initiated: m.src == id,
			})
		}
		clear(sums)
	})
	unpin()
	for i := range out {
		fn(out[i])
	}
}

// HostSeries is what the flows with a at one end transferred per bucket over [from,
// to] (widened as HostWindow's), both directions: one Point per bucket, oldest first,
// buckets with nothing included. A range longer than the buckets the store keeps
// (max(Retention, MaxWindow)) is cut at its old end.
func (s *Store) HostSeries(a netip.Addr, from, to time.Time) []Point {
	lo, hi, ok := s.hostBuckets(from, to)
	if !ok {
		return nil
	}
	pts := make([]Point, hi-lo+1)
	for i := range pts {
		pts[i].Start = int64(lo+uint32(i)) * s.width
	}
	if !a.IsValid() {
		return pts
	}
	unpin := s.PinHosts()
	defer unpin()
	id, ok := s.hosts.lookup(addrFromNetip(a.Unmap()))
	if !ok {
		return pts
	}
	s.hostEntries(id, lo, hi, func(_ *shard, b uint32, e *entry, _ *slotMeta) {
		p := &pts[b-lo]
		p.Bytes = sat.Add(p.Bytes, e.bytes())
		p.Packets = sat.Add(p.Packets, uint64(e.packets))
	}, func(*shard) {})
	return pts
}
