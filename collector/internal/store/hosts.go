package store

import (
	"net/netip"
	"sync"
)

// HostID is an interned host address: every address that is the source or the
// destination of a stored flow has one, so a question about hosts (top talkers) can
// sum into dense arrays instead of hashing two addresses per flow.
//
// An id names one address while a stored flow uses it. Once its last flow is gone
// the id may be given to another address, but only when no PinHosts is held: ids
// that a Window reported inside a PinHosts name the same addresses until the unpin.
type HostID uint32

// hostTable interns addresses with a count of the stored flows using each (a flow
// with the same source and destination counts twice). It costs 28 to 36 bytes per
// distinct address: a 20-byte host and an open-addressing index of 4-byte ids at
// load 1/4 to 1/2. Lock order: a shard's lock, then mu; pin, then shard locks,
// then mu.
type hostTable struct {
	mu     sync.Mutex
	index  []uint32               // id+1; 0 is empty. Linear probing from the address's hash
	hosts  []*[hostsPerChunk]host // by id, allocated hostsPerChunk (10 pages) at a time
	inZero []uint64               // by id, a bit: listed in zero
	ids    int                    // ids handed out so far
	zero   []HostID               // refs reached 0; reusable after the next sweep
	free   []HostID               // swept: reusable now
	inUse  int                    // ids with refs > 0
	keyed  int                    // ids in the index

	// pin is held (read) by queries that resolve ids after a Window; sweep, the only
	// place where an id leaves the index, takes it for writing and skips when it
	// cannot.
	pin sync.RWMutex
}

// host is an address as 32-bit words (4-byte alignment keeps a host at 20 bytes)
// and the number of flows using it. IPv4 is held IPv4-mapped, as in records, and
// comes out as IPv4.
type host struct {
	addr [4]uint32
	refs uint32
}

func words(a addr128) [4]uint32 {
	return [4]uint32{uint32(a.hi >> 32), uint32(a.hi), uint32(a.lo >> 32), uint32(a.lo)}
}

func (h *host) netip() netip.Addr {
	a := addr128{uint64(h.addr[0])<<32 | uint64(h.addr[1]), uint64(h.addr[2])<<32 | uint64(h.addr[3])}
	return a.netip(a.hi == 0 && a.lo>>32 == 0xffff)
}

func (h *host) hash() uint64 {
	return mix(uint64(h.addr[0])<<32|uint64(h.addr[1]), uint64(h.addr[2])<<32|uint64(h.addr[3]))
}

const hostsPerChunk = 4096

func (t *hostTable) at(id HostID) *host { return &t.hosts[id/hostsPerChunk][id%hostsPerChunk] }

// listed marks id as listed in zero and reports whether it already was.
func (t *hostTable) listed(id HostID) bool {
	w, bit := &t.inZero[id/64], uint64(1)<<(id%64)
	was := *w&bit != 0
	*w |= bit
	return was
}

func (t *hostTable) unlist(id HostID) { t.inZero[id/64] &^= 1 << (id % 64) }

// internPair returns the ids of src and dst, counting one more flow using each.
func (t *hostTable) internPair(src, dst addr128) (HostID, HostID) {
	t.mu.Lock()
	s, d := t.intern(src), t.intern(dst)
	t.mu.Unlock()
	return s, d
}

func (t *hostTable) intern(a addr128) HostID {
	if (t.keyed+1)*2 > len(t.index) {
		t.grow()
	}
	mask := uint64(len(t.index) - 1)
	i := mix(a.hi, a.lo) & mask
	w := words(a)
	for ; t.index[i] != 0; i = (i + 1) & mask {
		if h := t.at(HostID(t.index[i] - 1)); h.addr == w {
			h.refs++
			if h.refs == 1 {
				t.inUse++
			}
			return HostID(t.index[i] - 1)
		}
	}
	var id HostID
	if n := len(t.free); n > 0 {
		id = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		id = HostID(t.ids)
		if t.ids%hostsPerChunk == 0 {
			t.hosts = append(t.hosts, new([hostsPerChunk]host))
			t.inZero = append(t.inZero, make([]uint64, hostsPerChunk/64)...)
		}
		t.ids++
	}
	*t.at(id) = host{addr: w, refs: 1}
	t.index[i] = uint32(id) + 1
	t.keyed++
	t.inUse++
	return id
}

func (t *hostTable) grow() {
	grown := make([]uint32, max(1024, 2*len(t.index)))
	mask := uint64(len(grown) - 1)
	for _, e := range t.index {
		if e == 0 {
			continue
		}
		i := t.at(HostID(e-1)).hash() & mask
		for grown[i] != 0 {
			i = (i + 1) & mask
		}
		grown[i] = e
	}
	t.index = grown
}

// releasePair counts one flow fewer using each of src and dst.
func (t *hostTable) releasePair(src, dst HostID) {
	t.mu.Lock()
	t.release(src)
	t.release(dst)
	t.mu.Unlock()
}

func (t *hostTable) release(id HostID) {
	h := t.at(id)
	h.refs--
	if h.refs == 0 {
		t.inUse--
		if !t.listed(id) {
			t.zero = append(t.zero, id)
		}
	}
}

// sweep makes the ids no flow uses any more reusable, those of names too, unless a
// query holds a pin (the next sweep will).
func (t *hostTable) sweep(names ...*nameTable) {
	if !t.pin.TryLock() {
		return
	}
	defer t.pin.Unlock()
	for _, n := range names {
		n.sweep()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range t.zero {
		t.unlist(id)
		if h := t.at(id); h.refs == 0 {
			t.unindex(id)
			*h = host{}
			t.free = append(t.free, id)
		}
	}
	t.zero = t.zero[:0]
}

// unindex removes id from the index and shifts the following run back.
func (t *hostTable) unindex(id HostID) {
	mask := uint64(len(t.index) - 1)
	i := t.at(id).hash() & mask
	for t.index[i] != uint32(id)+1 {
		i = (i + 1) & mask
	}
	probeDelete(t.index, i, func(e uint32) uint64 { return t.at(HostID(e - 1)).hash() })
	t.keyed--
}

// PinHosts keeps every host id naming the address it names now until the returned
// function is called. Hold it across a Window and the resolution of the ids it
// reported; it holds up nothing but the reuse of ids.
func (s *Store) PinHosts() (unpin func()) {
	s.hosts.pin.RLock()
	return s.hosts.pin.RUnlock
}

// HostAddr is the address id names (see HostID for how long that holds).
func (s *Store) HostAddr(id HostID) netip.Addr {
	t := &s.hosts
	t.mu.Lock()
	h := *t.at(id)
	t.mu.Unlock()
	return h.netip()
}

// HostIDs bounds the host ids in use now: every one is below it. Ids of hosts seen
// later may be above it.
func (s *Store) HostIDs() int {
	t := &s.hosts
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ids
}

// Hosts is the number of distinct addresses of the stored flows.
func (s *Store) Hosts() int {
	t := &s.hosts
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inUse
}

// matching is a bitmap over the host ids (bit id) whose address keep accepts; nil
// when none does. keep is called once per address, without the table's lock (the
// addresses are copied out a chunk at a time), so it may take its time. Hold the pin
// (PinHosts) while the bitmap is used: an id then keeps naming its address.
func (t *hostTable) matching(keep func(netip.Addr) bool) []uint64 {
	var bm []uint64
	var addrs [hostsPerChunk]netip.Addr
	for base := 0; ; base += hostsPerChunk {
		t.mu.Lock()
		ids := t.ids
		if base >= ids {
			t.mu.Unlock()
			break
		}
		n := min(hostsPerChunk, ids-base)
		ch := t.hosts[base/hostsPerChunk]
		for i := range n {
			if h := &ch[i]; h.refs > 0 {
				addrs[i] = h.netip()
			} else {
				addrs[i] = netip.Addr{}
			}
		}
		t.mu.Unlock()
		for i := range n {
			if addrs[i].IsValid() && keep(addrs[i]) {
				if bm == nil {
					bm = make([]uint64, (ids+63)/64)
				}
				if id := base + i; id/64 < len(bm) {
					bm[id/64] |= 1 << (id % 64)
				}
			}
		}
	}
	return bm
}
