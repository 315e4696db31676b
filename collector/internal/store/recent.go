package store

// Recent calls fn with a copy of every stored flow the collector updated after since
// (unix nanos, compared with Flow.ReceivedAt), newest first within each shard. Each
// shard's receive-order list is walked back from its tail, so the cost is the number
// of recent flows, not the size of the store: this is what live push asks every
// second. fn runs under the shard's read lock: it must not call the store.
func (s *Store) Recent(since int64, fn func(Flow)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for slot := sh.tail; slot != nilSlot; {
			r := sh.rec(slot)
			if r.received <= since {
				if !sh.unsorted {
					break
				}
				slot = r.prev
				continue
			}
			fn(sh.flow(r, &s.sensors))
			slot = r.prev
		}
		sh.mu.RUnlock()
	}
}
