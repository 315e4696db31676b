package store

// Recent calls fn with a copy of every stored flow the collector updated after since
// (unix nanos, compared with Flow.ReceivedAt), newest first within each shard. Each
// shard's receive-order list is walked back from its tail, so the cost is the number
// of recent flows, not the size of the store: this is what live push asks every
// second. fn runs under the shard's read lock: it must not call the store.
func (s *Store) Recent(since int64, fn func(Flow)) {
	s.RecentMatching(since, nil, func(f Flow, _ []bool) { fn(f) })
}

// RecentMatching is Recent that also tells, for each of filters, whether it selects
// the flow: hits[i] for filters[i], tested by the compiled filter of Query and Stream
// (so a live subscription and a query select the same flows, the retention bound
// included). The filters are compiled once per call. hits is reused from one flow to
// the next: copy what is kept.
func (s *Store) RecentMatching(since int64, filters []Filter, fn func(f Flow, hits []bool)) {
	cs := make([]compiled, len(filters))
	for i := range filters {
		cs[i] = s.compile(&filters[i])
		defer cs[i].release()
	}
	hits := make([]bool, len(cs))
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if sh.unsorted && since >= sh.unsortedNewest {
			sh.mu.RUnlock() // restored, not sorted yet, and nothing in it is that recent
			continue
		}
		for slot := sh.tail; slot != nilSlot; {
			r := sh.rec(slot)
			if r.received <= since {
				if !sh.unsorted {
					break
				}
				slot = r.prev
				continue
			}
			for j := range cs {
				hits[j] = !cs[j].none && cs[j].matchAt(sh, slot, r)
			}
			fn(sh.flow(r, &s.sensors), hits)
			slot = r.prev
		}
		sh.mu.RUnlock()
	}
}
