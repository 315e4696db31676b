package decode

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/difftest"
)

// Frame builders. Each returns a fresh slice.

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func eth(ethertype uint16) []byte {
	return cat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, be16(ethertype))
}

func vlan(id, inner uint16) []byte { return cat(be16(0xa000|id), be16(inner)) }

// ipv4 header (IHL 5 unless opts) with the given total length and payload.
func ipv4(proto uint8, totalLen uint16, fragField uint16, id uint16, opts []byte, payload []byte) []byte {
	h := make([]byte, 20)
	h[0] = 0x40 | byte((20+len(opts))/4)
	binary.BigEndian.PutUint16(h[2:], totalLen)
	binary.BigEndian.PutUint16(h[4:], id)
	binary.BigEndian.PutUint16(h[6:], fragField)
	h[8], h[9] = 64, proto
	copy(h[12:], []byte{192, 0, 2, 1})
	copy(h[16:], []byte{198, 51, 100, 2})
	return cat(h, opts, payload)
}

func ipv6(next uint8, plen uint16, payload []byte) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], plen)
	h[6], h[7] = next, 64
	src, dst := netip.MustParseAddr("2001:db8::1").As16(), netip.MustParseAddr("2001:db8::2").As16()
	copy(h[8:], src[:])
	copy(h[24:], dst[:])
	return cat(h, payload)
}

func tcp(sport, dport uint16, flags uint8) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	h[12], h[13] = 5<<4, flags
	return h
}

func udp(sport, dport uint16) []byte {
	h := make([]byte, 8)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	return h
}

// ext is an IPv6 extension header of (hdrExtLen+1)*8 bytes.
func ext(next, hdrExtLen uint8) []byte {
	b := make([]byte, (int(hdrExtLen)+1)*8)
	b[0], b[1] = next, hdrExtLen
	return b
}

func fragHdr(next uint8, offset uint16, more bool, id uint32) []byte {
	b := make([]byte, 8)
	b[0] = next
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], id)
	return b
}

var (
	v4tcp = ipv4(6, 40, 0x4000, 1, nil, tcp(1234, 80, 0x12))
	v6udp = ipv6(17, 8, udp(5353, 53))
)

func TestDecode(t *testing.T) {
	type want struct {
		Res              Result
		Proto            uint8
		SrcPort, DstPort uint16
		Length           uint32
		V6               bool
		VLAN             int // -1: none
		Flags            uint8
		NonIP            NonIPKind
	}
	tcpOK := want{ResultIP, 6, 1234, 80, 40, false, -1, 0x12, 0}
	udp6 := want{ResultIP, 17, 5353, 53, 48, true, -1, 0, 0}
	nullLE := func(af uint32) []byte { return binary.LittleEndian.AppendUint32(nil, af) }
	nullBE := func(af uint32) []byte { return binary.BigEndian.AppendUint32(nil, af) }
	sll := func(proto uint16) []byte { return cat(make([]byte, 14), be16(proto)) }
	sll2 := func(proto uint16) []byte { return cat(be16(proto), make([]byte, 18)) }
	pppoe := func(ppp uint16) []byte { return cat([]byte{0x11, 0, 0, 1, 0, 0}, be16(ppp)) }
	mpls := func(bos bool) []byte {
		if bos {
			return []byte{0, 0x10, 0x01, 64}
		}
		return []byte{0, 0x20, 0x00, 64}
	}
	for _, tc := range []struct {
		name  string
		link  LinkType
		frame []byte
		want  want
	}{
		{"ethernet ipv4 tcp", LinkEthernet, cat(eth(0x0800), v4tcp), tcpOK},
		{"ethernet ipv6 udp", LinkEthernet, cat(eth(0x86dd), v6udp), udp6},
		{"ethernet padding ignored", LinkEthernet, cat(eth(0x0800), v4tcp, make([]byte, 6)), tcpOK},
		{"802.1Q", LinkEthernet, cat(eth(0x8100), vlan(42, 0x0800), v4tcp), want{ResultIP, 6, 1234, 80, 40, false, 42, 0x12, 0}},
		{"QinQ outermost kept", LinkEthernet, cat(eth(0x88a8), vlan(10, 0x8100), vlan(20, 0x0800), v4tcp), want{ResultIP, 6, 1234, 80, 40, false, 10, 0x12, 0}},
		{"0x9100 QinQ", LinkEthernet, cat(eth(0x9100), vlan(5, 0x8100), vlan(6, 0x86dd), v6udp), want{ResultIP, 17, 5353, 53, 48, true, 5, 0, 0}},
		{"PPPoE IPv4", LinkEthernet, cat(eth(0x8864), pppoe(0x0021), v4tcp), tcpOK},
		{"PPPoE IPv6", LinkEthernet, cat(eth(0x8864), pppoe(0x0057), v6udp), udp6},
		{"PPPoE LCP", LinkEthernet, cat(eth(0x8864), pppoe(0xc021), []byte{1, 2, 3, 4}), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPOther}},
		{"QinQ PPPoE", LinkEthernet, cat(eth(0x8100), vlan(1, 0x8100), vlan(2, 0x8864), pppoe(0x0021), v4tcp), want{ResultIP, 6, 1234, 80, 40, false, 1, 0x12, 0}},
		{"MPLS two labels IPv4", LinkEthernet, cat(eth(0x8847), mpls(false), mpls(true), v4tcp), tcpOK},
		{"MPLS IPv6", LinkEthernet, cat(eth(0x8847), mpls(true), v6udp), udp6},
		{"MPLS control word", LinkEthernet, cat(eth(0x8847), mpls(true), []byte{0, 0, 0, 0}, v4tcp), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPOther}},
		{"MPLS truncated stack", LinkEthernet, cat(eth(0x8847), mpls(false)), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPTruncated}},
		{"ARP", LinkEthernet, cat(eth(0x0806), make([]byte, 28)), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPARP}},
		{"LLDP", LinkEthernet, cat(eth(0x88cc), make([]byte, 20)), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPLLDP}},
		{"STP (802.3 + LLC)", LinkEthernet, cat(eth(38), []byte{0x42, 0x42, 0x03}, make([]byte, 35)), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPSTP}},
		{"CDP (SNAP Cisco)", LinkEthernet, cat(eth(100), []byte{0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0}, make([]byte, 20)), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPCDP}},
		{"SNAP RFC 1042 IPv4", LinkEthernet, cat(eth(100), []byte{0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0}, v4tcp), tcpOK},
		{"short ethernet", LinkEthernet, []byte{1, 2, 3}, want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPTruncated}},
		{"NULL little-endian AF_INET", LinkNull, cat(nullLE(2), v4tcp), tcpOK},
		{"NULL big-endian AF_INET", LinkNull, cat(nullBE(2), v4tcp), tcpOK},
		{"NULL AF_INET6 24", LinkNull, cat(nullLE(24), v6udp), udp6},
		{"NULL AF_INET6 28 big-endian", LinkNull, cat(nullBE(28), v6udp), udp6},
		{"NULL AF_INET6 30", LinkNull, cat(nullLE(30), v6udp), udp6},
		{"NULL unknown AF", LinkNull, cat(nullLE(7), v6udp), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPOther}},
		{"LOOP", LinkLoop, cat(nullBE(2), v4tcp), tcpOK},
		{"RAW v4", LinkRaw, v4tcp, tcpOK},
		{"RAW v6", LinkRaw, v6udp, udp6},
		{"RAW bad version", LinkRaw, cat([]byte{0x50}, v4tcp[1:]), want{ResultMalformed, 0, 0, 0, 0, false, -1, 0, 0}},
		{"IPV4 link", LinkIPv4, v4tcp, tcpOK},
		{"IPV6 link", LinkIPv6, v6udp, udp6},
		{"SLL", LinkLinuxSLL, cat(sll(0x0800), v4tcp), tcpOK},
		{"SLL VLAN", LinkLinuxSLL, cat(sll(0x8100), vlan(9, 0x0800), v4tcp), want{ResultIP, 6, 1234, 80, 40, false, 9, 0x12, 0}},
		{"SLL ARP", LinkLinuxSLL, cat(sll(0x0806), make([]byte, 28)), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPARP}},
		{"SLL2", LinkLinuxSLL2, cat(sll2(0x86dd), v6udp), udp6},
		{"SLL2 short", LinkLinuxSLL2, make([]byte, 10), want{ResultNonIP, 0, 0, 0, 0, false, -1, 0, NonIPTruncated}},
		{"unknown link", LinkType(147), v4tcp, want{ResultUnsupportedLink, 0, 0, 0, 0, false, -1, 0, 0}},

		// IPv4 edge cases.
		{"ipv4 options", LinkRaw, ipv4(6, 48, 0, 1, make([]byte, 8), tcp(1234, 80, 0x12)), want{ResultIP, 6, 1234, 80, 48, false, -1, 0x12, 0}},
		{"ipv4 header cut", LinkRaw, v4tcp[:6], want{ResultMalformed, 0, 0, 0, 0, false, -1, 0, 0}},
		{"ipv4 IHL 15 with 20 bytes", LinkRaw, cat([]byte{0x4f}, v4tcp[1:20]), want{ResultMalformed, 0, 0, 0, 0, false, -1, 0, 0}},
		{"ipv4 IHL 4", LinkRaw, cat([]byte{0x44}, v4tcp[1:]), want{ResultMalformed, 0, 0, 0, 0, false, -1, 0, 0}},
		{"ipv4 total length < IHL", LinkRaw, ipv4(6, 19, 0, 1, nil, tcp(1, 2, 0)), want{ResultMalformed, 0, 0, 0, 0, false, -1, 0, 0}},
		{"ipv4 total length lies (bytes from header)", LinkRaw, ipv4(17, 1500, 0, 1, nil, udp(53, 1000)), want{ResultIP, 17, 53, 1000, 1500, false, -1, 0, 0}},
		{"ipv4 TSO total length 0", LinkRaw, ipv4(17, 0, 0, 1, nil, cat(udp(53, 1000), make([]byte, 100))), want{ResultIP, 17, 53, 1000, 128, false, -1, 0, 0}},
		{"ipv4 transport beyond total length", LinkRaw, ipv4(6, 22, 0, 1, nil, tcp(1234, 80, 0x12)), want{ResultIPTruncatedTransport, 6, 0, 0, 22, false, -1, 0, 0}},
		{"tcp cut inside options: ports kept", LinkRaw, ipv4(6, 44, 0, 1, nil, cat([]byte{0x04, 0xd2, 0, 80}, make([]byte, 8), []byte{0x80, 0x02}, make([]byte, 10))), want{ResultIPTruncatedTransport, 6, 1234, 80, 44, false, -1, 0x02, 0}},
		{"tcp 4 bytes: ports only", LinkRaw, ipv4(6, 60, 0, 1, nil, []byte{0x04, 0xd2, 0, 80}), want{ResultIPTruncatedTransport, 6, 1234, 80, 60, false, -1, 0, 0}},
		{"tcp 3 bytes: no ports", LinkRaw, ipv4(6, 60, 0, 1, nil, []byte{0x04, 0xd2, 0}), want{ResultIPTruncatedTransport, 6, 0, 0, 60, false, -1, 0, 0}},
		{"udp 6 bytes: no ports", LinkRaw, ipv4(17, 60, 0, 1, nil, udp(1, 2)[:6]), want{ResultIPTruncatedTransport, 17, 0, 0, 60, false, -1, 0, 0}},
		{"sctp", LinkRaw, ipv4(132, 32, 0, 1, nil, cat(udp(2905, 2906), make([]byte, 4))), want{ResultIP, 132, 2905, 2906, 32, false, -1, 0, 0}},
		{"icmp: ports 0", LinkRaw, ipv4(1, 28, 0, 1, nil, []byte{8, 0, 0, 0, 0, 1, 0, 1}), want{ResultIP, 1, 0, 0, 28, false, -1, 0, 0}},
		{"gre: outer only", LinkRaw, ipv4(47, 64, 0, 1, nil, cat([]byte{0, 0, 0x08, 0}, v4tcp)), want{ResultIP, 47, 0, 0, 64, false, -1, 0, 0}},
		{"ipv4 non-first fragment: no ports", LinkRaw, ipv4(17, 100, 185, 9, nil, udp(53, 1000)), want{ResultIP, 17, 0, 0, 100, false, -1, 0, 0}},

		// IPv6 extension headers.
		{"hop-by-hop, routing, dstopts", LinkRaw, ipv6(0, 32, cat(ext(43, 0), ext(60, 0), ext(17, 0), udp(1, 2))), want{ResultIP, 17, 1, 2, 72, true, -1, 0, 0}},
		{"AH transport mode", LinkRaw, ipv6(51, 24, cat([]byte{17, 2, 0, 0}, make([]byte, 12), udp(7, 9))), want{ResultIP, 17, 7, 9, 64, true, -1, 0, 0}},
		{"AH tunnel mode", LinkRaw, ipv6(51, 56, cat([]byte{41, 2, 0, 0}, make([]byte, 12), v6udp[:40])), want{ResultIP, 41, 0, 0, 96, true, -1, 0, 0}},
		{"ESP ends the walk", LinkRaw, ipv6(50, 16, make([]byte, 16)), want{ResultIP, 50, 0, 0, 56, true, -1, 0, 0}},
		{"mobility ends the walk", LinkRaw, ipv6(135, 8, ext(59, 0)), want{ResultIP, 135, 0, 0, 48, true, -1, 0, 0}},
		{"missing hop-by-hop: protocol 0", LinkRaw, ipv6(0, 8, nil), want{ResultIPTruncatedTransport, 0, 0, 0, 48, true, -1, 0, 0}},
		{"truncated dstopts: its next header", LinkRaw, ipv6(60, 24, ext(6, 2)[:10]), want{ResultIPTruncatedTransport, 6, 0, 0, 64, true, -1, 0, 0}},
		{"atomic fragment is ordinary", LinkRaw, ipv6(44, 16, cat(fragHdr(17, 0, false, 5), udp(1, 2))), want{ResultIP, 17, 1, 2, 56, true, -1, 0, 0}},
		{"ipv6 header cut", LinkRaw, v6udp[:39], want{ResultMalformed, 0, 0, 0, 0, false, -1, 0, 0}},
		{"ipv6 in 0x0800 frame", LinkEthernet, cat(eth(0x0800), v6udp), udp6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			var p Packet
			res := d.Decode(tc.link, tc.frame, &p)
			assert.Equal(t, uint64(1), d.Counters.ByResult[res])
			w, got := tc.want, want{Res: res, VLAN: -1}
			if res.IsIP() {
				got = want{res, p.Protocol, p.SrcPort, p.DstPort, p.Length, p.IsIPv6, -1, p.TCPFlags, 0}
				if p.HasVLAN {
					got.VLAN = int(p.VLAN)
				}
			} else {
				// The decoder fills the rest only for IP.
				w = want{Res: w.Res, VLAN: -1, NonIP: w.NonIP}
				if res == ResultNonIP {
					got.NonIP = p.NonIP
				}
			}
			difftest.Equal(t, w, got)
			if !res.IsIP() {
				return
			}
			if p.IsIPv6 {
				assert.Equal(t, "2001:db8::1", netip.AddrFrom16(p.Src).String())
			} else {
				assert.Equal(t, "192.0.2.1", netip.AddrFrom16(p.Src).Unmap().String())
				assert.Equal(t, "198.51.100.2", netip.AddrFrom16(p.Dst).Unmap().String())
			}
		})
	}
}

func TestFragmentFields(t *testing.T) {
	var d Decoder
	var p Packet
	// IPv4 first fragment: MF, ports readable.
	require.Equal(t, ResultIP, d.Decode(LinkRaw, ipv4(17, 1500, 0x2000, 777, nil, udp(6363, 6363)), &p))
	assert.True(t, p.IsFragment)
	assert.True(t, p.FragMore)
	assert.Zero(t, p.FragOffset)
	assert.Equal(t, uint32(777), p.FragID)
	assert.Equal(t, uint16(6363), p.SrcPort)
	// IPv4 last fragment.
	require.Equal(t, ResultIP, d.Decode(LinkRaw, ipv4(17, 300, 185, 777, nil, make([]byte, 40)), &p))
	assert.True(t, p.IsFragment)
	assert.False(t, p.FragMore)
	assert.Equal(t, uint16(185), p.FragOffset)
	assert.Zero(t, p.SrcPort)
	// DF only: not a fragment.
	require.Equal(t, ResultIP, d.Decode(LinkRaw, v4tcp, &p))
	assert.False(t, p.IsFragment)
	// IPv6 non-first fragment: protocol = Fragment header's Next Header.
	require.Equal(t, ResultIP, d.Decode(LinkRaw, ipv6(0, 32, cat(ext(44, 0), fragHdr(17, 100, true, 0xabcdef01), make([]byte, 16))), &p))
	assert.True(t, p.IsFragment)
	assert.Equal(t, uint16(100), p.FragOffset)
	assert.True(t, p.FragMore)
	assert.Equal(t, uint32(0xabcdef01), p.FragID)
	assert.Equal(t, uint8(17), p.Protocol)
	assert.Equal(t, uint8(17), p.FragNextHeader)
	assert.Zero(t, p.SrcPort)
	// IPv6 first fragment: walk continues to the transport header.
	require.Equal(t, ResultIP, d.Decode(LinkRaw, ipv6(44, 16, cat(fragHdr(17, 0, true, 3), udp(53, 1000))), &p))
	assert.True(t, p.IsFragment)
	assert.Equal(t, uint16(53), p.SrcPort)
}

func TestDecodeVLANFromRing(t *testing.T) {
	var d Decoder
	var p Packet
	// The kernel stripped the outer tag (tp_vlan_tci); an inner one remains.
	require.Equal(t, ResultIP, d.DecodeVLAN(LinkEthernet, cat(eth(0x8100), vlan(20, 0x0800), v4tcp), 0x2000|10, &p))
	assert.True(t, p.HasVLAN)
	assert.Equal(t, uint16(10), p.VLAN)
}

func TestDecodeZeroAllocs(t *testing.T) {
	frames := [][]byte{
		cat(eth(0x0800), v4tcp),
		cat(eth(0x8100), vlan(1, 0x86dd), ipv6(0, 32, cat(ext(43, 0), ext(60, 0), ext(17, 0), udp(1, 2)))),
		cat(eth(0x0806), make([]byte, 28)),
		v4tcp[:10],
	}
	var d Decoder
	var p Packet
	allocs := testing.AllocsPerRun(1000, func() {
		for _, f := range frames {
			d.Decode(LinkEthernet, f, &p)
		}
	})
	assert.Zero(t, allocs)
}

func TestNeverPanicsOnPrefixes(t *testing.T) {
	frames := [][]byte{
		cat(eth(0x8100), vlan(1, 0x8864), pppoe0021(), ipv4(6, 60, 0, 1, make([]byte, 20), tcp(1, 2, 3))),
		cat(eth(0x8847), []byte{0, 0x10, 0x01, 64}, ipv6(0, 64, cat(ext(43, 1), fragHdr(51, 0, true, 1), []byte{6, 1, 0, 0, 0, 0, 0, 0}, tcp(1, 2, 3)))),
	}
	var d Decoder
	var p Packet
	for _, f := range frames {
		for n := range len(f) + 1 {
			for _, l := range []LinkType{LinkEthernet, LinkRaw, LinkNull, LinkLinuxSLL, LinkLinuxSLL2, LinkIPv4, LinkIPv6} {
				d.Decode(l, f[:n], &p)
			}
		}
	}
}

func pppoe0021() []byte { return []byte{0x11, 0, 0, 1, 0, 0, 0, 0x21} }

func TestStrings(t *testing.T) {
	for r := ResultIP; r <= numResults; r++ {
		assert.NotEmpty(t, r.String())
	}
	for k := NonIPOther; k < numNonIPKinds; k++ {
		assert.NotEmpty(t, k.String())
	}
}

// TestPayloadAndICMP checks the payload location (fast and general path) and
// the ICMP type and code.
func TestPayloadAndICMP(t *testing.T) {
	body := []byte("GET / HTTP/1.1\r\n")
	tcpOpts := tcp(1234, 80, 0x18)
	tcpOpts[12] = 6 << 4 // 4 bytes of options
	tcpOpts = append(tcpOpts, 1, 1, 1, 0)
	for _, tc := range []struct {
		name    string
		link    LinkType
		frame   []byte
		payload []byte
	}{
		{"v4 tcp", LinkEthernet, cat(eth(0x0800), ipv4(6, uint16(40+len(body)), 0x4000, 1, nil, cat(tcp(1234, 80, 0x18), body))), body},
		{"v4 tcp options", LinkEthernet, cat(eth(0x0800), ipv4(6, uint16(44+len(body)), 0x4000, 1, nil, cat(tcpOpts, body))), body},
		{"v4 udp padding not payload", LinkEthernet, cat(eth(0x0800), ipv4(17, 28+4, 0, 1, nil, cat(udp(53, 9), []byte{1, 2, 3, 4})), make([]byte, 20)), []byte{1, 2, 3, 4}},
		{"v4 ip options", LinkEthernet, cat(eth(0x0800), ipv4(17, 24+8+3, 0, 1, []byte{1, 1, 1, 0}, cat(udp(53, 9), []byte{7, 8, 9}))), []byte{7, 8, 9}},
		{"vlan v6 ext udp", LinkEthernet, cat(eth(0x8100), vlan(3, 0x86dd), ipv6(60, 8+8+2, cat(ext(17, 0), udp(5, 53), []byte{0xaa, 0xbb}))), []byte{0xaa, 0xbb}},
		{"snaplen cut", LinkEthernet, cat(eth(0x0800), ipv4(6, 1500, 0x4000, 1, nil, cat(tcp(1234, 80, 0x18), body))), body},
		{"no payload", LinkEthernet, cat(eth(0x0800), v4tcp), nil},
		{"truncated tcp header", LinkRaw, ipv4(6, 40, 0, 1, nil, tcp(1, 2, 3)[:16]), nil},
		{"sctp has none", LinkRaw, ipv4(132, 20+12+4, 0, 1, nil, make([]byte, 16)), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Decoder
			var p, g Packet
			require.True(t, d.Decode(tc.link, tc.frame, &p).IsIP())
			assert.Equal(t, tc.payload, p.Payload(tc.frame))
			assert.Equal(t, len(tc.payload), int(p.PayloadLen))
			d.DecodeGeneral(tc.link, tc.frame, &g)
			assert.Equal(t, p, g)
			assert.False(t, p.HasICMP)
		})
	}
	var d Decoder
	var p Packet
	require.True(t, d.Decode(LinkRaw, ipv4(1, 28, 0, 1, nil, []byte{8, 0, 0, 0, 0, 1, 0, 1}), &p).IsIP())
	assert.True(t, p.HasICMP)
	assert.Equal(t, [2]uint8{8, 0}, [2]uint8{p.ICMPType, p.ICMPCode})
	require.True(t, d.Decode(LinkRaw, ipv6(58, 8, []byte{135, 0, 0, 0, 0, 0, 0, 0}), &p).IsIP())
	assert.True(t, p.HasICMP)
	assert.Equal(t, [2]uint8{135, 0}, [2]uint8{p.ICMPType, p.ICMPCode})
	require.True(t, d.Decode(LinkRaw, ipv6(0, 16, cat(ext(58, 0), []byte{3, 1, 0, 0, 0, 0, 0, 0})), &p).IsIP())
	assert.Equal(t, [3]any{true, uint8(3), uint8(1)}, [3]any{p.HasICMP, p.ICMPType, p.ICMPCode}, "after a Hop-by-Hop header")
	// Non-first fragment: no ICMP header.
	require.True(t, d.Decode(LinkRaw, ipv4(1, 28, 100, 1, nil, []byte{8, 0, 0, 0, 0, 1, 0, 1}), &p).IsIP())
	assert.False(t, p.HasICMP)
	// One byte captured: not enough.
	require.True(t, d.Decode(LinkRaw, ipv4(1, 28, 0, 1, nil, []byte{8}), &p).IsIP())
	assert.False(t, p.HasICMP)
}
