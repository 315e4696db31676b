package inspect

import (
	"encoding/binary"

	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/decode"
)

// helloResult is what parsing (the start of) a TLS handshake record gave.
type helloResult uint8

const (
	helloDone      helloResult = iota // a ClientHello, parsed as far as needed
	helloOther                        // another handshake message (ServerHello...): TLS, no name
	helloNeedMore                     // a ClientHello cut before its server name or end
	helloMalformed                    // not a valid handshake record
)

// parseHello parses a TLS record (RFC 8446 5.1) holding the start of a
// handshake message in b, which may be a prefix of the record. For a
// ClientHello (4.1.2) it returns the server_name extension's first host_name
// (RFC 6066 3), nil when there is none. With complete set, running out of
// bytes ends the search (b is all there will be: MaxHello reached) instead
// of asking for more.
func parseHello(b []byte, complete bool) (helloResult, []byte) {
	if len(b) < 5 {
		// A segment this short may still start a record.
		if complete || len(b) == 0 || b[0] != 22 || len(b) >= 2 && b[1] != 3 {
			return helloMalformed, nil
		}
		return helloNeedMore, nil
	}
	if b[0] != 22 || b[1] != 3 {
		return helloMalformed, nil
	}
	recLen := int(binary.BigEndian.Uint16(b[3:5]))
	if recLen < 4 || recLen > 1<<14+2048 {
		return helloMalformed, nil
	}
	body := b[5:]
	if len(body) > recLen {
		body = body[:recLen]
	}
	// need: what a short read means. More bytes of this record may come,
	// unless they are beyond MaxHello.
	need := helloNeedMore
	if complete || len(body) == recLen {
		need = helloDone
	}
	if len(body) < 4 {
		return need, nil
	}
	if body[0] != 1 {
		return helloOther, nil
	}
	hsLen := int(body[1])<<16 | int(binary.BigEndian.Uint16(body[2:4]))
	if hsLen < 38 {
		return helloMalformed, nil
	}
	h := body[4:]
	if len(h) > hsLen {
		h = h[:hsLen]
	} else if len(h) < hsLen && len(body) == recLen {
		// The handshake message continues in a further record: parse
		// what this one holds.
		need = helloDone
	}
	whole := len(h) == hsLen
	short := func() (helloResult, []byte) {
		if whole {
			return helloMalformed, nil
		}
		return need, nil
	}
	// legacy_version(2) random(32) session_id<0..32>
	if len(h) < 35 {
		return short()
	}
	off := 34
	sid := int(h[off])
	if sid > 32 {
		return helloMalformed, nil
	}
	off += 1 + sid
	// cipher_suites<2..2^16-2>
	if len(h) < off+2 {
		return short()
	}
	off += 2 + int(binary.BigEndian.Uint16(h[off:]))
	// legacy_compression_methods<1..2^8-1>
	if len(h) < off+1 {
		return short()
	}
	off += 1 + int(h[off])
	if off == len(h) && whole {
		return helloDone, nil // no extensions (TLS 1.0 style)
	}
	if len(h) < off+2 {
		return short()
	}
	extEnd := off + 2 + int(binary.BigEndian.Uint16(h[off:]))
	if whole && extEnd != len(h) {
		return helloMalformed, nil
	}
	off += 2
	for off < extEnd {
		if len(h) < off+4 {
			return short()
		}
		typ := binary.BigEndian.Uint16(h[off:])
		n := int(binary.BigEndian.Uint16(h[off+2:]))
		off += 4
		if off+n > extEnd {
			return helloMalformed, nil
		}
		if typ != 0 {
			off += n
			continue
		}
		if len(h) < off+n {
			return short()
		}
		// ServerNameList: list<1..2^16-1> of {name_type(1), HostName<1..2^16-1>}.
		e := h[off : off+n]
		if len(e) < 2 || int(binary.BigEndian.Uint16(e)) != len(e)-2 {
			return helloMalformed, nil
		}
		for e = e[2:]; len(e) > 0; {
			if len(e) < 3 {
				return helloMalformed, nil
			}
			l := int(binary.BigEndian.Uint16(e[1:3]))
			if len(e) < 3+l {
				return helloMalformed, nil
			}
			if e[0] == 0 { // host_name
				return helloDone, e[3 : 3+l]
			}
			e = e[3+l:]
		}
		return helloDone, nil
	}
	if off != extEnd {
		return short()
	}
	return helloDone, nil
}

// tls handles a payload that starts like a TLS handshake record.
func (in *Inspector) tls(p *decode.Packet, b []byte, ts int64) (flowmeta.App, []byte) {
	if len(b) > MaxHello {
		b = b[:MaxHello]
	}
	r, sni := parseHello(b, len(b) == MaxHello)
	switch r {
	case helloNeedMore:
		in.pend.put(in, p, b, ts)
		return flowmeta.AppNone, nil
	case helloMalformed:
		in.counters[cTLSMalformed]++
		return flowmeta.AppNone, nil
	case helloOther:
		return flowmeta.AppTLS, nil
	}
	return in.hello(sni)
}

// hello counts a ClientHello with server name sni (nil: none).
func (in *Inspector) hello(sni []byte) (flowmeta.App, []byte) {
	in.counters[cTLSClientHello]++
	if sni == nil {
		return flowmeta.AppTLS, nil
	}
	name, ok := in.setName(sni)
	if !ok {
		in.counters[cTLSBadSNI]++
		return flowmeta.AppTLS, nil
	}
	in.counters[cTLSSNI]++
	return flowmeta.AppTLS, name
}

// The pending pool keeps the start of ClientHellos split over TCP segments,
// per flow direction, until the rest arrives. It is set-associative:
// pendSets sets of pendWays entries; a new start in a full set drops the
// set's oldest (counted). An entry ends when its ClientHello is complete, at
// MaxHello bytes, after pendMaxSegments further segments of its direction, or
// pendTimeout after it was made (swept at most every pendSweep).
const (
	pendSets        = 64
	pendWays        = 4
	pendMaxSegments = 4
	pendTimeout     = int64(5e9)
	pendSweep       = int64(1e9)
)

// pendKey is a directional TCP 5-tuple.
type pendKey struct {
	src, dst     [16]byte
	sport, dport uint16
}

type pendEntry struct {
	key   pendKey
	used  bool
	segs  uint8  // further segments joined
	n     uint16 // bytes kept
	since int64  // when the first segment came
}

type pendPool struct {
	ent       [pendSets * pendWays]pendEntry
	buf       []byte // MaxHello bytes per entry, allocated on first use
	n         int    // entries in use
	nextSweep int64
}

func keyOf(p *decode.Packet) pendKey {
	return pendKey{src: p.Src, dst: p.Dst, sport: p.SrcPort, dport: p.DstPort}
}

func (k *pendKey) set() int {
	h := binary.LittleEndian.Uint64(k.src[8:]) ^ binary.LittleEndian.Uint64(k.dst[8:])*0x9e3779b97f4a7c15 ^
		binary.LittleEndian.Uint64(k.src[:8])*0xc2b2ae3d27d4eb4f ^ binary.LittleEndian.Uint64(k.dst[:8]) ^
		uint64(k.sport)<<16 ^ uint64(k.dport)
	h *= 0xff51afd7ed558ccd
	return int(h>>32) % pendSets * pendWays
}

// put keeps b, the start of a ClientHello, for p's flow direction.
func (pp *pendPool) put(in *Inspector, p *decode.Packet, b []byte, ts int64) {
	if pp.buf == nil {
		pp.buf = make([]byte, len(pp.ent)*MaxHello)
	}
	k := keyOf(p)
	s := k.set()
	slot := -1
	for i := s; i < s+pendWays; i++ {
		e := &pp.ent[i]
		if e.used && e.key == k { // a new start replaces the old one
			slot = i
			break
		}
		if !e.used && slot < 0 {
			slot = i
		}
	}
	if slot < 0 { // set full: drop its oldest
		slot = s
		for i := s + 1; i < s+pendWays; i++ {
			if pp.ent[i].since < pp.ent[slot].since {
				slot = i
			}
		}
		in.counters[cTLSPendingDropped]++
	} else if !pp.ent[slot].used {
		pp.n++
	}
	e := &pp.ent[slot]
	*e = pendEntry{key: k, used: true, n: uint16(copy(pp.buf[slot*MaxHello:(slot+1)*MaxHello], b)), since: ts}
	in.counters[cTLSSplit]++
	if pp.nextSweep == 0 || pp.nextSweep > ts+pendSweep {
		pp.nextSweep = ts + pendSweep
	}
}

func (pp *pendPool) drop(in *Inspector, i int, expired bool) {
	pp.ent[i].used = false
	pp.n--
	if expired {
		in.counters[cTLSPendingExpired]++
	}
}

// joinHello adds b to the kept start of p's flow direction's ClientHello, if
// there is one (ok), and parses it again.
func (in *Inspector) joinHello(p *decode.Packet, b []byte, ts int64) (app flowmeta.App, name []byte, ok bool) {
	pp := &in.pend
	if ts >= pp.nextSweep {
		for i := range pp.ent {
			if pp.ent[i].used && ts-pp.ent[i].since >= pendTimeout {
				pp.drop(in, i, true)
			}
		}
		pp.nextSweep = ts + pendSweep
		if pp.n == 0 {
			return flowmeta.AppNone, nil, false
		}
	}
	k := keyOf(p)
	s := k.set()
	i := s
	for ; i < s+pendWays; i++ {
		if pp.ent[i].used && pp.ent[i].key == k {
			break
		}
	}
	if i == s+pendWays {
		return flowmeta.AppNone, nil, false
	}
	e := &pp.ent[i]
	buf := pp.buf[i*MaxHello : (i+1)*MaxHello]
	if len(b) <= int(e.n) && string(b) == string(buf[:len(b)]) {
		return flowmeta.AppNone, nil, true // the first segment again (a retransmission)
	}
	e.n += uint16(copy(buf[e.n:], b))
	e.segs++
	r, sni := parseHello(buf[:e.n], e.n == MaxHello || e.segs >= pendMaxSegments)
	switch r {
	case helloNeedMore:
		return flowmeta.AppNone, nil, true
	case helloMalformed:
		pp.drop(in, i, false)
		in.counters[cTLSMalformed]++
		return flowmeta.AppNone, nil, true
	}
	if sni == nil && e.segs >= pendMaxSegments && e.n < MaxHello {
		in.counters[cTLSPendingExpired]++ // given up: parsed what there was
	} else {
		in.counters[cTLSJoined]++
	}
	pp.drop(in, i, false)
	if r == helloOther {
		return flowmeta.AppTLS, nil, true
	}
	app, name = in.hello(sni)
	return app, name, true
}
