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
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"unsafe"

	"netwatch.dev/proto/flowmeta"
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
	// was evicted from a full table (Evicted, see Table.victim).
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
	EndEvicted                        // table full, an idle flow removed (see Table.victim)
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

	// ICMPType and ICMPCode are those of the flow's first ICMP or ICMPv6 packet
	// (HasICMP), for the Community ID.
	ICMPType, ICMPCode uint8
	HasICMP            bool
	// App is what payload inspection recognised (see Table.Annotate), AppNone
	// when nothing.
	App flowmeta.App
	// ServerName is the TLS SNI or HTTP Host seen, "" when none.
	ServerName string
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

const nilIdx = -1

// Hot state bits (hot.state). stV6 is part of the key.
const (
	stV6      = 1 << iota // the key's addresses are IPv6
	stInUse               // the entry holds a flow
	stPending             // the entry is in Table.pending
	stAIsSrc              // the initiator is key endpoint a (bit stAIsSrcShift)
	stHasVLAN             // cold.vlan is set
	stClosed              // FIN both ways or RST seen
	stFin0                // FIN seen from the initiator (bit stFinShift)
	stFin1                // FIN seen from the responder
)

const (
	stAIsSrcShift = 3 // stAIsSrc == 1 << stAIsSrcShift
	stFinShift    = 6 // stFin0 == 1 << stFinShift
)

// hot is the part of a flow a packet reads and writes: the key and the
// counters, in exactly one cache line (a test checks it), so a packet of a
// known flow costs one cache miss in the entries (plus one in the index). The
// 32-bit counters hold what changed since the last export; the rare carry
// out of them goes to cold.
type hot struct {
	a0, a1, b0, b1 uint64 // key: endpoint a and b addresses
	ports          uint32 // key: a's port << 16 | b's port
	proto          uint8  // key
	state          uint8  // st* bits, stV6 being part of the key
	flags          [2]uint8
	pkts, bytes    [2]uint32 // since last export: [0] initiator->responder, [1] reverse
	lastSeen       int64     // timestamp of the last packet in arrival order
}

// cold is the rest of a flow, in a second array: what a packet touches only
// when something rare happens (a VLAN, a close, a counter carry, a timestamp
// older than the flow's last) and what export reads.
type cold struct {
	hash        uint32
	vlan        uint16
	pktsHi      [2]uint16 // carries out of hot.pkts: bits 32..47
	bytesHi     [2]uint32 // carries out of hot.bytes: bits 32..63
	rst         bool      // the close was a RST
	firstSeen   int64     // first packet in arrival order
	recordStart int64     // start of the current record, for ActiveTimeout
	closedAt    int64     // packet time of the FIN/RST that closed the flow
	// lastActive is the newest timestamp seen before a packet with an
	// older one (timestamps going backwards); the flow's newest timestamp,
	// what idle expiry compares, is max(lastActive, hot.lastSeen).
	lastActive int64
	// icmpType and icmpCode are the flow's first ICMP header's (hasICMP).
	icmpType, icmpCode uint8
	hasICMP            bool
	app                flowmeta.App // first payload finding (Annotate)
	named              bool         // Table.names holds the flow's server name
	_                  [3]byte      // to a whole cache line: export reads one line per flow
}

func (e *hot) is(bit uint8) bool { return e.state&bit != 0 }

func (c *cold) active(h *hot) int64 { return max(c.lastActive, h.lastSeen) }

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
	seed                              uint64
	// slots is the index: open addressing with linear probing at a load
	// of at most 1/4. A slot is the entry's index + 1 in its low idxBits
	// bits and the high bits of the flow's hash (a tag) above them; 0 is
	// empty.
	slots    []uint32
	mask     uint32 // len(slots) - 1
	idxMask  uint32 // 1<<idxBits - 1
	maxSlots int
	hot      []hot  // per entry, indexed like cold
	cold     []cold // len(cold) == len(hot)
	free     []int32
	hand     int32   // next entry Table.victim samples
	pending  []int32 // entries changed since last Export, or lingering
	evicted  []Delta // final deltas of evicted flows, for Export
	frags    fragTable
	delta    Delta
	stats    Stats
	release  func() error // frees hot and cold
	batch    [BatchSize]prepared
	// names are the server names of the flows that have one (cold.named),
	// by entry: one string per named flow, made once by Annotate, deleted
	// when the flow leaves the table.
	names map[int32]string
}

// New builds a table; cfg must pass Check. It reserves address space for
// MaxFlows entries of 128 bytes (hot and cold parts), but RAM is only used as
// flows arrive (about 150 bytes per flow with the index). Call Close to
// release it.
func New(cfg Config) (*Table, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	maxSlots := 1 << bits.Len64(uint64(cfg.MaxFlows)*4-1) // load factor <= 1/4
	nslots := min(maxSlots, 1<<12)
	initial := min(cfg.MaxFlows, 1<<11)
	t := &Table{
		cfg:         cfg,
		idle:        int64(cfg.IdleTimeout),
		active:      int64(cfg.ActiveTimeout),
		linger:      int64(cfg.FinLinger),
		fragTimeout: int64(cfg.FragmentTimeout),
		seed:        rand.Uint64() | 1,
		slots:       make([]uint32, nslots),
		mask:        uint32(nslots - 1),
		idxMask:     1<<bits.Len(uint(cfg.MaxFlows)) - 1,
		maxSlots:    maxSlots,
		free:        make([]int32, 0, 1024),
		pending:     make([]int32, 0, initial),
		evicted:     make([]Delta, 0, min(cfg.MaxPendingEvicted, 1024)),
		names:       make(map[int32]string),
	}
	t.frags.init(cfg.MaxFragments, t.seed)
	var err error
	if t.hot, t.cold, t.release, err = allocEntries(cfg.MaxFlows); err != nil {
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
	t.release, t.hot, t.cold = nil, nil, nil
	return err
}

// Stats returns the table's counters.
func (t *Table) Stats() Stats {
	s := t.stats
	s.Flows = len(t.hot) - len(t.free)
	s.FragmentsForgotten = t.frags.forgotten
	return s
}

func mix(h, w uint64) uint64 {
	h ^= w
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// Add accounts one decoded IP packet (decode Result.IsIP) seen at ts (unix
// nanos). Packets are expected in arrival order; timestamps may go backwards
// (several interfaces, reordering) and are then recorded as they come.
func (t *Table) Add(p *decode.Packet, ts int64) {
	var pk prepared
	t.prepare(p, ts, &pk)
	t.apply(p, ts, &pk)
}

// BatchSize is the number of packets AddBatch works on at a time; callers
// batch this many packets (more are split, fewer work too).
const BatchSize = 256

// group is the pipeline stage width of AddBatch: the packets whose memory is
// requested together. 8 was the fastest of 8, 16, 32 and 64 here.
const group = 8

// AddBatch is Add for each of pkts[i] at ts[i], in order, with the same
// result, but fast with a table larger than the CPU caches, where Add waits
// for two cache misses per packet (the index slot, then the entry). AddBatch
// runs a software pipeline over groups of packets: while it applies group g,
// the entries of groups g+1 and g+2 and the index slots of group g+3 are on
// their way from memory (prefetch instructions, which do not stall the CPU
// the way loads do). The prefetches are only hints: apply does the real lookup, so a
// slot or entry that changed in between (a flow created or evicted earlier in
// the batch) costs a miss, never a wrong result.
func (t *Table) AddBatch(pkts []decode.Packet, ts []int64) {
	ts = ts[:len(pkts)]
	for len(pkts) > 0 {
		n := min(len(pkts), BatchSize)
		t.addBatch(pkts[:n], ts[:n])
		pkts, ts = pkts[n:], ts[n:]
	}
}

func (t *Table) addBatch(pkts []decode.Packet, ts []int64) {
	b := t.batch[:len(pkts)]
	// Keys and hashes first: arithmetic only (and, in order, the fragment
	// table for fragments).
	for i := range pkts {
		t.prepare(&pkts[i], ts[i], &b[i])
	}
	// Then the pipeline, one group of packets per step: prefetch the index
	// slots of group g+3, read the slots of group g+2 (prefetched a step
	// earlier) and prefetch the hot lines they point to, apply group g.
	const slotLead, entryLead = 3, 2
	var addr [group]uintptr
	ngroups := (len(b) + group - 1) / group
	for g := -slotLead; g < ngroups; g++ {
		if s := g + slotLead; s < ngroups {
			lo, hi := s*group, min((s+1)*group, len(b))
			base, mask := uintptr(unsafe.Pointer(unsafe.SliceData(t.slots))), t.mask
			for i := lo; i < hi; i++ {
				addr[i-lo] = base + uintptr(b[i].hash&mask)*4
			}
			prefetch(&addr[0], hi-lo)
		}
		if e := g + entryLead; e >= 0 && e < ngroups {
			lo, hi := e*group, min((e+1)*group, len(b))
			base, n := uintptr(unsafe.Pointer(unsafe.SliceData(t.hot))), 0
			for i := lo; i < hi; i++ {
				s := t.slotOf(b[i].hash)
				if b[i].slot = s; s != 0 {
					addr[n] = base + uintptr(s&t.idxMask-1)*unsafe.Sizeof(hot{})
					n++
				}
			}
			prefetch(&addr[0], n)
		}
		if g >= 0 {
			for i := g * group; i < min((g+1)*group, len(b)); i++ {
				t.apply(&pkts[i], ts[i], &b[i])
			}
		}
	}
}

// prepared is a packet's flow key, ready for lookup.
type prepared struct {
	key   key
	hash  uint32
	fromA bool
	// slot is what AddBatch's pipeline read from the index for this packet
	// (slotOf), a hint for apply: the index may have changed since.
	slot uint32
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
	a0, b0 := d0^((s0^d0)&m), s0^((s0^d0)&m)
	a1, b1 := d1^((s1^d1)&m), s1^((s1^d1)&m)
	sp, dp := uint32(sport), uint32(dport)
	m32 := uint32(m)
	ports := (dp^((sp^dp)&m32))<<16 | sp ^ ((sp ^ dp) & m32)
	// The hash multiplies each key word by its own odd constant
	// (independent multiplies run in parallel, unlike a serial mix chain),
	// folds them and finishes with one avalanche round. The per-table
	// random seed makes the slot of a key unpredictable from outside,
	// against crafted collisions. It works on the local copies: reading
	// the key back from pk would wait on the stores.
	seed := t.seed
	v := (uint64(ports)<<16 | uint64(proto)<<8 | uint64(b2u(p.IsIPv6))) ^ seed
	h := (a0^seed)*0x9e3779b97f4a7c15 ^ (a1+seed)*0xc2b2ae3d27d4eb4f ^
		(b0^seed)*0x165667b19e3779f9 ^ (b1+seed)*0xd6e8feb86659fd93 ^
		v*0xff51afd7ed558ccd
	h = (h ^ h>>32) * 0xbf58476d1ce4e5b9
	k := &pk.key // field by field: a composite literal would go through the stack
	k.a0, k.a1, k.b0, k.b1 = a0, a1, b0, b1
	k.ports, k.proto, k.v6 = ports, proto, p.IsIPv6
	pk.fromA = fromA
	pk.slot = 0
	pk.hash = uint32((h ^ h>>29) >> 32)
}

func (t *Table) apply(p *decode.Packet, ts int64, pk *prepared) {
	fromA := pk.fromA
	idx := t.lookup(&pk.key, pk.hash, pk.slot)
	var e *hot
	if idx == nilIdx {
		idx = t.create(&pk.key, pk.hash, ts)
		e = &t.hot[idx]
		e.state |= b2u(fromA) << stAIsSrcShift
	} else {
		e = &t.hot[idx]
		if ts < e.lastSeen { // rare: time going backwards (see cold.lastActive)
			c := &t.cold[idx]
			c.lastActive = max(c.lastActive, e.lastSeen)
		}
	}
	if p.HasVLAN && !e.is(stHasVLAN) {
		t.cold[idx].vlan = p.VLAN
		e.state |= stHasVLAN
	}
	if p.HasICMP { // rare: only ICMP packets read the cold line for it
		if c := &t.cold[idx]; !c.hasICMP {
			c.icmpType, c.icmpCode, c.hasICMP = p.ICMPType, p.ICMPCode, true
		}
	}

	// dir is 0 for initiator->responder, 1 for the reverse. Computed
	// without a branch: the direction of consecutive packets is random, and
	// a mispredicted branch on entry data would wait for its cache miss.
	dir := (b2u(fromA) ^ e.state>>stAIsSrcShift) & 1
	if e.pkts[dir]++; e.pkts[dir] == 0 {
		t.cold[idx].pktsHi[dir]++
	}
	if old := e.bytes[dir]; e.bytes[dir]+p.Length < old {
		t.cold[idx].bytesHi[dir]++
	}
	e.bytes[dir] += p.Length
	e.lastSeen = ts
	if !e.is(stPending) {
		t.pending = append(t.pending, idx)
		e.state |= stPending
	}
	t.stats.Packets++
	t.stats.Bytes += uint64(p.Length)

	// TCP flags, without a branch on the protocol (TCP and UDP packets
	// come mixed, so it would mispredict): the decoder leaves TCPFlags 0
	// for every other protocol.
	f := p.TCPFlags
	e.flags[dir] |= f
	const fin, rst = 0x01, 0x04
	if f&(fin|rst) != 0 && !e.is(stClosed) {
		// RFC 9293: RST aborts the connection at once; after a FIN each
		// way only the last ACK remains.
		e.state |= (f & fin) << (stFinShift + dir)
		switch {
		case f&rst != 0:
			e.state |= stClosed
			c := &t.cold[idx]
			c.rst, c.closedAt = true, ts
		case e.state&(stFin0|stFin1) == stFin0|stFin1:
			e.state |= stClosed
			t.cold[idx].closedAt = ts
		}
	}
}

// Annotate records what payload inspection found in packet p (added to the
// table before: Add or AddBatch) on p's flow: the application and the server
// name (nil or empty: none; copied). The first finding of a flow wins; later
// ones cost a lookup and change nothing. Every delta of the flow carries it
// from then on, the final one included. A flow that already left the table
// (evicted in the same batch) is not annotated.
func (t *Table) Annotate(p *decode.Packet, app flowmeta.App, name []byte) {
	if app == flowmeta.AppNone {
		return
	}
	// A packet with a payload is not a non-first fragment, so its own
	// ports are its flow's: prepare must not consult (and update) the
	// fragment table again.
	q := *p
	q.IsFragment = false
	var pk prepared
	t.prepare(&q, 0, &pk)
	idx := t.lookup(&pk.key, pk.hash, 0)
	if idx == nilIdx {
		return
	}
	c := &t.cold[idx]
	if c.app != flowmeta.AppNone {
		return
	}
	c.app = app
	if len(name) > 0 {
		t.names[idx] = string(name)
		c.named = true
	}
}

// slotOf returns the slot that holds hash h's tag: usually the home slot or
// the next one, chosen between without a branch (a branch on which one would
// mispredict on every collision), else the first slot with the tag further
// on (a predictable branch, rarely taken), or 0 when an empty slot comes
// first. The slot's entry still has to be checked for the key.
func (t *Table) slotOf(h uint32) uint32 {
	i, tag := h&t.mask, h&^t.idxMask
	s := t.slots[i]
	if s1 := t.slots[(i+1)&t.mask]; s&^t.idxMask != tag {
		s = s1
	}
	if s&^t.idxMask != tag {
		s = t.probe((i+2)&t.mask, tag)
	}
	return s
}

// probe returns the first slot from i on with the tag, or 0 at an empty slot.
//
//go:noinline (keeps slotOf small)
func (t *Table) probe(i, tag uint32) uint32 {
	for ; ; i = (i + 1) & t.mask {
		if s := t.slots[i]; s == 0 || s&^t.idxMask == tag {
			return s
		}
	}
}

// holds reports whether the entry is in use with key k, comparing every field
// at once (one branch).
func (e *hot) holds(k *key) bool {
	return (e.a0^k.a0)|(e.a1^k.a1)|(e.b0^k.b0)|(e.b1^k.b1)|uint64(e.ports^k.ports)|uint64(e.proto^k.proto)|
		uint64((e.state^(b2u(k.v6)|stInUse))&(stV6|stInUse)) == 0
}

// lookup returns the entry of key k with hash h, or nilIdx. slot is a hint:
// the slot slotOf(h) returned a while ago (0 if unknown). A slot that went
// stale since costs a search, never a wrong answer, because holds checks the
// key and that the entry is in use, and a key is in at most one entry.
func (t *Table) lookup(k *key, h, slot uint32) int32 {
	if slot != 0 && t.hot[slot&t.idxMask-1].holds(k) {
		return int32(slot&t.idxMask) - 1
	}
	s := t.slotOf(h)
	if s == 0 { // an empty slot came before any slot with the tag: not in the table
		return nilIdx
	}
	if t.hot[s&t.idxMask-1].holds(k) {
		return int32(s&t.idxMask) - 1
	}
	// That slot's flow only shares the tag: search the whole run.
	tag := h &^ t.idxMask
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s == 0 {
			return nilIdx
		}
		if s&^t.idxMask == tag {
			idx := int32(s&t.idxMask) - 1
			if t.hot[idx].holds(k) {
				return idx
			}
		}
	}
}

func (t *Table) insertSlot(h uint32, idx int32) {
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		if t.slots[i] == 0 {
			t.slots[i] = h&^t.idxMask | uint32(idx+1)
			return
		}
	}
}

// grow doubles the index when it is a quarter full. It allocates, but only
// while the table grows towards its working set.
func (t *Table) grow() {
	n := len(t.slots) * 2
	t.slots = make([]uint32, n)
	t.mask = uint32(n - 1)
	for i := range t.hot {
		if t.hot[i].is(stInUse) {
			t.insertSlot(t.cold[i].hash, int32(i))
		}
	}
}

// create inserts a new flow, evicting one (see victim) if the table is full.
func (t *Table) create(k *key, h uint32, ts int64) int32 {
	flows := len(t.hot) - len(t.free)
	if flows >= t.cfg.MaxFlows {
		victim := t.victim()
		t.stats.Evicted++
		if len(t.evicted) < t.cfg.MaxPendingEvicted {
			t.evicted = append(t.evicted, Delta{})
			t.fill(&t.evicted[len(t.evicted)-1], victim, StatusIdle, EndEvicted)
		} else {
			t.stats.EvictedLost++
		}
		t.remove(victim)
	} else if (flows+1)*4 > len(t.slots) && len(t.slots) < t.maxSlots {
		t.grow()
	}
	var idx int32
	if n := len(t.free); n > 0 {
		idx = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		// hot and cold have capacity MaxFlows: this never reallocates.
		t.hot = t.hot[:len(t.hot)+1]
		t.cold = t.cold[:len(t.cold)+1]
		idx = int32(len(t.hot) - 1)
	}
	e := &t.hot[idx]
	pending := e.state & stPending // may still sit in the pending list from a previous flow
	*e = hot{
		a0: k.a0, a1: k.a1, b0: k.b0, b1: k.b1,
		ports:    k.ports,
		proto:    k.proto,
		state:    stInUse | pending | b2u(k.v6)*stV6,
		lastSeen: ts,
	}
	t.cold[idx] = cold{
		hash:        h,
		firstSeen:   ts,
		recordStart: ts,
		lastActive:  ts,
	}
	t.insertSlot(h, idx)
	t.stats.Created++
	return idx
}

// remove deletes entry idx from the index and frees it. It
// stays in the pending list (if it is there) until the next Export skips it.
func (t *Table) remove(idx int32) {
	h := t.cold[idx].hash
	// Find its slot, then backward-shift the cluster behind it (linear
	// probing deletion without tombstones).
	want := h&^t.idxMask | uint32(idx+1)
	i := h & t.mask
	for t.slots[i] != want {
		i = (i + 1) & t.mask
	}
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		s := t.slots[j]
		if s == 0 {
			break
		}
		home := t.cold[s&t.idxMask-1].hash & t.mask
		// Move s back to i unless its home lies cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			t.slots[i] = s
			i = j
		}
	}
	t.slots[i] = 0
	t.hot[idx].state &^= stInUse
	t.free = append(t.free, idx)
	if t.cold[idx].named {
		delete(t.names, idx)
		t.cold[idx].named = false
	}
}

// evictSamples is how many flows Table.victim compares.
const evictSamples = 8

// victim picks the flow to evict from a full table: the longest idle of the
// next evictSamples entries at a clock hand that goes round the entries. This
// is the sampled LRU of Redis (and the cost of a CLOCK sweep): a few adjacent
// cache lines per new flow, where an exact LRU list would cost two random
// cache misses on many packets. The victim is older than about 90% of the
// table on average; a table of at most evictSamples flows gets the exact
// longest idle. The table must be full (every entry in use).
func (t *Table) victim() int32 {
	best, bestTS := int32(nilIdx), int64(math.MaxInt64)
	n := int32(len(t.hot))
	for range min(evictSamples, n) {
		i := t.hand
		if t.hand++; t.hand >= n {
			t.hand = 0
		}
		if e := &t.hot[i]; e.is(stInUse) && e.lastSeen < bestTS {
			best, bestTS = i, e.lastSeen
		}
	}
	return best
}

// changed reports whether entry idx counted packets since the last export.
func (t *Table) changed(idx int32) bool {
	e := &t.hot[idx]
	if e.pkts[0]|e.pkts[1] != 0 {
		return true
	}
	c := &t.cold[idx]
	return c.pktsHi[0]|c.pktsHi[1] != 0 // a carry left the low words at 0
}

// fill writes entry idx's delta into d and resets its per-export counters.
func (t *Table) fill(d *Delta, idx int32, st Status, why EndReason) {
	e, c := &t.hot[idx], &t.cold[idx]
	d.Protocol, d.IsIPv6 = e.proto, e.is(stV6)
	var a, b [16]byte
	binary.LittleEndian.PutUint64(a[0:8], e.a0)
	binary.LittleEndian.PutUint64(a[8:16], e.a1)
	binary.LittleEndian.PutUint64(b[0:8], e.b0)
	binary.LittleEndian.PutUint64(b[8:16], e.b1)
	ap, bp := uint16(e.ports>>16), uint16(e.ports)
	if e.is(stAIsSrc) {
		d.SrcAddr, d.SrcPort, d.DstAddr, d.DstPort = a, ap, b, bp
	} else {
		d.SrcAddr, d.SrcPort, d.DstAddr, d.DstPort = b, bp, a, ap
	}
	d.VLAN, d.HasVLAN = c.vlan, e.is(stHasVLAN)
	d.SrcPackets = uint64(c.pktsHi[0])<<32 | uint64(e.pkts[0])
	d.DstPackets = uint64(c.pktsHi[1])<<32 | uint64(e.pkts[1])
	d.SrcBytes = uint64(c.bytesHi[0])<<32 | uint64(e.bytes[0])
	d.DstBytes = uint64(c.bytesHi[1])<<32 | uint64(e.bytes[1])
	d.SrcTCPFlags, d.DstTCPFlags = e.flags[0], e.flags[1]
	d.FirstSeen, d.LastSeen = c.firstSeen, e.lastSeen
	d.Status, d.EndReason = st, why
	d.ICMPType, d.ICMPCode, d.HasICMP = c.icmpType, c.icmpCode, c.hasICMP
	d.App, d.ServerName = c.app, ""
	if c.named {
		d.ServerName = t.names[idx]
	}
	e.pkts, e.bytes, e.flags = [2]uint32{}, [2]uint32{}, [2]uint8{}
	c.pktsHi, c.bytesHi = [2]uint16{}, [2]uint32{}
}

func (t *Table) status(idx int32) Status {
	if t.hot[idx].is(stClosed) {
		return StatusClosed
	}
	return StatusActive
}

func (t *Table) closeReason(idx int32) EndReason {
	if t.cold[idx].rst {
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

	// Idle expiry: one sequential pass over the entries, reading the hot
	// line (lastSeen) of each and the cold one only for flows silent for
	// IdleTimeout by lastSeen. At 1M flows this streams 64 MB per export,
	// about 1 ms per 600k flows (BenchmarkExportScan); a packet pays nothing
	// for it.
	for idx := range int32(len(t.hot)) {
		e := &t.hot[idx]
		if !e.is(stInUse) || now-e.lastSeen < t.idle || now-t.cold[idx].active(e) < t.idle {
			continue
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
		e := &t.hot[idx]
		if !e.is(stInUse) {
			e.state &^= stPending
			continue
		}
		changed := t.changed(idx)
		switch {
		case e.is(stClosed) && now-t.cold[idx].closedAt >= t.linger:
			t.fill(&t.delta, idx, StatusClosed, t.closeReason(idx))
			emit(&t.delta)
			t.stats.Closed++
			e.state &^= stPending
			t.remove(idx)
			continue
		case changed && now-t.cold[idx].recordStart >= t.active:
			t.fill(&t.delta, idx, t.status(idx), EndActiveTimeout)
			emit(&t.delta)
			t.stats.ActiveTimeouts++
			t.cold[idx].recordStart = now
		case changed && changes:
			t.fill(&t.delta, idx, t.status(idx), EndNone)
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
// and empties the table. Flows come out in table order.
func (t *Table) Flush(reason EndReason, emit func(*Delta)) {
	t.emitEvicted(emit)
	for idx := range int32(len(t.hot)) {
		if !t.hot[idx].is(stInUse) {
			continue
		}
		why := reason
		if t.hot[idx].is(stClosed) {
			// FIN both ways or RST was seen: that is how the flow ended, even if
			// its linger had not run out when the sensor stopped.
			why = t.closeReason(idx)
		}
		t.fill(&t.delta, idx, t.status(idx), why)
		emit(&t.delta)
		t.stats.Flushed++
	}
	clear(t.slots)
	clear(t.names)
	clear(t.hot) // drop stale state bits (stPending) of freed entries
	t.hot, t.cold = t.hot[:0], t.cold[:0]
	t.free = t.free[:0]
	t.pending = t.pending[:0]
	t.hand = 0
}
