package flow

import (
	"encoding/binary"

	"netwatch.dev/sensor/internal/decode"
)

// Fragment attribution (README rule 5). A non-first fragment (offset > 0)
// carries no transport header; it takes the protocol and ports of the first
// fragment (offset 0, more-fragments set) of the same datagram seen earlier:
// IPv4 keyed by (src, dst, protocol, Identification), IPv6 by (src, dst,
// Identification) — RFC 8200 scopes the Identification to the address pair,
// and the protocol of an IPv6 non-first fragment is only the Fragment header's
// Next Header. Without a known first fragment the packet goes to the ports-0
// flow of (src, dst, protocol). A later first fragment with the same key
// replaces the earlier one. No reassembly is done.

type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8 // IPv4 only; 0 for IPv6
	v6       bool
}

type fragEntry struct {
	key          fragKey
	ts           int64
	hash         uint32
	used         bool
	proto        uint8
	sport, dport uint16
}

// fragTable is a bounded open-addressed table with FIFO replacement: the
// entries form a ring, and when it is full the oldest entry is dropped.
type fragTable struct {
	seed      uint64
	slots     []uint32 // entry index + 1; 0 = empty
	mask      uint32
	ring      []fragEntry
	next      int // ring position of the next insert
	forgotten uint64
}

func (f *fragTable) init(n int, seed uint64) {
	size := 1
	for size < 2*n {
		size <<= 1
	}
	f.seed = seed ^ 0x6a09e667f3bcc909
	f.slots = make([]uint32, size)
	f.mask = uint32(size - 1)
	f.ring = make([]fragEntry, n)
}

func (f *fragTable) hash(k *fragKey) uint32 {
	h := f.seed
	h = mix(h, binary.LittleEndian.Uint64(k.src[0:8]))
	h = mix(h, binary.LittleEndian.Uint64(k.src[8:16]))
	h = mix(h, binary.LittleEndian.Uint64(k.dst[0:8]))
	h = mix(h, binary.LittleEndian.Uint64(k.dst[8:16]))
	v := uint64(k.id)<<32 | uint64(k.proto)<<8
	if k.v6 {
		v |= 1
	}
	h = mix(h, v)
	h *= 0xbf58476d1ce4e5b9
	return uint32(h >> 32)
}

func (f *fragTable) find(k *fragKey, h uint32) (slot uint32, idx int) {
	for i := h & f.mask; ; i = (i + 1) & f.mask {
		s := f.slots[i]
		if s == 0 {
			return i, -1
		}
		if e := &f.ring[s-1]; e.hash == h && e.key == *k {
			return i, int(s - 1)
		}
	}
}

func (f *fragTable) put(k *fragKey, ts int64, proto uint8, sport, dport uint16) {
	h := f.hash(k)
	slot, idx := f.find(k, h)
	if idx < 0 {
		idx = f.next
		f.next = (f.next + 1) % len(f.ring)
		if old := &f.ring[idx]; old.used {
			f.forgotten++
			f.delete(old)
			slot, _ = f.find(k, h) // the deletion may have moved the cluster
		}
		f.slots[slot] = uint32(idx + 1)
	}
	f.ring[idx] = fragEntry{key: *k, ts: ts, hash: h, used: true, proto: proto, sport: sport, dport: dport}
}

func (f *fragTable) get(k *fragKey) *fragEntry {
	_, idx := f.find(k, f.hash(k))
	if idx < 0 {
		return nil
	}
	return &f.ring[idx]
}

func (f *fragTable) delete(e *fragEntry) {
	i := e.hash & f.mask
	for s := f.slots[i]; s == 0 || &f.ring[s-1] != e; s = f.slots[i] {
		i = (i + 1) & f.mask
	}
	for j := (i + 1) & f.mask; ; j = (j + 1) & f.mask {
		s := f.slots[j]
		if s == 0 {
			break
		}
		home := f.ring[s-1].hash & f.mask
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			f.slots[i] = s
			i = j
		}
	}
	f.slots[i] = 0
	e.used = false
}

// fragment returns the protocol and ports packet p counts under, recording
// first fragments and attributing later ones.
func (t *Table) fragment(p *decode.Packet, ts int64) (proto uint8, sport, dport uint16) {
	var k fragKey
	k.src, k.dst, k.id, k.v6 = p.Src, p.Dst, p.FragID, p.IsIPv6
	if !p.IsIPv6 {
		k.proto = p.Protocol
	}
	if p.FragOffset == 0 {
		if p.FragMore {
			t.frags.put(&k, ts, p.Protocol, p.SrcPort, p.DstPort)
		}
		return p.Protocol, p.SrcPort, p.DstPort
	}
	e := t.frags.get(&k)
	if e == nil || (t.fragTimeout > 0 && ts-e.ts > t.fragTimeout) {
		t.stats.FragmentsUnattributed++
		return p.Protocol, 0, 0
	}
	t.stats.FragmentsAttributed++
	return e.proto, e.sport, e.dport
}
