package store

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"

	"netwatch.dev/common/sat"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

const (
	nilSlot   = ^uint32(0)
	noBucket  = uint32(0) // bucket 0 (1970) is never kept
	chunkBits = 10        // records are allocated 1024 at a time
	chunkSize = 1 << chunkBits
)

// addr128 is an address as two big-endian halves; IPv4 is held IPv4-mapped
// (::ffff:a.b.c.d) so one prefix test serves both families.
type addr128 struct{ hi, lo uint64 }

func addrFromSlice(b []byte) (a addr128, v4, ok bool) {
	switch len(b) {
	case 4:
		return addr128{0, 0xffff<<32 | uint64(binary.BigEndian.Uint32(b))}, true, true
	case 16:
		return addr128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, false, true
	}
	return addr128{}, false, false
}

func addrFromNetip(a netip.Addr) addr128 {
	b := a.As16() // IPv4 comes out IPv4-mapped
	return addr128{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func (a addr128) netip(v4 bool) netip.Addr {
	if v4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(a.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], a.hi)
	binary.BigEndian.PutUint64(b[8:], a.lo)
	return netip.AddrFrom16(b)
}

// record meta bits.
const (
	metaSrc4        = 1 << 0 // the delta carried 4-byte addresses
	metaDst4        = 1 << 1
	metaLive        = 1 << 2
	metaStatusShift = 3 // 2 bits: FlowStatus 0..3
	metaEndShift    = 5 // 3 bits: EndReason 0..7
	metaFamily      = metaSrc4 | metaDst4
)

// compactKey is Key with the sensor interned and addresses unboxed.
type compactKey struct {
	src, dst         addr128
	firstSeen        int64
	srcPort, dstPort uint16
	sensor           uint16
	proto            uint8
	family           uint8 // metaSrc4 | metaDst4
}

func compactKeyOf(sensor uint16, d *netwatchv1.FlowDelta) (compactKey, bool) {
	fk := d.GetKey()
	src, src4, ok1 := addrFromSlice(fk.GetSrcAddr())
	dst, dst4, ok2 := addrFromSlice(fk.GetDstAddr())
	if !ok1 || !ok2 || fk.GetProtocol() > 255 || fk.GetSrcPort() > 65535 || fk.GetDstPort() > 65535 {
		return compactKey{}, false
	}
	k := compactKey{
		src: src, dst: dst, srcPort: uint16(fk.GetSrcPort()), dstPort: uint16(fk.GetDstPort()),
		sensor: sensor, proto: uint8(fk.GetProtocol()),
	}
	if fs := d.GetFirstSeen(); fs != nil {
		k.firstSeen = fs.AsTime().UnixNano()
	}
	if src4 {
		k.family |= metaSrc4
	}
	if dst4 {
		k.family |= metaDst4
	}
	return k, true
}

func mix(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a^0xa0761d6478bd642f, b^0xe7037ed1a0b428db)
	return hi ^ lo
}

// hash is deterministic (no per-process seed). It covers the interned sensor id,
// which a restart numbers again in the order the snapshot names the sensors: a
// restored flow may land in another shard than before, so a snapshot is not
// restored in receive order (see shard.appendRestored).
func (k *compactKey) hash() uint64 {
	h := mix(k.src.hi, k.src.lo)
	h = mix(h^k.dst.hi, k.dst.lo)
	return mix(h^uint64(k.firstSeen),
		uint64(k.srcPort)<<48|uint64(k.dstPort)<<32|uint64(k.sensor)<<16|uint64(k.proto)<<8|uint64(k.family))
}

// record is one stored flow: 144 bytes, no pointers (the GC does not scan it).
type record struct {
	src, dst                                   addr128
	firstSeen, lastSeen                        int64
	received                                   int64 // unix nanos; retention and eviction order
	srcPackets, srcBytes, dstPackets, dstBytes uint64
	prev, next                                 uint32 // receive-order list; next also threads the free list
	bucket, bpos                               uint32 // newest bucket entry of this flow, a hint
	gen                                        uint32 // 24 bits, bumped when the slot is freed; bucket entries carry it
	srcPort, dstPort                           uint16
	sensor, vlan                               uint16
	proto, srcFlags, dstFlags, meta            uint8
	// cid is the Community ID's SHA-1 (all zero: none), re-encoded in Flow copies;
	// labels holds interned ids in the store's server-name table (low labelNameBits)
	// and application table (the rest), 0: none.
	cid    [communityIDBytes]byte
	labels uint32
}

// The split of record.labels: at most 2^20-1 server names, 2^12-1 applications.
const (
	labelNameBits = 20
	labelNameMask = 1<<labelNameBits - 1
)

func (r *record) name() uint32      { return r.labels & labelNameMask }
func (r *record) app() uint32       { return r.labels >> labelNameBits }
func (r *record) setName(id uint32) { r.labels = r.labels&^labelNameMask | id }
func (r *record) setApp(id uint32)  { r.labels = r.labels&labelNameMask | id<<labelNameBits }

func (r *record) key() compactKey {
	return compactKey{src: r.src, dst: r.dst, firstSeen: r.firstSeen, srcPort: r.srcPort, dstPort: r.dstPort,
		sensor: r.sensor, proto: r.proto, family: r.meta & metaFamily}
}

func (r *record) matches(k *compactKey) bool {
	return r.src == k.src && r.dst == k.dst && r.firstSeen == k.firstSeen && r.srcPort == k.srcPort &&
		r.dstPort == k.dstPort && r.sensor == k.sensor && r.proto == k.proto && r.meta&metaFamily == k.family
}

func (r *record) status() netwatchv1.FlowStatus {
	return netwatchv1.FlowStatus(r.meta >> metaStatusShift & 3)
}

func (r *record) endReason() netwatchv1.EndReason {
	return netwatchv1.EndReason(r.meta >> metaEndShift & 7)
}

// update is one delta, decoded.
type update struct {
	srcPackets, srcBytes, dstPackets, dstBytes uint64
	lastSeen, received                         int64
	bucket                                     uint32 // noBucket: not kept
	vlan                                       uint16
	srcFlags, dstFlags                         uint8
	status                                     netwatchv1.FlowStatus
	end                                        netwatchv1.EndReason
	cid                                        [communityIDBytes]byte // all zero: none
	serverName, app                            string                 // "": none
}

// entry is what one flow transferred inside one bucket (both directions). bytesGen
// holds the bytes in its top 40 bits and the record's generation in the low 24, so an
// entry of a freed and reused slot is recognised (unless the slot was reused 2^24
// times while the entry was kept); more than 2^32-1 packets or 2^40-1 bytes (a TB) in
// one bucket continue in a second entry, one at most per delta (see addToBucket).
type entry struct {
	slot     uint32 // nilSlot: dead
	packets  uint32
	bytesGen uint64
}

const (
	genBits       = 24
	genMask       = 1<<genBits - 1
	maxEntryBytes = 1<<(64-genBits) - 1
)

func (e *entry) bytes() uint64 { return e.bytesGen >> genBits }
func (e *entry) gen() uint32   { return uint32(e.bytesGen & genMask) }

// slotMeta is what a window question needs of a slot besides its bucket entries:
// 12 bytes per slot, next to each other, instead of a 144-byte record each.
type slotMeta struct {
	gen      uint32 // the record's gen, | slotLive while the slot holds a flow
	src, dst HostID
}

const slotLive = 1 << 31

type bucket struct {
	entries []entry
	dead    int // entries marked dead when their flow was removed
}

// shard is one lock's worth of the store.
type shard struct {
	mu     sync.RWMutex
	id     uint8
	chunks []*[chunkSize]record   // 15 pages each
	metas  []*[chunkSize]slotMeta // apart from the records, so a window question reads 12 bytes a slot
	hosts  *hostTable
	names  *nameTable // server names
	apps   *nameTable // application labels
	nslots uint32     // slots handed out so far
	free   uint32     // free-list head
	index  []uint64
	used   int // live records

	head, tail   uint32       // receive-order list, oldest first (unless unsorted)
	headReceived atomic.Int64 // oldest receive time (head's unless unsorted), MaxInt64 when empty (read by evict)
	// unsorted: flows were restored out of receive order, appended at the tail. The
	// list is sorted once (sortList) before anything walks it by receive time or
	// takes a flow out of it; until then headReceived is still the oldest.
	unsorted bool
	// unsortedNewest, while unsorted, is at least the newest receive time in the
	// list (only appendRestored adds to an unsorted list), so a walk for recent
	// flows skips the shard during a restore instead of walking all of it.
	unsortedNewest int64
	// linkSteps counts the records linkByReceived walked past (the tests check that
	// a restore does not walk the list).
	linkSteps uint64

	buckets       map[uint32]*bucket
	bucketEntries int
	cacheNum      uint32
	cache         *bucket
}

func (sh *shard) init(id uint8, hosts *hostTable, names, apps *nameTable) {
	sh.id, sh.hosts, sh.names, sh.apps = id, hosts, names, apps
	sh.free, sh.head, sh.tail = nilSlot, nilSlot, nilSlot
	sh.headReceived.Store(math.MaxInt64)
	sh.index = make([]uint64, 1024)
	sh.buckets = map[uint32]*bucket{}
}

func (sh *shard) rec(slot uint32) *record {
	return &sh.chunks[slot>>chunkBits][slot&(chunkSize-1)]
}

func (sh *shard) meta(slot uint32) *slotMeta {
	return &sh.metas[slot>>chunkBits][slot&(chunkSize-1)]
}

// apply adds one delta to the flow's slot; it reports whether the flow is new.
// restoring: a new flow goes to the tail of the receive-order list whatever its
// receive time (see appendRestored).
func (sh *shard) apply(k *compactKey, h uint64, u *update, restoring bool) (slot uint32, created bool) {
	slot, found := sh.find(k, h)
	if found || !restoring {
		sh.sortList()
	}
	var r *record
	if found {
		r = sh.rec(slot)
		sh.unlink(slot)
	} else {
		slot = sh.alloc()
		r = sh.rec(slot)
		*r = record{
			src: k.src, dst: k.dst, firstSeen: k.firstSeen, srcPort: k.srcPort, dstPort: k.dstPort,
			sensor: k.sensor, proto: k.proto, meta: k.family | metaLive, vlan: u.vlan, gen: r.gen,
			prev: nilSlot, next: nilSlot,
		}
		src, dst := sh.hosts.internPair(k.src, k.dst)
		*sh.meta(slot) = slotMeta{gen: r.gen | slotLive, src: src, dst: dst}
		sh.insertIndex(h, slot)
		sh.used++
	}
	r.srcPackets = sat.Add(r.srcPackets, u.srcPackets)
	r.srcBytes = sat.Add(r.srcBytes, u.srcBytes)
	r.dstPackets = sat.Add(r.dstPackets, u.dstPackets)
	r.dstBytes = sat.Add(r.dstBytes, u.dstBytes)
	r.lastSeen = max(r.lastSeen, u.lastSeen)
	r.srcFlags |= u.srcFlags
	r.dstFlags |= u.dstFlags
	if u.status <= 3 {
		r.meta = r.meta&^(3<<metaStatusShift) | uint8(u.status)<<metaStatusShift
	}
	if u.end != 0 && u.end <= 7 {
		r.meta = r.meta&^(7<<metaEndShift) | uint8(u.end)<<metaEndShift
	}
	if u.cid != ([communityIDBytes]byte{}) {
		r.cid = u.cid
	}
	if u.serverName != "" && sh.names.name(r.name()) != u.serverName {
		if id := sh.names.intern(u.serverName); id != 0 {
			sh.names.release(r.name())
			r.setName(id)
		}
	}
	if u.app != "" && sh.apps.name(r.app()) != u.app {
		if id := sh.apps.intern(u.app); id != 0 {
			sh.apps.release(r.app())
			r.setApp(id)
		}
	}
	r.received = u.received
	if restoring && !found {
		sh.appendRestored(slot, r)
	} else {
		sh.linkByReceived(slot, r)
	}
	if pk, by := sat.Add(u.srcPackets, u.dstPackets), sat.Add(u.srcBytes, u.dstBytes); u.bucket != noBucket && (pk > 0 || by > 0) {
		sh.addToBucket(slot, r, u.bucket, pk, by)
	}
	return slot, !found
}

func (sh *shard) alloc() uint32 {
	if slot := sh.free; slot != nilSlot {
		sh.free = sh.rec(slot).next
		return slot
	}
	slot := sh.nslots
	if int(slot>>chunkBits) == len(sh.chunks) {
		sh.chunks = append(sh.chunks, new([chunkSize]record))
		sh.metas = append(sh.metas, new([chunkSize]slotMeta))
	}
	sh.nslots++
	return slot
}

// remove frees a live slot: out of the index, the receive list and its newest bucket
// entry; older bucket entries are recognised as stale by the generation.
func (sh *shard) remove(slot uint32) {
	r := sh.rec(slot)
	k := r.key()
	sh.deleteIndex(k.hash(), slot)
	sh.unlink(slot)
	if bk := sh.buckets[r.bucket]; bk != nil && int(r.bpos) < len(bk.entries) {
		if e := &bk.entries[r.bpos]; e.slot == slot && e.gen() == r.gen {
			e.slot = nilSlot
			bk.dead++
		}
	}
	m := sh.meta(slot)
	sh.hosts.releasePair(m.src, m.dst)
	sh.names.release(r.name())
	sh.apps.release(r.app())
	gen := (r.gen + 1) & genMask
	*m = slotMeta{gen: gen}
	*r = record{gen: gen, next: sh.free, prev: nilSlot}
	sh.free = slot
	sh.used--
}

// find looks k up. Index entries are tag<<32 | slot+1, the tag being the low 32 bits
// of the hash (so an entry's home position is tag & mask, and growing needs no rehash
// of the records); 0 is empty. Linear probing, load at most 3/4.
func (sh *shard) find(k *compactKey, h uint64) (uint32, bool) {
	mask := uint64(len(sh.index) - 1)
	tag := h << 32
	for i := h & mask; ; i = (i + 1) & mask {
		e := sh.index[i]
		if e == 0 {
			return 0, false
		}
		if e&^math.MaxUint32 == tag {
			if slot := uint32(e) - 1; sh.rec(slot).matches(k) {
				return slot, true
			}
		}
	}
}

func (sh *shard) insertIndex(h uint64, slot uint32) {
	if (sh.used+1)*4 > len(sh.index)*3 {
		sh.growIndex()
	}
	place(sh.index, h<<32|uint64(slot+1))
}

func place(index []uint64, e uint64) {
	mask := uint64(len(index) - 1)
	for i := (e >> 32) & mask; ; i = (i + 1) & mask {
		if index[i] == 0 {
			index[i] = e
			return
		}
	}
}

func (sh *shard) growIndex() {
	grown := make([]uint64, 2*len(sh.index))
	for _, e := range sh.index {
		if e != 0 {
			place(grown, e)
		}
	}
	sh.index = grown
}

// deleteIndex removes slot's entry and shifts the following run back (no tombstones).
func (sh *shard) deleteIndex(h uint64, slot uint32) {
	mask := uint64(len(sh.index) - 1)
	i := h & mask
	for uint32(sh.index[i]) != slot+1 {
		i = (i + 1) & mask
	}
	probeDelete(sh.index, i, func(e uint64) uint64 { return e >> 32 })
}

// unlink takes slot out of the receive-order list.
func (sh *shard) unlink(slot uint32) {
	r := sh.rec(slot)
	if r.prev != nilSlot {
		sh.rec(r.prev).next = r.next
	} else if sh.head == slot {
		sh.setHead(r.next)
	}
	if r.next != nilSlot {
		sh.rec(r.next).prev = r.prev
	} else if sh.tail == slot {
		sh.tail = r.prev
	}
	r.prev, r.next = nilSlot, nilSlot
}

func (sh *shard) setHead(slot uint32) {
	sh.head = slot
	if slot == nilSlot {
		sh.headReceived.Store(math.MaxInt64)
	} else {
		sh.headReceived.Store(sh.rec(slot).received)
	}
}

// linkByReceived inserts slot keeping the list sorted by receive time. The clock
// usually moves forward, so the walk back from the tail stops at once.
func (sh *shard) linkByReceived(slot uint32, r *record) {
	p := sh.tail
	for p != nilSlot && sh.rec(p).received > r.received {
		p = sh.rec(p).prev
		sh.linkSteps++
	}
	if p == nilSlot {
		r.prev, r.next = nilSlot, sh.head
		if sh.head != nilSlot {
			sh.rec(sh.head).prev = slot
		} else {
			sh.tail = slot
		}
		sh.setHead(slot)
		return
	}
	pr := sh.rec(p)
	r.prev, r.next = p, pr.next
	if pr.next != nilSlot {
		sh.rec(pr.next).prev = slot
	} else {
		sh.tail = slot
	}
	pr.next = slot
}

// appendRestored puts a restored flow at the tail. A snapshot is not in receive
// order (it is written shard by shard, and sensors are numbered again on restore),
// and inserting each flow in place walked the list: restoring a million flows from
// 100 sensors took minutes. Appending is O(1); a flow older than the tail marks the
// list unsorted, and it is sorted once, O(n log n), when something needs its order.
// headReceived stays the oldest receive time.
func (sh *shard) appendRestored(slot uint32, r *record) {
	r.prev, r.next = sh.tail, nilSlot
	if sh.tail == nilSlot {
		sh.head = slot
	} else {
		t := sh.rec(sh.tail)
		if t.received > r.received {
			if !sh.unsorted {
				sh.unsortedNewest = t.received // the tail of a sorted list is its newest
			}
			sh.unsorted = true
		}
		t.next = slot
	}
	sh.tail = slot
	if sh.unsorted {
		sh.unsortedNewest = max(sh.unsortedNewest, r.received)
	}
	if r.received < sh.headReceived.Load() {
		sh.headReceived.Store(r.received)
	}
}

// sortList puts an unsorted receive-order list back in order (stable: flows
// received at the same time keep their order).
func (sh *shard) sortList() {
	if !sh.unsorted {
		return
	}
	sh.unsorted = false
	type at struct {
		received int64
		slot     uint32
	}
	order := make([]at, 0, sh.used)
	for slot := sh.head; slot != nilSlot; slot = sh.rec(slot).next {
		order = append(order, at{sh.rec(slot).received, slot})
	}
	slices.SortStableFunc(order, func(a, b at) int { return cmp.Compare(a.received, b.received) })
	prev := nilSlot
	for _, o := range order {
		r := sh.rec(o.slot)
		r.prev, r.next = prev, nilSlot
		if prev == nilSlot {
			sh.head = o.slot
		} else {
			sh.rec(prev).next = o.slot
		}
		prev = o.slot
	}
	sh.tail = prev
	sh.setHead(sh.head)
}

func (sh *shard) bucketFor(b uint32) *bucket {
	if sh.cache != nil && sh.cacheNum == b {
		return sh.cache
	}
	bk := sh.buckets[b]
	if bk == nil {
		bk = &bucket{}
		sh.buckets[b] = bk
	}
	sh.cacheNum, sh.cache = b, bk
	return bk
}

// addToBucket adds traffic to the flow's entry in bucket b: what fits in its newest
// entry there goes in, the rest in one new entry. It adds at most one entry, whatever
// the counts: one delta beyond what an entry holds (2^32-1 packets, 2^40-1 bytes, far
// beyond what one flow carries between two exports) saturates the bucket instead of
// costing memory in proportion to a counter's value. The flow's totals stay exact.
func (sh *shard) addToBucket(slot uint32, r *record, b uint32, pk, by uint64) {
	bk := sh.bucketFor(b)
	if r.bucket == b && int(r.bpos) < len(bk.entries) {
		if e := &bk.entries[r.bpos]; e.slot == slot && e.gen() == r.gen {
			p, n := min(pk, math.MaxUint32-uint64(e.packets)), min(by, maxEntryBytes-e.bytes())
			e.packets += uint32(p)
			e.bytesGen += n << genBits
			if pk, by = pk-p, by-n; pk == 0 && by == 0 {
				return
			}
		}
	}
	p, n := min(pk, math.MaxUint32), min(by, maxEntryBytes)
	bk.entries = append(bk.entries, entry{slot: slot, packets: uint32(p), bytesGen: n<<genBits | uint64(r.gen)})
	sh.bucketEntries++
	r.bucket, r.bpos = b, uint32(len(bk.entries)-1)
}

// satAddAtomic adds v to c, saturating.
func satAddAtomic(c *atomic.Uint64, v uint64) {
	for {
		old := c.Load()
		if v == 0 || old == math.MaxUint64 || c.CompareAndSwap(old, sat.Add(old, v)) {
			return
		}
	}
}

// live reports whether e belongs to the flow now in its slot.
func (sh *shard) live(e *entry) bool {
	return e.slot != nilSlot && sh.meta(e.slot).gen == e.gen()|slotLive
}

// pruneBuckets drops buckets before minBucket and compacts those mostly dead.
func (sh *shard) pruneBuckets(minBucket uint32) {
	sh.cache = nil
	for b, bk := range sh.buckets {
		if b < minBucket {
			sh.bucketEntries -= len(bk.entries)
			delete(sh.buckets, b)
			continue
		}
		if bk.dead < 64 || bk.dead*2 < len(bk.entries) {
			continue
		}
		kept := make([]entry, 0, len(bk.entries)-bk.dead)
		for pos := range bk.entries {
			e := &bk.entries[pos]
			if !sh.live(e) {
				continue
			}
			if r := sh.rec(e.slot); r.bucket == b && r.bpos == uint32(pos) {
				r.bpos = uint32(len(kept))
			}
			kept = append(kept, *e)
		}
		sh.bucketEntries -= len(bk.entries) - len(kept)
		bk.entries, bk.dead = kept, 0
	}
}

// flow copies a live record out.
func (sh *shard) flow(r *record, sensors *sensorTable) Flow {
	return Flow{
		Key: Key{
			SensorID: sensors.name(r.sensor), Protocol: r.proto,
			Src: r.src.netip(r.meta&metaSrc4 != 0), Dst: r.dst.netip(r.meta&metaDst4 != 0),
			SrcPort: r.srcPort, DstPort: r.dstPort, FirstSeen: r.firstSeen,
		},
		VLAN:       r.vlan,
		SrcPackets: r.srcPackets, SrcBytes: r.srcBytes, DstPackets: r.dstPackets, DstBytes: r.dstBytes,
		LastSeen:    r.lastSeen,
		SrcTCPFlags: r.srcFlags, DstTCPFlags: r.dstFlags,
		Status: r.status(), EndReason: r.endReason(), ReceivedAt: r.received,
		CommunityID: encodeCommunityID(&r.cid), ServerName: sh.names.name(r.name()), Application: sh.apps.name(r.app()),
	}
}

// communityIDBytes is the size of a Community ID v1's hash (SHA-1).
const communityIDBytes = 20

// parseCommunityID decodes "1:" + base64 of 20 bytes; anything else (ingest
// refuses it) is none.
func parseCommunityID(s string) (h [communityIDBytes]byte, ok bool) {
	if len(s) != 2+base64.StdEncoding.EncodedLen(communityIDBytes) || s[:2] != "1:" {
		return h, false
	}
	var buf [communityIDBytes + 2]byte
	if n, err := base64.StdEncoding.Decode(buf[:], []byte(s[2:])); err != nil || n != communityIDBytes {
		return h, false
	}
	copy(h[:], buf[:])
	return h, true
}

// encodeCommunityID is parseCommunityID's inverse ("" for none).
func encodeCommunityID(h *[communityIDBytes]byte) string {
	if *h == ([communityIDBytes]byte{}) {
		return ""
	}
	var buf [2 + 28]byte
	copy(buf[:], "1:")
	base64.StdEncoding.Encode(buf[2:], h[:])
	return string(buf[:])
}
