// Package flow aggregates decoded packets into bidirectional flows and hands
// out per-flow deltas for export.
//
// A flow is keyed by protocol and the unordered pair of (address, port); VLAN
// ids, MACs and interfaces are not in the key (the first VLAN seen is kept as
// an attribute). The initiator (Delta.Src*) is the source of the first packet
// seen. The table is open-addressed over preallocated arrays and does not
// allocate per packet once its entry slice has grown to the working set.
package flow

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"time"

	"netwatch.dev/sensor/internal/decode"
)

// Status is the state of a flow as of a Delta.
type Status uint8

const (
	// StatusActive: the flow is open (it may still be ending by an
	// EndReason of ActiveTimeout, which only closes the current record, or
	// SensorStopped).
	StatusActive Status = iota
	// StatusIdle: the flow ended because it was silent (IdleTimeout) or
	// was the longest-idle flow of a full table (Evicted).
	StatusIdle
	// StatusClosed: TCP FIN in both directions or a RST was seen. While
	// the flow lingers (Config.FinLinger) its deltas carry EndReason None.
	StatusClosed
)

func (s Status) String() string {
	switch s {
	case StatusActive:
		return "active"
	case StatusIdle:
		return "idle"
	case StatusClosed:
		return "closed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// EndReason says why a record ended.
type EndReason uint8

const (
	EndNone          EndReason = iota // still open
	EndFIN                            // FIN both ways, after FinLinger
	EndRST                            // RST, after FinLinger
	EndIdleTimeout                    // no packet for IdleTimeout
	EndActiveTimeout                  // interim record; the flow continues
	EndEvicted                        // table full, longest-idle flow removed
	EndSensorStopped                  // Flush at shutdown / end of file
)

func (r EndReason) String() string {
	switch r {
	case EndNone:
		return "none"
	case EndFIN:
		return "fin"
	case EndRST:
		return "rst"
	case EndIdleTimeout:
		return "idle_timeout"
	case EndActiveTimeout:
		return "active_timeout"
	case EndEvicted:
		return "evicted"
	case EndSensorStopped:
		return "sensor_stopped"
	}
	return fmt.Sprintf("end_reason(%d)", uint8(r))
}

// Delta is what changed in one flow since its previous export. Summing the
// counters of every delta of a flow gives its totals. The pointer passed to
// an emit callback is only valid during the call.
type Delta struct {
	Protocol         uint8
	SrcAddr, DstAddr [16]byte // src = initiator; IPv4 in IPv4-mapped form
	IsIPv6           bool
	SrcPort, DstPort uint16
	VLAN             uint16 // first VLAN id seen on the flow (HasVLAN)
	HasVLAN          bool

	SrcPackets, SrcBytes, DstPackets, DstBytes uint64 // since the previous export
	// FirstSeen and LastSeen are the timestamps (unix nanos) of the flow's
	// first and last packet in arrival order; absolute, not per delta.
	FirstSeen, LastSeen int64
	// SrcTCPFlags and DstTCPFlags are the OR of the TCP flags seen in each
	// direction since the previous export.
	SrcTCPFlags, DstTCPFlags uint8

	Status    Status
	EndReason EndReason
}

// Src returns the initiator's address.
func (d *Delta) Src() netip.Addr { return addr(d.SrcAddr, d.IsIPv6) }

// Dst returns the responder's address.
func (d *Delta) Dst() netip.Addr { return addr(d.DstAddr, d.IsIPv6) }

// Removed reports whether this is the flow's last delta (the flow left the
// table). ActiveTimeout ends a record, not the flow.
func (d *Delta) Removed() bool {
	return d.EndReason != EndNone && d.EndReason != EndActiveTimeout
}

func addr(a [16]byte, v6 bool) netip.Addr {
	if v6 {
		return netip.AddrFrom16(a)
	}
	return netip.AddrFrom4([4]byte(a[12:16]))
}

// Stats are counters of a Table since it was created.
type Stats struct {
	Flows          int    // flows in the table now
	Created        uint64 // flows created
	Evicted        uint64 // flows evicted because the table was full
	EvictedLost    uint64 // evicted flows whose final delta overflowed MaxPendingEvicted
	IdleExpired    uint64 // flows removed by IdleTimeout
	Closed         uint64 // flows removed after FIN/RST + FinLinger
	ActiveTimeouts uint64 // interim records cut by ActiveTimeout
	Flushed        uint64 // flows removed by Flush

	Packets uint64 // packets added
	Bytes   uint64 // IP bytes added

	FragmentsAttributed   uint64 // non-first fragments given their first fragment's ports
	FragmentsUnattributed uint64 // non-first fragments without a known first fragment (ports 0)
	FragmentsForgotten    uint64 // first fragments overwritten because MaxFragments was reached
}

// key is a flow key: the (address, port) endpoints in a canonical order, so
// both directions of a flow have the same key. Addresses are kept as native
// 64-bit words: comparing and hashing them is a few register operations.
type key struct {
	a0, a1, b0, b1 uint64 // endpoint a and b addresses
	ports          uint32 // a's port << 16 | b's port
	proto          uint8
	v6             bool
}

func (k *key) aAddr() (r [16]byte) {
	binary.LittleEndian.PutUint64(r[0:8], k.a0)
	binary.LittleEndian.PutUint64(r[8:16], k.a1)
	return r
}

func (k *key) bAddr() (r [16]byte) {
	binary.LittleEndian.PutUint64(r[0:8], k.b0)
	binary.LittleEndian.PutUint64(r[8:16], k.b1)
	return r
}

const nilIdx = -1

// Entry state bits.
const (
	stInUse     = 1 << iota // the entry holds a flow
	stPending               // the entry is in Table.pending
	stChanged               // counters changed since the last export
	stAIsSrc                // the initiator is key endpoint a (bit stAIsSrcShift)
	stHasVLAN               // vlan is set
	stClosed                // FIN both ways or RST seen
	stClosedRST             // ... and it was a RST
)

// entry is exactly two cache lines (a test checks it): the first holds what
// a lookup compares and the list links, the second the counters a packet
// updates. Rarely used fields live in side arrays (Table.closedAt).
type entry struct {
	// line 1
	key      key
	flags    [2]uint8 // TCP flags since last export: [0] initiator, [1] responder
	allFlags [2]uint8 // TCP flags since creation, for FIN-both-ways detection
	hash     uint32
	prev     int32 // LRU list, head = longest idle (see Table.touch)
	next     int32
	// moved is the time epoch (ts >> Table.shift, low 16 bits) of the last
	// move to the LRU tail; it is only compared for equality, and a
	// wrap-around collision merely skips one move.
	moved uint16
	vlan  uint16
	state uint8

	// line 2
	pkts, bytes [2]uint64 // since last export: [0] initiator->responder, [1] reverse
	lastSeen    int64     // last packet in arrival order
	lastActive  int64     // newest timestamp: what idle expiry compares
	firstSeen   int64
	recordStart int64 // start of the current record, for ActiveTimeout
}

const stAIsSrcShift = 3 // stAIsSrc == 1 << stAIsSrcShift

func (e *entry) is(bit uint8) bool { return e.state&bit != 0 }

func b2u(b bool) uint8 {
	var u uint8
	if b {
		u = 1
	}
	return u
}

// Table is a bidirectional flow table. It is not safe for concurrent use.
type Table struct {
	cfg                               Config
	idle, active, linger, fragTimeout int64
	shift                             uint // LRU time epoch = ts >> shift
	seed                              uint64
	slots                             []uint64 // hash<<32 | entry index+1; 0 = empty
	mask                              uint32
	maxSlots                          int
	entries                           []entry
	closedAt                          []int64 // per entry: packet time of the FIN/RST that closed it
	free                              []int32
	head, tail                        int32
	pending                           []int32 // entries changed since last Export, or lingering
	evicted                           []Delta // final deltas of evicted flows, for Export
	frags                             fragTable
	delta                             Delta
	stats                             Stats
	release                           func() error // frees entries' memory
	sink                              uint64       // keeps AddBatch's cache-warming loads alive
	batch                             [BatchSize]prepared
}

// New builds a table; cfg must pass Check. It reserves address space for
// MaxFlows entries of 128 bytes, but RAM is only used as flows arrive (about
// 150 bytes per flow with the index). Call Close to release it.
func New(cfg Config) (*Table, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	maxSlots := 1 << bits.Len64(uint64(cfg.MaxFlows)*2-1) // load factor <= 1/2
	nslots := min(maxSlots, 1<<12)
	initial := min(cfg.MaxFlows, 1<<11)
	t := &Table{
		cfg:         cfg,
		idle:        int64(cfg.IdleTimeout),
		active:      int64(cfg.ActiveTimeout),
		linger:      int64(cfg.FinLinger),
		fragTimeout: int64(cfg.FragmentTimeout),
		seed:        rand.Uint64() | 1,
		slots:       make([]uint64, nslots),
		mask:        uint32(nslots - 1),
		maxSlots:    maxSlots,
		closedAt:    make([]int64, 0, initial),
		free:        make([]int32, 0, 1024),
		head:        nilIdx,
		tail:        nilIdx,
		pending:     make([]int32, 0, initial),
		evicted:     make([]Delta, 0, min(cfg.MaxPendingEvicted, 1024)),
	}
	// LRU granularity: a flow moves to the tail of the list at most once
	// per epoch of 2^shift ns, the largest power of two <= min(4s,
	// IdleTimeout/8) (2.1s with the defaults). A move writes two random
	// neighbours, i.e. two cache misses; once per epoch keeps that to a
	// few percent of packets. Idle expiry and eviction order are exact to
	// within one epoch.
	g := min(4*int64(time.Second), t.idle/8)
	t.shift = uint(max(bits.Len64(uint64(max(g, 1)))-1, 0))
	t.frags.init(cfg.MaxFragments, t.seed)
	var err error
	if t.entries, t.release, err = allocEntries(cfg.MaxFlows); err != nil {
		return nil, fmt.Errorf("new flow table: %w", err)
	}
	return t, nil
}

// Close releases the table's memory. The table must not be used afterwards.
func (t *Table) Close() error {
	if t.release == nil {
		return nil
	}
	err := t.release()
	t.release, t.entries = nil, nil
	return err
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Flows = len(t.entries) - len(t.free)
	s.FragmentsForgotten = t.frags.forgotten
	return s
}

func mix(h, w uint64) uint64 {
	h ^= w
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// hash multiplies each key word by its own odd constant (independent
// multiplies run in parallel, unlike a serial mix chain), folds them and
// finishes with one avalanche round. The per-table random seed makes the
// slot of a key unpredictable from outside, against crafted collisions.
func (t *Table) hash(k *key) uint32 {
	v := uint64(k.ports)<<16 | uint64(k.proto)<<8
	if k.v6 {
		v |= 1
	}
	h := (k.a0^t.seed)*0x9e3779b97f4a7c15 ^ (k.a1+t.seed)*0xc2b2ae3d27d4eb4f ^
		(k.b0^t.seed)*0x165667b19e3779f9 ^ (k.b1+t.seed)*0xd6e8feb86659fd93 ^
		(v^t.seed)*0xff51afd7ed558ccd
	h ^= h >> 32
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 29
	return uint32(h>>32) | 1 // never 0, so a slot is never all-zero
}

// Add accounts one decoded IP packet (decode Result.IsIP) seen at ts (unix
// nanos). Packets are expected in arrival order; timestamps may go backwards
// (several interfaces, reordering) and are then recorded as they come.
func (t *Table) Add(p *decode.Packet, ts int64) {
	var pk prepared
	t.prepare(p, ts, &pk)
	t.apply(p, ts, &pk)
}

// BatchSize is the number of packets AddBatch works on at a time.
const BatchSize = 32

// AddBatch is Add for each of pkts[i] at ts[i], in order, with the same
// result. It first computes every key and touches the index slots and
// entries they point to, so the cache misses of up to BatchSize packets
// overlap instead of following one another: with a table larger than the
// CPU caches this is several times faster than calling Add in a loop.
func (t *Table) AddBatch(pkts []decode.Packet, ts []int64) {
	ts = ts[:len(pkts)]
	for len(pkts) > 0 {
		n := min(len(pkts), BatchSize)
		b := &t.batch
		for i := range n {
			t.prepare(&pkts[i], ts[i], &b[i])
		}
		// Touch the index slots, then the entries they point to. These
		// loads do not depend on each other, so the CPU overlaps their
		// cache misses instead of taking them one packet at a time.
		var sink uint64
		for i := range n {
			sink += t.slots[b[i].hash&t.mask]
		}
		for i := range n {
			if s := t.slots[b[i].hash&t.mask]; s != 0 {
				if idx := int(uint32(s)) - 1; idx < len(t.entries) {
					e := &t.entries[idx]
					sink += e.key.a0 + e.pkts[0]
				}
			}
		}
		t.sink += sink
		for i := range n {
			t.apply(&pkts[i], ts[i], &b[i])
		}
		pkts, ts = pkts[n:], ts[n:]
	}
}

// prepared is a packet's flow key, ready for lookup.
type prepared struct {
	key   key
	hash  uint32
	fromA bool
}

func (t *Table) prepare(p *decode.Packet, ts int64, pk *prepared) {
	proto, sport, dport := p.Protocol, p.SrcPort, p.DstPort
	if p.IsFragment {
		proto, sport, dport = t.fragment(p, ts)
	}
	s0, s1 := binary.LittleEndian.Uint64(p.Src[0:8]), binary.LittleEndian.Uint64(p.Src[8:16])
	d0, d1 := binary.LittleEndian.Uint64(p.Dst[0:8]), binary.LittleEndian.Uint64(p.Dst[8:16])
	// fromA: the packet goes from key endpoint a to b, a being the lesser
	// of (address, port) in any fixed total order: here the 144-bit number
	// addr word 0, addr word 1, port. Identical endpoints give fromA for
	// both directions, so everything counts as initiator traffic (the
	// oracle's convention). Both the comparison and the swap are
	// branch-free: packet directions are random, and mispredictions here
	// cost more than the arithmetic.
	_, borrow := bits.Sub64(uint64(dport), uint64(sport), 0)
	_, borrow = bits.Sub64(d1, s1, borrow)
	_, borrow = bits.Sub64(d0, s0, borrow)
	fromA := borrow == 0 // src <= dst
	m := borrow - 1      // all ones if fromA
	k := &pk.key
	k.proto, k.v6 = proto, p.IsIPv6
	k.a0, k.b0 = d0^((s0^d0)&m), s0^((s0^d0)&m)
	k.a1, k.b1 = d1^((s1^d1)&m), s1^((s1^d1)&m)
	sp, dp := uint32(sport), uint32(dport)
	m32 := uint32(m)
	ap, bp := dp^((sp^dp)&m32), sp^((sp^dp)&m32)
	k.ports = ap<<16 | bp
	pk.fromA = fromA
	pk.hash = t.hash(k)
}

func (t *Table) apply(p *decode.Packet, ts int64, pk *prepared) {
	fromA := pk.fromA
	idx := t.lookup(&pk.key, pk.hash)
	var e *entry
	if idx == nilIdx {
		idx = t.create(&pk.key, pk.hash, ts)
		e = &t.entries[idx]
		if fromA {
			e.state |= stAIsSrc
		}
	} else {
		e = &t.entries[idx]
		t.touch(e, idx, ts)
	}
	if p.HasVLAN && !e.is(stHasVLAN) {
		e.vlan = p.VLAN
		e.state |= stHasVLAN
	}

	// dir is 0 for initiator->responder, 1 for the reverse. Computed
	// without a branch: the direction of consecutive packets is random, and
	// a mispredicted branch on entry data would wait for its cache miss.
	dir := (b2u(fromA) ^ e.state>>stAIsSrcShift) & 1
	e.pkts[dir]++
	e.bytes[dir] += uint64(p.Length)
	e.lastSeen = ts
	e.lastActive = max(e.lastActive, ts)
	if e.state&(stChanged|stPending) != stChanged|stPending {
		if !e.is(stPending) {
			t.pending = append(t.pending, idx)
		}
		e.state |= stChanged | stPending
	}
	t.stats.Packets++
	t.stats.Bytes += uint64(p.Length)

	if pk.key.proto == 6 && p.TCPFlags != 0 {
		f := p.TCPFlags
		e.flags[dir] |= f
		e.allFlags[dir] |= f
		if !e.is(stClosed) {
			// RFC 9293: RST aborts the connection at once; after a FIN
			// each way only the last ACK remains.
			const fin, rst = 0x01, 0x04
			switch {
			case f&rst != 0:
				e.state |= stClosed | stClosedRST
				t.closedAt[idx] = ts
			case e.allFlags[0]&e.allFlags[1]&fin != 0:
				e.state |= stClosed
				t.closedAt[idx] = ts
			}
		}
	}
}

// touch records activity of an existing flow in the LRU list. Moving an entry
// to the tail dirties two neighbours' cache lines, so it happens at most once
// per time epoch; lastActive tells expiry and eviction about the rest.
func (t *Table) touch(e *entry, idx int32, ts int64) {
	if ep := uint16(ts >> t.shift); e.moved != ep {
		e.moved = ep
		if idx != t.tail {
			t.unlink(idx)
			t.pushTail(idx)
		}
	}
}

// staleHead moves the LRU head to the tail while it has been active since its
// last move (lazy LRU, see touch), so the head is the longest-idle flow to
// within one epoch. Each entry moves at most once per call.
func (t *Table) staleHead() {
	for n := len(t.entries); t.head != nilIdx && n > 0; n-- {
		e := &t.entries[t.head]
		ep := uint16(e.lastActive >> t.shift)
		if e.moved == ep {
			return
		}
		e.moved = ep
		idx := t.head
		t.unlink(idx)
		t.pushTail(idx)
	}
}

func (t *Table) lookup(k *key, h uint32) int32 {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return nilIdx
		}
		if uint32(s>>32) == h {
			idx := int32(uint32(s)) - 1
			if e := &t.entries[idx]; e.key.a0 == k.a0 && e.key.b0 == k.b0 && e.key.a1 == k.a1 &&
				e.key.b1 == k.b1 && e.key.ports == k.ports && e.key.proto == k.proto && e.key.v6 == k.v6 {
				return idx
			}
		}
	}
}

func (t *Table) insertSlot(h uint32, idx int32) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i] == 0 {
			t.slots[i] = uint64(h)<<32 | uint64(uint32(idx+1))
			return
		}
	}
}

// grow doubles the index when it is half full. It allocates, but only while
// the table grows towards its working set.
func (t *Table) grow() {
	n := len(t.slots) * 2
	t.slots = make([]uint64, n)
	t.mask = uint32(n - 1)
	for i := range t.entries {
		if e := &t.entries[i]; e.is(stInUse) {
			t.insertSlot(e.hash, int32(i))
		}
	}
}

// create inserts a new flow, evicting the longest-idle one if the table is full.
func (t *Table) create(k *key, h uint32, ts int64) int32 {
	flows := len(t.entries) - len(t.free)
	if flows >= t.cfg.MaxFlows {
		t.staleHead()
		victim := t.head
		t.stats.Evicted++
		if len(t.evicted) < t.cfg.MaxPendingEvicted {
			t.evicted = append(t.evicted, Delta{})
			t.fill(&t.evicted[len(t.evicted)-1], victim, StatusIdle, EndEvicted)
		} else {
			t.stats.EvictedLost++
		}
		t.remove(victim)
	} else if (flows+1)*2 > len(t.slots) && len(t.slots) < t.maxSlots {
		t.grow()
	}
	var idx int32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		// entries has capacity MaxFlows: this never reallocates.
		t.entries = t.entries[:len(t.entries)+1]
		t.closedAt = append(t.closedAt, 0)
		idx = int32(len(t.entries) - 1)
	}
	e := &t.entries[idx]
	pending := e.state & stPending // may still sit in the pending list from a previous flow
	*e = entry{
		key:         *k,
		hash:        h,
		moved:       uint16(ts >> t.shift),
		state:       stInUse | pending,
		firstSeen:   ts,
		lastSeen:    ts,
		lastActive:  ts,
		recordStart: ts,
	}
	t.insertSlot(h, idx)
	t.pushTail(idx)
	t.stats.Created++
	return idx
}

// remove deletes entry idx from the index and the LRU list and frees it. It
// stays in the pending list (if it is there) until the next Export skips it.
func (t *Table) remove(idx int32) {
	e := &t.entries[idx]
	// Find its slot, then backward-shift the cluster behind it (linear
	// probing deletion without tombstones).
	want := uint64(e.hash)<<32 | uint64(uint32(idx+1))
	i := e.hash & t.mask
	for t.slots[i] != want {
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		s := t.slots[j]
		if s == 0 {
			break
		}
		home := uint32(s>>32) & t.mask
		// Move s back to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = s
			i = j
		}
	}
	t.slots[i] = 0
	t.unlink(idx)
	e.state &^= stInUse
	t.free = append(t.free, idx)
}

func (t *Table) unlink(idx int32) {
	e := &t.entries[idx]
	if e.prev != nilIdx {
		t.entries[e.prev].next = e.next
	} else {
		t.head = e.next
	}
	if e.next != nilIdx {
		t.entries[e.next].prev = e.prev
	} else {
		t.tail = e.prev
	}
}

func (t *Table) pushTail(idx int32) {
	e := &t.entries[idx]
	e.prev, e.next = t.tail, nilIdx
	if t.tail != nilIdx {
		t.entries[t.tail].next = idx
	} else {
		t.head = idx
	}
	t.tail = idx
}

// fill writes entry idx's delta into d and resets its per-export counters.
func (t *Table) fill(d *Delta, idx int32, st Status, why EndReason) {
	e := &t.entries[idx]
	d.Protocol, d.IsIPv6 = e.key.proto, e.key.v6
	a, b := e.key.aAddr(), e.key.bAddr()
	ap, bp := uint16(e.key.ports>>16), uint16(e.key.ports)
	if e.is(stAIsSrc) {
		d.SrcAddr, d.SrcPort, d.DstAddr, d.DstPort = a, ap, b, bp
	} else {
		d.SrcAddr, d.SrcPort, d.DstAddr, d.DstPort = b, bp, a, ap
	}
	d.VLAN, d.HasVLAN = e.vlan, e.is(stHasVLAN)
	d.SrcPackets, d.SrcBytes = e.pkts[0], e.bytes[0]
	d.DstPackets, d.DstBytes = e.pkts[1], e.bytes[1]
	d.SrcTCPFlags, d.DstTCPFlags = e.flags[0], e.flags[1]
	d.FirstSeen, d.LastSeen = e.firstSeen, e.lastSeen
	d.Status, d.EndReason = st, why
	e.pkts, e.bytes, e.flags = [2]uint64{}, [2]uint64{}, [2]uint8{}
	e.state &^= stChanged
}

func (e *entry) status() Status {
	if e.is(stClosed) {
		return StatusClosed
	}
	return StatusActive
}

func (e *entry) closeReason() EndReason {
	if e.is(stClosedRST) {
		return EndRST
	}
	return EndFIN
}

// Export emits, at time now (unix nanos: packet time offline, wall time
// live), the final delta of every flow that ended — evicted since the last
// call, idle for IdleTimeout, closed for FinLinger — and removes them, then
// the delta of every other flow that changed since the last call, marking
// those whose record has been open for ActiveTimeout as interim records
// (EndActiveTimeout). The Delta passed to emit is reused: copy what you keep.
func (t *Table) Export(now int64, emit func(*Delta)) { t.export(now, emit, true) }

// ExportEnded is Export for consumers that want whole records (--output jsonl):
// only the records that end (including interim active-timeout records) are
// emitted, each with its counters since the record started; flows that go on
// keep accumulating and are not emitted.
func (t *Table) ExportEnded(now int64, emit func(*Delta)) { t.export(now, emit, false) }

func (t *Table) export(now int64, emit func(*Delta), changes bool) {
	t.emitEvicted(emit)

	// Idle expiry from the LRU head (longest idle to within one epoch,
	// see touch). Arrival order is timestamp order except around
	// reordering, so a few expired flows may wait for the next Export.
	for {
		t.staleHead()
		if t.head == nilIdx {
			break
		}
		idx := t.head
		e := &t.entries[idx]
		if now-e.lastActive < t.idle {
			break
		}
		st := StatusIdle
		if e.is(stClosed) {
			st = StatusClosed
		}
		t.fill(&t.delta, idx, st, EndIdleTimeout)
		emit(&t.delta)
		t.stats.IdleExpired++
		t.remove(idx)
	}

	keep := t.pending[:0]
	for _, idx := range t.pending {
		e := &t.entries[idx]
		if !e.is(stInUse) {
			e.state &^= stPending
			continue
		}
		changed := e.is(stChanged)
		switch {
		case e.is(stClosed) && now-t.closedAt[idx] >= t.linger:
			t.fill(&t.delta, idx, StatusClosed, e.closeReason())
			emit(&t.delta)
			t.stats.Closed++
			e.state &^= stPending
			t.remove(idx)
			continue
		case changed && now-e.recordStart >= t.active:
			t.fill(&t.delta, idx, e.status(), EndActiveTimeout)
			emit(&t.delta)
			t.stats.ActiveTimeouts++
			e.recordStart = now
		case changed && changes:
			t.fill(&t.delta, idx, e.status(), EndNone)
			emit(&t.delta)
		}
		if e.is(stClosed) {
			keep = append(keep, idx) // lingering: look again next time
		} else {
			e.state &^= stPending
		}
	}
	t.pending = keep
}

func (t *Table) emitEvicted(emit func(*Delta)) {
	for i := range t.evicted {
		emit(&t.evicted[i])
	}
	clear(t.evicted)
	t.evicted = t.evicted[:0]
}

// Flush emits every remaining flow with the given end reason (normally
// EndSensorStopped; FIN or RST for flows that had closed and were lingering)
// and empties the table. Flows come out roughly
// longest-idle first.
func (t *Table) Flush(reason EndReason, emit func(*Delta)) {
	t.emitEvicted(emit)
	for idx := t.head; idx != nilIdx; idx = t.entries[idx].next {
		e := &t.entries[idx]
		why := reason
		if e.is(stClosed) {
			// FIN both ways or RST was seen: that is how the flow ended, even if
			// its linger had not run out when the sensor stopped.
			why = e.closeReason()
		}
		t.fill(&t.delta, idx, e.status(), why)
		emit(&t.delta)
		t.stats.Flushed++
	}
	clear(t.slots)
	clear(t.entries) // drop stale state bits (stPending) of freed entries
	t.entries = t.entries[:0]
	t.closedAt = t.closedAt[:0]
	t.free = t.free[:0]
	t.pending = t.pending[:0]
	t.head, t.tail = nilIdx, nilIdx
}
