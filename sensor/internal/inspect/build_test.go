package inspect

import (
	"encoding/binary"
	"net/netip"
	"strings"
)

// Frame builders for tests.

// ethFrame is an Ethernet/IPv4 frame of protocol proto (6 or 17) from
// 192.0.2.1:sport to 198.51.100.2:dport carrying payload.
func ethFrame(proto uint8, sport, dport uint16, payload []byte) []byte {
	l4 := 8
	if proto == 6 {
		l4 = 20
	}
	f := make([]byte, 14+20+l4, 14+20+l4+len(payload))
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4+len(payload)))
	ip[8], ip[9] = 64, proto
	copy(ip[12:], []byte{192, 0, 2, 1})
	copy(ip[16:], []byte{198, 51, 100, 2})
	t := ip[20:]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	if proto == 6 {
		t[12], t[13] = 5<<4, 0x18
	} else {
		binary.BigEndian.PutUint16(t[4:], uint16(8+len(payload)))
	}
	return append(f, payload...)
}

// dnsMsg builds DNS messages (RFC 1035 4.1) with compression pointers.
type dnsMsg struct{ b []byte }

func newDNSResponse(id uint16, an int) *dnsMsg {
	m := &dnsMsg{}
	m.b = binary.BigEndian.AppendUint16(m.b, id)
	m.b = append(m.b, 0x81, 0x80) // QR, RD, RA, NOERROR
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	m.b = binary.BigEndian.AppendUint16(m.b, uint16(an))
	m.b = append(m.b, 0, 0, 0, 0)
	return m
}

// name appends a name in labels; a "@N" suffix label is a pointer to offset N.
func (m *dnsMsg) name(s string) int {
	off := len(m.b)
	for _, l := range strings.Split(s, ".") {
		if strings.HasPrefix(l, "@") {
			var p int
			for _, c := range l[1:] {
				p = p*10 + int(c-'0')
			}
			m.b = binary.BigEndian.AppendUint16(m.b, 0xc000|uint16(p))
			return off
		}
		m.b = append(m.b, byte(len(l)))
		m.b = append(m.b, l...)
	}
	m.b = append(m.b, 0)
	return off
}

func (m *dnsMsg) question(name string, typ uint16) int {
	off := m.name(name)
	m.b = binary.BigEndian.AppendUint16(m.b, typ)
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	return off
}

// rr appends a record; rdata is built by fn (may call name).
func (m *dnsMsg) rr(owner string, typ uint16, ttl uint32, fn func()) {
	m.name(owner)
	m.b = binary.BigEndian.AppendUint16(m.b, typ)
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	m.b = binary.BigEndian.AppendUint32(m.b, ttl)
	lenAt := len(m.b)
	m.b = append(m.b, 0, 0)
	fn()
	binary.BigEndian.PutUint16(m.b[lenAt:], uint16(len(m.b)-lenAt-2))
}

func (m *dnsMsg) a(owner string, ttl uint32, addr string) {
	a := netip.MustParseAddr(addr)
	m.rr(owner, map[bool]uint16{true: 1, false: 28}[a.Is4()], ttl, func() { m.b = append(m.b, a.AsSlice()...) })
}

func (m *dnsMsg) cname(owner string, ttl uint32, target string) {
	m.rr(owner, 5, ttl, func() { m.name(target) })
}

// clientHello builds a TLS 1.2-style ClientHello record; sni "" leaves out
// the server_name extension. pad adds an extension of that many bytes
// before it.
func clientHello(sni string, pad int) []byte {
	var h []byte
	h = append(h, 3, 3)
	h = append(h, make([]byte, 32)...)
	h = append(h, 0) // session id
	h = append(h, 0, 2, 0x13, 0x01)
	h = append(h, 1, 0) // compression
	var ext []byte
	if pad > 0 {
		ext = binary.BigEndian.AppendUint16(ext, 21) // padding
		ext = binary.BigEndian.AppendUint16(ext, uint16(pad))
		ext = append(ext, make([]byte, pad)...)
	}
	if sni != "" {
		ext = binary.BigEndian.AppendUint16(ext, 0)
		ext = binary.BigEndian.AppendUint16(ext, uint16(len(sni)+5))
		ext = binary.BigEndian.AppendUint16(ext, uint16(len(sni)+3))
		ext = append(ext, 0)
		ext = binary.BigEndian.AppendUint16(ext, uint16(len(sni)))
		ext = append(ext, sni...)
	}
	h = binary.BigEndian.AppendUint16(h, uint16(len(ext)))
	h = append(h, ext...)
	hs := append([]byte{1, byte(len(h) >> 16), byte(len(h) >> 8), byte(len(h))}, h...)
	rec := []byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}
	return append(rec, hs...)
}
