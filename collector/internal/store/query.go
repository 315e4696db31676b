package store

import (
	"math"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"netwatch.dev/common/sat"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Filter selects flows; zero fields do not filter. Criteria AND together.
type Filter struct {
	Src, Dst netip.Prefix // invalid prefix: any address
	Protocol int          // -1: any
	Port     int          // -1: any; otherwise either side
	// Start and End (unix nanos, 0: open) keep the flows whose packets overlap
	// [Start, End]: LastSeen >= Start and FirstSeen <= End.
	Start, End int64
	Sensor     string
	Status     netwatchv1.FlowStatus // 0: any
	// ReceivedSince (unix nanos, 0: none) hides flows past retention that Expire has
	// not dropped yet: pass now minus the retention.
	ReceivedSince int64
	// CommunityID and Application match exactly; "" does not filter.
	CommunityID string
	Application string
	// ServerName matches the flow's server name exactly or as a suffix on a label
	// boundary ("example.com" matches "www.example.com"); "" does not filter.
	ServerName string
	// Hosts: each predicate must hold for at least one of the flow's two
	// addresses (host name, AS, country filters). The store evaluates each once
	// per distinct address, not per flow.
	Hosts []func(netip.Addr) bool
}

// SortField orders a query.
type SortField uint8

// Sort fields.
const (
	ByLastSeen SortField = iota
	ByFirstSeen
	ByBytes
	ByPackets
	ByDuration
)

// Order of a query's results. Ties are broken by the flow's slot in the store, in
// the same direction whatever Desc says, so pages of a query do not overlap.
type Order struct {
	By   SortField
	Desc bool
}

// prefixMatch is a compiled prefix test on addr128.
type prefixMatch struct {
	on       bool
	notV4    bool // an IPv6 prefix never matches an IPv4 (or IPv4-mapped) address
	mask, at addr128
}

func compilePrefix(p netip.Prefix) prefixMatch {
	if !p.IsValid() {
		return prefixMatch{}
	}
	p = p.Masked()
	bitsLen := p.Bits()
	if p.Addr().Is4() {
		bitsLen += 96
	}
	var m addr128
	switch {
	case bitsLen >= 128:
		m = addr128{math.MaxUint64, math.MaxUint64}
	case bitsLen > 64:
		m = addr128{math.MaxUint64, ^(math.MaxUint64 >> (bitsLen - 64))}
	case bitsLen > 0:
		m = addr128{^(math.MaxUint64 >> bitsLen), 0}
	}
	a := addrFromNetip(p.Addr())
	return prefixMatch{on: true, notV4: !p.Addr().Is4(), mask: m, at: addr128{a.hi & m.hi, a.lo & m.lo}}
}

func (m *prefixMatch) match(a addr128) bool {
	if a.hi&m.mask.hi != m.at.hi || a.lo&m.mask.lo != m.at.lo {
		return false
	}
	return !m.notV4 || a.hi != 0 || a.lo>>32 != 0xffff
}

// compiled is a Filter ready to test records.
type compiled struct {
	src, dst      prefixMatch
	proto, port   int
	start, end    int64
	sensor        int // -1: any
	status        uint8
	receivedSince int64
	none          bool // an unknown sensor, community id, name or application: nothing matches

	cidOn, nameOn, appOn bool
	cid                  [communityIDBytes]byte
	names, apps          []uint64   // bitmaps over the name and application ids that match
	hosts                [][]uint64 // per Filter.Hosts predicate, a bitmap over the HostIDs it accepts
	unpin                func()     // nil unless the filter holds the host table's pin
}

// compile makes f ready to test records. A filter on names, applications or hosts
// is compiled into bitmaps over the ids of the store's tables, each name and each
// address tested once; it holds the host table's pin (no id changes meaning) until
// release.
func (s *Store) compile(f *Filter) compiled {
	c := compiled{
		src: compilePrefix(f.Src), dst: compilePrefix(f.Dst), proto: f.Protocol, port: f.Port,
		start: f.Start, end: f.End, sensor: -1, status: uint8(f.Status), receivedSince: f.ReceivedSince,
	}
	if f.Sensor != "" {
		id, ok := s.sensors.lookup(f.Sensor)
		c.sensor, c.none = int(id), !ok
	}
	if f.CommunityID != "" {
		var ok bool
		c.cidOn = true
		if c.cid, ok = parseCommunityID(f.CommunityID); !ok {
			c.none = true
		}
	}
	if c.none || (f.ServerName == "" && f.Application == "" && len(f.Hosts) == 0) {
		return c
	}
	c.unpin = s.PinHosts()
	if f.ServerName != "" {
		want := strings.ToLower(f.ServerName)
		c.nameOn = true
		c.names = s.names.matching(func(n string) bool {
			return flowmeta.InDomain(n, want)
		})
		c.none = c.none || c.names == nil
	}
	if f.Application != "" {
		c.appOn = true
		c.apps = s.apps.matching(func(a string) bool { return a == f.Application })
		c.none = c.none || c.apps == nil
	}
	for _, p := range f.Hosts {
		if c.none {
			break
		}
		bm := s.hosts.matching(p)
		c.hosts = append(c.hosts, bm)
		c.none = bm == nil
	}
	return c
}

// release gives back what compile holds.
func (c *compiled) release() {
	if c.unpin != nil {
		c.unpin()
		c.unpin = nil
	}
}

// matchAt is match, with the host predicates (which need the slot's host ids).
func (c *compiled) matchAt(sh *shard, slot uint32, r *record) bool {
	if !c.match(r) {
		return false
	}
	if len(c.hosts) > 0 {
		m := sh.meta(slot)
		for _, bm := range c.hosts {
			if !bitSet(bm, uint32(m.src)) && !bitSet(bm, uint32(m.dst)) {
				return false
			}
		}
	}
	return true
}

// match tests r against everything but the host predicates (see matchAt).
func (c *compiled) match(r *record) bool {
	return r.meta&metaLive != 0 &&
		(!c.cidOn || r.cid == c.cid) &&
		(!c.nameOn || bitSet(c.names, r.name())) &&
		(!c.appOn || bitSet(c.apps, r.app())) &&
		(c.proto < 0 || int(r.proto) == c.proto) &&
		(c.port < 0 || int(r.srcPort) == c.port || int(r.dstPort) == c.port) &&
		(c.start == 0 || r.lastSeen >= c.start) &&
		(c.end == 0 || r.firstSeen <= c.end) &&
		(c.sensor < 0 || int(r.sensor) == c.sensor) &&
		(c.status == 0 || r.status() == netwatchv1.FlowStatus(c.status)) &&
		r.received >= c.receivedSince &&
		(!c.src.on || c.src.match(r.src)) &&
		(!c.dst.on || c.dst.match(r.dst))
}

func sortKey(r *record, by SortField) int64 {
	switch by {
	case ByFirstSeen:
		return r.firstSeen
	case ByBytes:
		return int64(min(r.srcBytes+r.dstBytes, math.MaxInt64))
	case ByPackets:
		return int64(min(r.srcPackets+r.dstPackets, math.MaxInt64))
	case ByDuration:
		return r.lastSeen - r.firstSeen
	}
	return r.lastSeen
}

// FlowRef names one stored flow: shard (8 bits), generation (24) and slot (32). A
// ref to a flow that has been dropped since does not resolve, even if its slot was
// reused.
type FlowRef uint64

func makeRef(shard uint8, slot uint32, gen uint32) FlowRef {
	return FlowRef(uint64(shard)<<56 | uint64(gen&genMask)<<32 | uint64(slot))
}

func (f FlowRef) parts() (shard uint8, slot uint32, gen uint32) {
	return uint8(f >> 56), uint32(f), uint32(f>>32) & genMask
}

// order is the tie-break order of refs: shard and slot, generation ignored.
func (f FlowRef) order() uint64 { return uint64(f>>56)<<32 | uint64(uint32(f)) }

// Get returns the flow ref names, if it is still stored.
func (s *Store) Get(ref FlowRef) (Flow, bool) {
	shard, slot, gen := ref.parts()
	if int(shard) >= numShards {
		return Flow{}, false
	}
	sh := &s.shards[shard]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if slot >= sh.nslots {
		return Flow{}, false
	}
	r := sh.rec(slot)
	if r.meta&metaLive == 0 || r.gen != gen {
		return Flow{}, false
	}
	return sh.flow(r, &s.sensors), true
}

// cand is a query candidate; k is the sort key turned so that smaller is better.
type cand struct {
	k   int64
	ref FlowRef
}

func candLess(a, b cand) bool {
	return a.k < b.k || (a.k == b.k && a.ref.order() < b.ref.order())
}

func candCmp(a, b cand) int {
	switch {
	case candLess(a, b):
		return -1
	case candLess(b, a):
		return 1
	}
	return 0
}

// topK keeps the k best candidates seen: a buffer of up to 2k that is cut back to
// the k best by quickselect when full, with the k-th best as an entry threshold, so
// the cost stays linear whatever order the records come in.
type topK struct {
	k         int
	buf       []cand
	threshold cand
	full      bool // threshold is set
}

func (t *topK) push(c cand) {
	if t.full && !candLess(c, t.threshold) {
		return
	}
	t.buf = append(t.buf, c)
	if len(t.buf) >= 2*t.k+64 {
		t.cut()
	}
}

func (t *topK) cut() {
	if len(t.buf) <= t.k {
		return
	}
	selectK(t.buf, t.k)
	t.buf = t.buf[:t.k]
	t.threshold = slices.MaxFunc(t.buf, candCmp)
	t.full = true
}

// selectK reorders a so that its k smallest are first (in any order).
func selectK(a []cand, k int) {
	lo, hi := 0, len(a)-1
	for lo < hi {
		// median of three as pivot
		mid := lo + (hi-lo)/2
		if candLess(a[mid], a[lo]) {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if candLess(a[hi], a[lo]) {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if candLess(a[hi], a[mid]) {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for candLess(a[i], pivot) {
				i++
			}
			for candLess(pivot, a[j]) {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

// Query returns the page [offset, offset+limit) of the flows f selects in order o,
// and how many flows it selects. Shards are scanned in parallel, each under its read
// lock only while it is scanned; the page is copied out in a second step, so a flow
// dropped in between is left out of the page.
func (s *Store) Query(f Filter, o Order, offset, limit int) (page []Flow, total int) {
	if offset < 0 || limit <= 0 {
		return nil, s.count(f)
	}
	c := s.compile(&f)
	defer c.release()
	if c.none {
		return nil, 0
	}
	k := offset + limit
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		merged []cand
	)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := range s.shards {
		wg.Add(1)
		sem <- struct{}{}
		go func(sh *shard) {
			defer func() { <-sem; wg.Done() }()
			top := topK{k: k}
			n := sh.scan(&c, o, &top)
			top.cut()
			mu.Lock()
			total += n
			merged = append(merged, top.buf...)
			mu.Unlock()
		}(&s.shards[i])
	}
	wg.Wait()
	slices.SortFunc(merged, candCmp)
	if offset >= len(merged) {
		return []Flow{}, total
	}
	merged = merged[offset:min(k, len(merged))]
	page = make([]Flow, 0, len(merged))
	for _, m := range merged {
		if fl, ok := s.Get(m.ref); ok {
			page = append(page, fl)
		}
	}
	return page, total
}

func (sh *shard) scan(c *compiled, o Order, top *topK) (matched int) {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	n := sh.nslots
	for ci, ch := range sh.chunks {
		base := uint32(ci) << chunkBits
		if base >= n {
			break
		}
		chunk := ch[:min(chunkSize, n-base)]
		for j := range chunk {
			r := &chunk[j]
			if !c.matchAt(sh, base+uint32(j), r) {
				continue
			}
			matched++
			key := sortKey(r, o.By)
			if o.Desc {
				key = ^key
			}
			top.push(cand{k: key, ref: makeRef(sh.id, base+uint32(j), r.gen)})
		}
	}
	return matched
}

func (s *Store) count(f Filter) (n int) {
	c := s.compile(&f)
	defer c.release()
	if c.none {
		return 0
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for slot := uint32(0); slot < sh.nslots; slot++ {
			if c.matchAt(sh, slot, sh.rec(slot)) {
				n++
			}
		}
		sh.mu.RUnlock()
	}
	return n
}

// Scan calls fn with a copy of every stored flow that match accepts. Within a shard,
// flows come in the order of its receive-order list (oldest first, unless restored
// out of order and not sorted yet). fn runs under the shard's read lock: it must not
// call the store.
func (s *Store) Scan(match func(*Flow) bool, fn func(Flow)) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for slot := sh.head; slot != nilSlot; {
			r := sh.rec(slot)
			f := sh.flow(r, &s.sensors)
			if match(&f) {
				fn(f)
			}
			slot = r.next
		}
		sh.mu.RUnlock()
	}
}

// Select calls fn with a copy of every stored flow f selects (the test of Query), in
// no particular order. fn runs under a shard's read lock: it must not call the store.
func (s *Store) Select(f Filter, fn func(Flow)) {
	c := s.compile(&f)
	defer c.release()
	if c.none {
		return
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for slot := uint32(0); slot < sh.nslots; slot++ {
			if r := sh.rec(slot); c.matchAt(sh, slot, r) {
				fn(sh.flow(r, &s.sensors))
			}
		}
		sh.mu.RUnlock()
	}
}

// WindowFlow is what one flow transferred inside a window.
type WindowFlow struct {
	Ref              FlowRef
	SrcHost, DstHost HostID // see PinHosts
	Bytes, Packets   uint64 // both directions
}

// Window calls fn once for every stored flow that transferred something inside
// [from, to] by packet time, with what it transferred there. The window is widened to
// whole buckets at its old end (a 5-minute window at 12:00:30 with 1-minute buckets
// counts from 11:55:00), and a delta counts in the bucket of its last packet. fn runs
// under a shard's read lock: it must not call the store.
func (s *Store) Window(from, to time.Time, fn func(WindowFlow)) {
	bFrom, bTo := s.bucketOf(from.UnixNano()), s.bucketOf(to.UnixNano())
	bFrom = max(bFrom, 1)
	if bTo < bFrom {
		return
	}
	type acc struct{ bytes, packets uint64 }
	var sums []acc
	var touched []uint32
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if cap(sums) < int(sh.nslots) {
			sums = make([]acc, sh.nslots)
		}
		sums = sums[:sh.nslots]
		touched = touched[:0]
		add := func(bk *bucket) {
			for pos := range bk.entries {
				e := &bk.entries[pos]
				if !sh.live(e) {
					continue
				}
				a := &sums[e.slot]
				if a.bytes == 0 && a.packets == 0 {
					touched = append(touched, e.slot)
				}
				a.bytes = sat.Add(a.bytes, e.bytes())
				a.packets = sat.Add(a.packets, uint64(e.packets))
			}
		}
		if uint64(bTo-bFrom) < uint64(len(sh.buckets)) {
			for b := bFrom; ; b++ {
				if bk := sh.buckets[b]; bk != nil {
					add(bk)
				}
				if b == bTo {
					break
				}
			}
		} else {
			for b, bk := range sh.buckets {
				if b >= bFrom && b <= bTo {
					add(bk)
				}
			}
		}
		for _, slot := range touched {
			m := sh.meta(slot)
			fn(WindowFlow{
				Ref: makeRef(sh.id, slot, m.gen&genMask), SrcHost: m.src, DstHost: m.dst,
				Bytes: sums[slot].bytes, Packets: sums[slot].packets,
			})
			sums[slot] = acc{}
		}
		sh.mu.RUnlock()
	}
}

// Stream calls fn with every flow f selects, in order o (the order of Query, so the
// rows are Query's pages laid end to end), chunk flows at a time. The matching flows
// are picked and sorted in one scan (16 bytes per match); each chunk is then copied
// out under the shards' read locks and fn runs with no lock held, so a slow consumer
// (a CSV download) never holds up ingest. A flow dropped between the scan and its
// chunk is left out. Stream stops at fn's first error and returns it.
func (s *Store) Stream(f Filter, o Order, chunk int, fn func([]Flow) error) error {
	c := s.compile(&f)
	if c.none {
		c.release()
		return nil
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		all []cand
	)
	for i := range s.shards {
		wg.Add(1)
		go func(sh *shard) {
			defer wg.Done()
			var mine []cand
			sh.mu.RLock()
			for slot := uint32(0); slot < sh.nslots; slot++ {
				r := sh.rec(slot)
				if !c.matchAt(sh, slot, r) {
					continue
				}
				key := sortKey(r, o.By)
				if o.Desc {
					key = ^key
				}
				mine = append(mine, cand{k: key, ref: makeRef(sh.id, slot, r.gen)})
			}
			sh.mu.RUnlock()
			mu.Lock()
			all = append(all, mine...)
			mu.Unlock()
		}(&s.shards[i])
	}
	wg.Wait()
	c.release() // the matches are picked: ids need not keep their meaning while fn runs
	slices.SortFunc(all, candCmp)
	chunk = max(chunk, 1)
	buf := make([]Flow, 0, min(chunk, len(all)))
	for len(all) > 0 {
		n := min(chunk, len(all))
		buf = buf[:0]
		for _, m := range all[:n] {
			if fl, ok := s.Get(m.ref); ok {
				buf = append(buf, fl)
			}
		}
		all = all[n:]
		if len(buf) == 0 {
			continue
		}
		if err := fn(buf); err != nil {
			return err
		}
	}
	return nil
}
