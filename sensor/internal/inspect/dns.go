package inspect

import (
	"encoding/binary"
	"net/netip"

	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/decode"
)

// Bounds of DNS response parsing and collection.
const (
	// MaxDNSAnswers is the most (name, address) answers kept per export
	// interval; more are counted in dns_answers_dropped.
	MaxDNSAnswers = 8192
	// dnsArena is the most name bytes kept per interval.
	dnsArena = 1 << 20
	// dnsMaxRRs is how many answer records of a response are read.
	dnsMaxRRs = 64
	// dnsMaxJumps bounds the compression pointers followed in one name.
	dnsMaxJumps = 32
	// dnsMaxChain bounds the CNAME records followed from the question.
	dnsMaxChain = 16
)

// DNS types and class.
const (
	dnsA     = 1
	dnsCNAME = 5
	dnsAAAA  = 28
	dnsIN    = 1
)

// looksDNS: a DNS message header (RFC 1035 4.1.1) with one question, as in
// practically every query and response.
func looksDNS(m []byte) bool {
	return len(m) >= 12 && m[4] == 0 && m[5] == 1
}

func (in *Inspector) dnsUDP(p *decode.Packet, b []byte, ts int64) (flowmeta.App, []byte) {
	if !looksDNS(b) {
		return flowmeta.AppNone, nil
	}
	in.counters[cDNSMessages]++
	if p.SrcPort == 53 && b[2]&0x80 != 0 && !p.IsFragment { // a first fragment holds part of the message
		in.response(b, ts)
	}
	return flowmeta.AppDNS, nil
}

// dnsTCP: a TCP segment starting with a DNS message and its 2-byte length
// (RFC 1035 4.2.2); a response is parsed when it is whole in the segment.
func (in *Inspector) dnsTCP(p *decode.Packet, b []byte, ts int64) (flowmeta.App, []byte) {
	if len(b) < 2 || !looksDNS(b[2:]) {
		return flowmeta.AppNone, nil
	}
	in.counters[cDNSMessages]++
	if p.SrcPort == 53 && b[4]&0x80 != 0 {
		if n := int(binary.BigEndian.Uint16(b)); 2+n <= len(b) {
			in.response(b[2:2+n], ts)
		} else {
			in.counters[cDNSTCPPartial]++
		}
	}
	return flowmeta.AppDNS, nil
}

// span is a name in dnsScratch.buf.
type span struct{ off, n uint16 }

type dnsRR struct {
	owner, target span // target: CNAME only
	typ           uint16
	ttl           uint32
	rdata         uint16 // offset of the address in the message (A, AAAA)
}

// dnsScratch holds one response's decoded names.
type dnsScratch struct {
	buf [(dnsMaxRRs*2 + 1) * 256]byte
	n   int
	rrs [dnsMaxRRs]dnsRR
}

func (s *dnsScratch) bytes(sp span) []byte { return s.buf[sp.off : sp.off+sp.n] }

// readName decodes the name at off of m (RFC 1035 4.1.4, compression
// pointers followed at most dnsMaxJumps times, at most maxName bytes) into
// the scratch buffer, lower-cased and dotted. It returns the name, the offset
// after it in m, whether m holds a whole name (ok) and whether the name is a
// valid one ([a-z0-9_-] labels).
func (s *dnsScratch) readName(m []byte, off int) (sp span, next int, ok, valid bool) {
	start := s.n
	dst := s.buf[start : start+256]
	out, jumps, valid := 0, 0, true
	next = -1
	for {
		if off >= len(m) {
			return span{}, 0, false, false
		}
		l := int(m[off])
		switch l & 0xc0 {
		case 0:
			if l == 0 {
				if next < 0 {
					next = off + 1
				}
				s.n += out
				return span{uint16(start), uint16(out)}, next, true, valid && out > 0
			}
			if off+1+l > len(m) || out+l+1 > maxName+1 {
				return span{}, 0, false, false
			}
			if out > 0 {
				dst[out] = '.'
				out++
			}
			for _, c := range m[off+1 : off+1+l] {
				lc := nameByte[c]
				if lc == 0 || lc == '.' {
					valid = false
					lc = '?'
				}
				dst[out] = lc
				out++
			}
			off += 1 + l
		case 0xc0:
			if off+2 > len(m) || jumps == dnsMaxJumps {
				return span{}, 0, false, false
			}
			jumps++
			if next < 0 {
				next = off + 2
			}
			off = int(binary.BigEndian.Uint16(m[off:]) & 0x3fff)
		default: // 0x40, 0x80: extended label types, obsolete
			return span{}, 0, false, false
		}
	}
}

// response parses a DNS response and collects, for its question name, the
// A and AAAA records at the end of the CNAME chain from it.
func (in *Inspector) response(m []byte, ts int64) {
	in.counters[cDNSResponses]++
	if m[2]&0x78 != 0 || m[3]&0x0f != 0 { // opcode QUERY, rcode NOERROR only
		return
	}
	s := &in.scratch
	s.n = 0
	q, off, ok, valid := s.readName(m, 12)
	if !ok || off+4 > len(m) {
		in.counters[cDNSMalformed]++
		return
	}
	if !valid {
		in.counters[cDNSBadName]++
		return
	}
	off += 4 // QTYPE, QCLASS
	an := min(int(binary.BigEndian.Uint16(m[6:8])), dnsMaxRRs)
	rrs := s.rrs[:0]
	for range an {
		owner, o, ok, valid := s.readName(m, off)
		if !ok || o+10 > len(m) {
			in.counters[cDNSMalformed]++
			return
		}
		typ := binary.BigEndian.Uint16(m[o:])
		class := binary.BigEndian.Uint16(m[o+2:]) &^ 0x8000 // mDNS cache-flush bit
		ttl := binary.BigEndian.Uint32(m[o+4:])
		rdl := int(binary.BigEndian.Uint16(m[o+8:]))
		rd := o + 10
		if off = rd + rdl; off > len(m) {
			in.counters[cDNSMalformed]++
			return
		}
		if class != dnsIN || !valid {
			continue
		}
		rr := dnsRR{owner: owner, typ: typ, ttl: ttl, rdata: uint16(rd)}
		switch {
		case typ == dnsA && rdl == 4, typ == dnsAAAA && rdl == 16:
		case typ == dnsCNAME:
			t, e, ok, valid := s.readName(m, rd)
			if !ok || e > off {
				in.counters[cDNSMalformed]++
				return
			}
			if !valid {
				in.counters[cDNSBadName]++
				continue
			}
			rr.target = t
		default:
			s.n = int(owner.off) // nothing kept: reuse its bytes
			continue
		}
		rrs = append(rrs, rr)
	}
	// Follow the CNAME chain from the question name.
	cur, canon := q, false
	for range dnsMaxChain {
		found := false
		for i := range rrs {
			if rrs[i].typ == dnsCNAME && string(s.bytes(rrs[i].owner)) == string(s.bytes(cur)) {
				cur, canon, found = rrs[i].target, true, true
				break
			}
		}
		if !found {
			break
		}
	}
	var cs []byte
	if canon {
		cs = s.bytes(cur)
	}
	st := &in.dns
	st.beginResponse()
	for i := range rrs {
		rr := &rrs[i]
		if rr.typ == dnsCNAME || string(s.bytes(rr.owner)) != string(s.bytes(cur)) {
			continue
		}
		var a [16]byte
		v6 := rr.typ == dnsAAAA
		if v6 {
			copy(a[:], m[rr.rdata:rr.rdata+16])
		} else {
			copy(a[12:], m[rr.rdata:rr.rdata+4])
		}
		if c := st.add(s.bytes(q), cs, a, v6, rr.ttl, ts); c >= 0 {
			in.counters[c]++
		}
	}
}

// dnsEntry is a collected answer; its names are spans of dnsStore.arena.
type dnsEntry struct {
	name, canon struct{ off, n uint32 }
	addr        [16]byte
	v6          bool
	ttl         uint32
	seen        int64
}

// dnsStore collects one interval's answers without allocating per packet:
// names are copied once per response into a reused arena, entries into a
// reused slice, and an open-addressed index of entry numbers dedupes
// (name, address) pairs.
type dnsStore struct {
	arena []byte
	ents  []dnsEntry
	index []uint16 // 2*MaxDNSAnswers slots: entry number + 1, 0 empty
	// This response's names in the arena, once stored (n == 0: not yet).
	curName, curCanon struct{ off, n uint32 }
}

func (st *dnsStore) beginResponse() { st.curName.n, st.curCanon.n = 0, 0 }

func nameHash(b []byte, a *[16]byte) uint32 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h = (h ^ uint64(c)) * 1099511628211
	}
	h ^= binary.LittleEndian.Uint64(a[:8])*0x9e3779b97f4a7c15 ^ binary.LittleEndian.Uint64(a[8:])*0xc2b2ae3d27d4eb4f
	h ^= h >> 29
	return uint32(h)
}

// add collects one answer and returns the counter it goes to, -1 for none
// (a pair already collected in this interval: its TTL and time are updated).
func (st *dnsStore) add(name, canon []byte, a [16]byte, v6 bool, ttl uint32, ts int64) int {
	if st.index == nil {
		st.arena = make([]byte, 0, dnsArena)
		st.ents = make([]dnsEntry, 0, MaxDNSAnswers)
		st.index = make([]uint16, 2*MaxDNSAnswers)
	}
	mask := uint32(len(st.index) - 1)
	i := nameHash(name, &a) & mask
	for ; st.index[i] != 0; i = (i + 1) & mask {
		e := &st.ents[st.index[i]-1]
		if e.addr == a && e.v6 == v6 && string(st.arena[e.name.off:e.name.off+e.name.n]) == string(name) {
			e.ttl, e.seen = ttl, ts // the latest
			return -1               // not a new answer
		}
	}
	if len(st.ents) == MaxDNSAnswers {
		return cDNSAnswersDropped
	}
	if st.curName.n == 0 {
		if len(st.arena)+len(name)+len(canon) > cap(st.arena) {
			return cDNSAnswersDropped
		}
		st.curName = st.store(name)
		if len(canon) > 0 {
			st.curCanon = st.store(canon)
		}
	}
	st.ents = append(st.ents, dnsEntry{name: st.curName, canon: st.curCanon, addr: a, v6: v6, ttl: ttl, seen: ts})
	st.index[i] = uint16(len(st.ents))
	return cDNSAnswers
}

func (st *dnsStore) store(b []byte) struct{ off, n uint32 } {
	off := len(st.arena)
	st.arena = append(st.arena, b...)
	return struct{ off, n uint32 }{uint32(off), uint32(len(b))}
}

// DrainDNS calls fn with each DNS answer collected since the previous call, at
// most once per (name, address) pair, and forgets them. The strings are made
// here, once per distinct name of a response. The *DNSAnswer is reused: it
// is valid only during the call.
func (in *Inspector) DrainDNS(fn func(*DNSAnswer)) {
	st := &in.dns
	var a DNSAnswer
	var lastName, lastCanon struct{ off, n uint32 }
	for i := range st.ents {
		e := &st.ents[i]
		if i == 0 || e.name != lastName {
			a.Name = string(st.arena[e.name.off : e.name.off+e.name.n])
			lastName = e.name
		}
		if i == 0 || e.canon != lastCanon {
			a.Canonical = string(st.arena[e.canon.off : e.canon.off+e.canon.n])
			lastCanon = e.canon
		}
		if e.v6 {
			a.Addr = netip.AddrFrom16(e.addr)
		} else {
			a.Addr = netip.AddrFrom4([4]byte(e.addr[12:]))
		}
		a.TTL, a.Seen = e.ttl, e.seen
		fn(&a)
	}
	st.ents = st.ents[:0]
	st.arena = st.arena[:0]
	clear(st.index)
	st.beginResponse()
}
