// Package decode turns captured link-layer frames into the few fields the flow
// table needs (addresses, protocol, ports, TCP flags, IP length, fragment
// information), without allocating.
//
// The semantics are those of the independent, tshark-based oracle whose expected
// flows the tests compare with (common/oracle/testdata/pcaps/README.md):
// only the OUTERMOST IP header is used (GRE, 6in4, IP-in-IP are flows between
// the tunnel endpoints), bytes are the length written in the IP header even
// when the frame was cut by the snaplen or the header lies, and ports are 0 for
// every protocol other than TCP, UDP and SCTP.
package decode

import "encoding/binary"

// LinkType is a LINKTYPE_ value (https://www.tcpdump.org/linktypes.html), as
// written in pcap and pcapng interface headers.
type LinkType uint32

// Link types the decoder understands.
const (
	LinkNull      LinkType = 0   // BSD loopback: 4-byte AF_ value in the writer's byte order
	LinkEthernet  LinkType = 1   // IEEE 802.3 Ethernet
	LinkRawDLT12  LinkType = 12  // DLT_RAW on some BSDs, found in old files: raw IP
	LinkRawDLT14  LinkType = 14  // DLT_RAW on OpenBSD, found in old files: raw IP
	LinkRaw       LinkType = 101 // raw IPv4/IPv6, version nibble decides
	LinkLoop      LinkType = 108 // OpenBSD loopback: 4-byte AF_ value, network byte order
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1 (16-byte header)
	LinkIPv4      LinkType = 228 // raw IPv4
	LinkIPv6      LinkType = 229 // raw IPv6
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2 (20-byte header)
)

// Result says what a frame turned out to be. Every Result except the IP ones
// means the Packet must not be given to the flow table.
type Result uint8

const (
	// ResultIP: an IP packet with all the fields the flow table needs.
	ResultIP Result = iota
	// ResultIPTruncatedTransport: an IP packet whose transport header is not
	// (completely) in the capture. It still counts as a flow packet; its ports
	// are 0 unless they were readable (TCP cut inside its options, for example).
	ResultIPTruncatedTransport
	// ResultNonIP: ARP, LLDP, CDP, STP... (see NonIPKind).
	ResultNonIP
	// ResultMalformed: the outermost IP header cannot be decoded (truncated,
	// bad IHL, bad version, Total Length below the header length...).
	ResultMalformed
	// ResultUnsupportedLink: a link type the decoder does not know.
	ResultUnsupportedLink
	numResults
)

// IsIP reports whether the packet belongs in the flow table.
func (r Result) IsIP() bool { return r <= ResultIPTruncatedTransport }

func (r Result) String() string {
	switch r {
	case ResultIP:
		return "ip"
	case ResultIPTruncatedTransport:
		return "ip_truncated_transport"
	case ResultNonIP:
		return "non_ip"
	case ResultMalformed:
		return "malformed_ip"
	case ResultUnsupportedLink:
		return "unsupported_link"
	}
	return "unknown"
}

// NonIPKind classifies non-IP frames for the counters.
type NonIPKind uint8

const (
	NonIPOther     NonIPKind = iota
	NonIPARP                 // ARP (0x0806) and RARP (0x8035)
	NonIPLLDP                // LLDP (0x88cc)
	NonIPCDP                 // Cisco CDP/VTP/DTP... (LLC SNAP, OUI 00:00:0c)
	NonIPSTP                 // spanning tree (LLC DSAP 0x42)
	NonIPLLC                 // other 802.2 LLC frames
	NonIPIPX                 // Novell raw 802.3 / IPX
	NonIPTruncated           // frame ends inside the link-layer header(s)
	numNonIPKinds
)

func (k NonIPKind) String() string {
	return [...]string{"other", "arp", "lldp", "cdp", "stp", "llc", "ipx", "truncated_link"}[k]
}

// Counters are per-decoder counts of results. They are plain integers: a
// Decoder belongs to one goroutine; copy them out to publish.
type Counters struct {
	Frames    uint64
	ByResult  [numResults]uint64
	NonIPKind [numNonIPKinds]uint64
}

// Packet is the decoded view of one frame. It is meant to be reused: Decode
// overwrites every field.
type Packet struct {
	// Src and Dst are the outermost IP addresses; IPv4 addresses are stored
	// in IPv4-mapped form (::ffff:a.b.c.d), like netip.Addr.As16, and IsIPv6
	// tells them apart from real IPv6 IPv4-mapped addresses.
	Src, Dst [16]byte
	IsIPv6   bool
	// Protocol is the IPv4 Protocol field, or for IPv6 the Next Header reached
	// after Hop-by-Hop, Routing, Fragment, Destination Options and AH (like
	// Linux ipv6_skip_exthdr). For an IPv6 non-first fragment it is the
	// Fragment header's Next Header.
	Protocol uint8
	// SrcPort and DstPort are set for TCP, UDP and SCTP when readable.
	SrcPort, DstPort uint16
	// TCPFlags are the 8 flag bits of byte 13 of the TCP header; 0 when absent
	// and for every protocol but TCP (the flow table relies on it).
	TCPFlags uint8
	// Length is the IP length from the header: IPv4 Total Length, IPv6
	// Payload Length + 40.
	Length uint32

	// VLAN is the outermost 802.1Q/802.1ad VLAN id (12 bits) when HasVLAN.
	VLAN    uint16
	HasVLAN bool

	// Fragment information of the outermost IP header. IsFragment is set
	// when the packet is part of a fragmented datagram: IPv4 with MF set or
	// a non-zero offset, IPv6 with a Fragment header that is not atomic
	// (offset 0 and M=0 is an ordinary packet, RFC 6946).
	IsFragment bool
	FragMore   bool   // IPv4 MF / IPv6 M flag
	FragOffset uint16 // in 8-byte units
	FragID     uint32 // IPv4 Identification (16 bits) or IPv6 Identification
	// FragNextHeader is the IPv6 Fragment header's Next Header.
	FragNextHeader uint8

	// NonIP classifies a ResultNonIP frame.
	NonIP NonIPKind

	// ICMPType and ICMPCode are the type and code of the outermost IP's ICMP
	// (protocol 1) or ICMPv6 (58) header when HasICMP: not for non-first
	// fragments (no header) nor when fewer than 2 of its bytes were captured.
	ICMPType, ICMPCode uint8
	HasICMP            bool

	// PayloadOff and PayloadLen locate the TCP or UDP payload in the frame:
	// it starts after the TCP data offset or the 8-byte UDP header and ends
	// at the IP length or the end of the capture, whichever comes first.
	// PayloadLen is 0 for other protocols, non-first fragments and
	// truncated transport headers. See Payload.
	PayloadOff, PayloadLen uint32
}

// Payload returns the transport payload of the frame p was decoded from
// (PayloadOff, PayloadLen); nil when there is none or frame is not that frame.
func (p *Packet) Payload(frame []byte) []byte {
	off, n := uint64(p.PayloadOff), uint64(p.PayloadLen)
	if n == 0 || off+n > uint64(len(frame)) {
		return nil
	}
	return frame[off : off+n]
}

// Decoder decodes frames into a Packet. The zero value is ready to use. It is
// not safe for concurrent use; use one per capture goroutine.
type Decoder struct {
	Counters Counters
}

// Ethertypes.
const (
	etherIPv4      = 0x0800
	etherARP       = 0x0806
	etherRARP      = 0x8035
	etherVLAN      = 0x8100 // 802.1Q C-tag
	etherQinQ9100  = 0x9100 // pre-802.1ad QinQ (Wireshark vlan.qinq_ethertype default)
	etherIPv6      = 0x86dd
	etherMPLS      = 0x8847
	etherMPLSMcast = 0x8848
	etherPPPoED    = 0x8863
	etherPPPoES    = 0x8864
	ether8021AD    = 0x88a8 // 802.1ad S-tag
	etherLLDP      = 0x88cc
)

// maxEncapDepth bounds VLAN/MPLS nesting so a frame of repeated tags cannot
// make us loop; each tag is at least 4 bytes, so a jumbo frame has < 2500.
const maxEncapDepth = 4096

// Decode decodes one frame of the given link type into p.
func (d *Decoder) Decode(link LinkType, frame []byte, p *Packet) Result {
	return d.decode(link, frame, 0, false, p)
}

// DecodeVLAN is Decode for frames whose outermost VLAN tag was removed by the
// NIC/kernel and delivered out of band: with AF_PACKET the tag of a
// hardware-accelerated VLAN arrives in tpacket3_hdr.hv1.tp_vlan_tci (valid when
// TP_STATUS_VLAN_VALID is set), not in the frame. vlan is that tag's 12-bit id
// and becomes the outermost VLAN of the packet.
func (d *Decoder) DecodeVLAN(link LinkType, frame []byte, vlan uint16, p *Packet) Result {
	return d.decode(link, frame, vlan&0x0fff, true, p)
}

func (d *Decoder) decode(link LinkType, frame []byte, vlan uint16, hasVLAN bool, p *Packet) Result {
	if link == LinkEthernet && fast(frame, vlan, hasVLAN, p) {
		d.Counters.Frames++
		d.Counters.ByResult[ResultIP]++
		return ResultIP
	}
	return d.general(link, frame, vlan, hasVLAN, p)
}

// fast decodes the most common frame in one function with one bounds check:
// untagged Ethernet, IPv4 without options, not a fragment, with a whole TCP or
// UDP header within Total Length and the capture. It gives exactly what the
// general path gives (a test compares them) and reports false, leaving p to
// the general path, for everything else.
func fast(b []byte, vlan uint16, hasVLAN bool, p *Packet) bool {
	if len(b) < 54 { // 14 + 20 + 20; Ethernet pads frames to 60 bytes
		return false
	}
	h := b[:54:54]
	total := int(binary.BigEndian.Uint16(h[16:18]))
	proto := h[23]
	isTCP, isUDP := proto == 6, proto == 17
	if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 || // IPv4, IHL 5
		binary.BigEndian.Uint16(h[20:22])&0x3fff != 0 || // MF or an offset
		!isTCP && !isUDP {
		return false
	}
	// Transport bytes: within Total Length and the capture.
	end := min(len(b)-14, total) - 20
	var flags uint8
	hlen := 8
	if isTCP {
		off := int(h[46] >> 4)
		if off < 5 || off*4 > end {
			return false
		}
		flags = h[47]
		hlen = off * 4
	} else if end < 8 {
		return false
	}
	// Zero, then set fields one by one: a composite literal is built on
	// the stack and copied, and the wide loads of that copy stall on the
	// narrow stores that just built it.
	*p = Packet{}
	p.Protocol = proto
	p.SrcPort = binary.BigEndian.Uint16(h[34:36])
	p.DstPort = binary.BigEndian.Uint16(h[36:38])
	p.TCPFlags = flags
	p.Length = uint32(total)
	p.VLAN, p.HasVLAN = vlan, hasVLAN
	p.FragID = uint32(binary.BigEndian.Uint16(h[18:20]))
	n := end - hlen // payload bytes; the offset stays 0 without any (like general)
	p.PayloadOff = uint32(34+hlen) & -uint32(b2u(n != 0))
	p.PayloadLen = uint32(n)
	// IPv4-mapped: bytes 10 and 11 are 0xff, 12..15 the address.
	const mapped = 0xffff << 16
	binary.LittleEndian.PutUint64(p.Src[8:16], mapped|uint64(binary.LittleEndian.Uint32(h[26:30]))<<32)
	binary.LittleEndian.PutUint64(p.Dst[8:16], mapped|uint64(binary.LittleEndian.Uint32(h[30:34]))<<32)
	return true
}

// general decodes any frame of any link type.
func (d *Decoder) general(link LinkType, frame []byte, vlan uint16, hasVLAN bool, p *Packet) Result {
	*p = Packet{} // see fast
	p.VLAN, p.HasVLAN = vlan, hasVLAN
	r := d.link(link, frame, p)
	if p.PayloadLen != 0 {
		// transport left the payload's distance from the end of the
		// frame's capacity (every slicing on the way keeps the capacity
		// end): turn it into an offset from the frame's start.
		p.PayloadOff = uint32(cap(frame)) - p.PayloadOff
	}
	d.Counters.Frames++
	d.Counters.ByResult[r%numResults]++
	if r == ResultNonIP {
		d.Counters.NonIPKind[p.NonIP%numNonIPKinds]++
	}
	return r
}

func (d *Decoder) link(link LinkType, b []byte, p *Packet) Result {
	// Fast path for the common case, untagged Ethernet carrying IPv4.
	if link == LinkEthernet && len(b) >= 34 && b[12] == 0x08 && b[13] == 0x00 && b[14]>>4 == 4 {
		return d.ipv4(b[14:], p)
	}
	switch link {
	case LinkEthernet:
		return d.ethernet(b, p)
	case LinkRaw, LinkRawDLT12, LinkRawDLT14:
		return d.ipByVersion(b, p)
	case LinkIPv4:
		return d.ipv4(b, p)
	case LinkIPv6:
		return d.ipv6(b, p)
	case LinkNull, LinkLoop:
		return d.null(link, b, p)
	case LinkLinuxSLL:
		// struct sll_header: packet type(2) ARPHRD type(2) addr len(2)
		// addr(8) protocol(2). The protocol is an ethertype for the
		// usual ARPHRD_ETHER/ARPHRD_LOOPBACK/ARPHRD_NONE devices; small
		// values are Linux ETH_P_802_2 (4) / ETH_P_802_3 (1) and friends.
		if len(b) < 16 {
			return nonIP(p, NonIPTruncated)
		}
		return d.sllProto(binary.BigEndian.Uint16(b[14:16]), b[16:], p)
	case LinkLinuxSLL2:
		// struct sll2_header: protocol(2) reserved(2) ifindex(4)
		// ARPHRD type(2) packet type(1) addr len(1) addr(8).
		if len(b) < 20 {
			return nonIP(p, NonIPTruncated)
		}
		return d.sllProto(binary.BigEndian.Uint16(b[0:2]), b[20:], p)
	}
	return ResultUnsupportedLink
}

func (d *Decoder) sllProto(proto uint16, b []byte, p *Packet) Result {
	switch proto {
	case 0x0004: // ETH_P_802_2: an 802.2 LLC header follows
		return d.llc(b, p)
	case 0x0001: // ETH_P_802_3: Novell raw 802.3 (IPX)
		return nonIP(p, NonIPIPX)
	}
	return d.ethertype(proto, b, p, 0)
}

// null decodes LINKTYPE_NULL (AF_ value in the byte order of the machine that
// wrote the file) and LINKTYPE_LOOP (network byte order).
func (d *Decoder) null(link LinkType, b []byte, p *Packet) Result {
	if len(b) < 4 {
		return nonIP(p, NonIPTruncated)
	}
	af := binary.LittleEndian.Uint32(b)
	if link == LinkLoop || af&0xffff0000 != 0 {
		// The writer was big-endian (AF_ values are all < 65536).
		af = binary.BigEndian.Uint32(b)
	}
	switch af {
	case 2: // AF_INET everywhere
		return d.ipv4(b[4:], p)
	case 10, 24, 28, 30: // AF_INET6: Linux, NetBSD/OpenBSD, FreeBSD, Darwin
		return d.ipv6(b[4:], p)
	}
	return nonIP(p, NonIPOther)
}

func nonIP(p *Packet, k NonIPKind) Result {
	p.NonIP = k
	return ResultNonIP
}

func (d *Decoder) ethernet(b []byte, p *Packet) Result {
	if len(b) < 14 {
		return nonIP(p, NonIPTruncated)
	}
	t := binary.BigEndian.Uint16(b[12:14])
	if t < 0x0600 {
		// IEEE 802.3 length field: an 802.2 LLC header follows (or,
		// with DSAP/SSAP 0xffff, Novell raw 802.3).
		return d.llc(b[14:], p)
	}
	return d.ethertype(t, b[14:], p, 0)
}

// llc decodes an 802.2 LLC header; only SNAP with OUI 00:00:00 (RFC 1042
// encapsulated ethertype) can carry IP.
func (d *Decoder) llc(b []byte, p *Packet) Result {
	if len(b) < 3 {
		return nonIP(p, NonIPTruncated)
	}
	switch {
	case b[0] == 0xff && b[1] == 0xff:
		return nonIP(p, NonIPIPX)
	case b[0] == 0x42:
		return nonIP(p, NonIPSTP)
	case b[0] == 0xaa && b[1] == 0xaa && b[2] == 0x03:
		if len(b) < 8 {
			return nonIP(p, NonIPTruncated)
		}
		oui := uint32(b[3])<<16 | uint32(b[4])<<8 | uint32(b[5])
		switch oui {
		case 0x000000, 0x0000f8: // RFC 1042, 802.1H bridge tunnel
			return d.ethertype(binary.BigEndian.Uint16(b[6:8]), b[8:], p, 0)
		case 0x00000c:
			return nonIP(p, NonIPCDP)
		}
	}
	return nonIP(p, NonIPLLC)
}

// ethertype dispatches on an ethertype (Ethernet, VLAN tag, SLL protocol).
// depth counts nested VLAN/MPLS headers.
func (d *Decoder) ethertype(t uint16, b []byte, p *Packet, depth int) Result {
	for {
		switch t {
		case etherIPv4:
			// Wireshark's "ip" dissector dispatches on the version
			// nibble, so a 0x0800 frame holding IPv6 is IPv6.
			return d.ipByVersion(b, p)
		case etherIPv6:
			return d.ipByVersion(b, p)
		case etherVLAN, ether8021AD, etherQinQ9100:
			// TCI(2): PCP(3) DEI(1) VID(12), then the inner type.
			if len(b) < 4 || depth >= maxEncapDepth {
				return nonIP(p, NonIPTruncated)
			}
			if !p.HasVLAN {
				p.VLAN = binary.BigEndian.Uint16(b[0:2]) & 0x0fff
				p.HasVLAN = true
			}
			t = binary.BigEndian.Uint16(b[2:4])
			b = b[4:]
			depth++
			if t < 0x0600 {
				return d.llc(b, p)
			}
		case etherPPPoES:
			// RFC 2516 session stage: ver/type(1) code(1) session(2)
			// length(2), then the PPP protocol (2 bytes, RFC 1661).
			if len(b) < 8 {
				return nonIP(p, NonIPTruncated)
			}
			switch binary.BigEndian.Uint16(b[6:8]) {
			case 0x0021:
				return d.ipv4(b[8:], p)
			case 0x0057:
				return d.ipv6(b[8:], p)
			}
			return nonIP(p, NonIPOther) // LCP, IPCP, PAP...
		case etherMPLS, etherMPLSMcast:
			// RFC 3032 label stack entries of 4 bytes until the
			// bottom-of-stack bit; the payload type is not signalled,
			// so guess from the first nibble like Wireshark does.
			for {
				if len(b) < 4 || depth >= maxEncapDepth {
					return nonIP(p, NonIPTruncated)
				}
				bos := b[2]&0x01 != 0
				b = b[4:]
				depth++
				if bos {
					break
				}
			}
			if len(b) == 0 {
				return nonIP(p, NonIPTruncated)
			}
			switch b[0] >> 4 {
			case 4:
				return d.ipv4(b, p)
			case 6:
				return d.ipv6(b, p)
			}
			return nonIP(p, NonIPOther) // pseudowire control word, etc.
		case etherARP, etherRARP:
			return nonIP(p, NonIPARP)
		case etherLLDP:
			return nonIP(p, NonIPLLDP)
		default:
			return nonIP(p, NonIPOther)
		}
	}
}

func (d *Decoder) ipByVersion(b []byte, p *Packet) Result {
	if len(b) == 0 {
		return ResultMalformed
	}
	switch b[0] >> 4 {
	case 4:
		return d.ipv4(b, p)
	case 6:
		return d.ipv6(b, p)
	}
	return ResultMalformed
}

// v4mapped is the ::ffff:0:0/96 prefix used to store IPv4 addresses in 16 bytes.
var v4mapped = [12]byte{10: 0xff, 11: 0xff}

func (d *Decoder) ipv4(b []byte, p *Packet) Result {
	// RFC 791: version(4) IHL(4) TOS(8) Total Length(16) ID(16)
	// flags(3) fragment offset(13) TTL(8) protocol(8) checksum(16) src dst.
	if len(b) < 20 || b[0]>>4 != 4 {
		return ResultMalformed
	}
	hlen := int(b[0]&0x0f) * 4
	if hlen < 20 || len(b) < hlen {
		// Bad IHL, or options cut by the snaplen: Wireshark refuses the
		// header (no addresses), the oracle counts it as malformed.
		return ResultMalformed
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	switch {
	case total == 0:
		// TCP segmentation offload: the kernel hands the stack
		// super-frames whose Total Length is 0; take what was captured
		// (Wireshark uses the frame's length, "presumed TSO").
		total = len(b)
	case total < hlen:
		return ResultMalformed
	}
	copy(p.Src[:12], v4mapped[:])
	copy(p.Src[12:], b[12:16])
	copy(p.Dst[:12], v4mapped[:])
	copy(p.Dst[12:], b[16:20])
	p.Protocol = b[9]
	p.Length = uint32(total)

	frag := binary.BigEndian.Uint16(b[6:8])
	p.FragOffset = frag & 0x1fff
	p.FragMore = frag&0x2000 != 0
	p.FragID = uint32(binary.BigEndian.Uint16(b[4:6]))
	p.IsFragment = p.FragMore || p.FragOffset != 0
	if p.FragOffset != 0 {
		// Non-first fragment: no transport header; the flow table
		// attributes it to the first fragment's ports (README rule 5).
		return ResultIP
	}
	// The transport header lies within Total Length: bytes past it are
	// Ethernet padding, not transport.
	end := min(len(b), total)
	return transport(p, b[hlen:end])
}

func (d *Decoder) ipv6(b []byte, p *Packet) Result {
	// RFC 8200: version(4) class(8) flow label(20) payload length(16)
	// next header(8) hop limit(8) src(16) dst(16).
	if len(b) < 40 || b[0]>>4 != 6 {
		return ResultMalformed
	}
	p.IsIPv6 = true
	copy(p.Src[:], b[8:24])
	copy(p.Dst[:], b[24:40])
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	p.Length = uint32(plen) + 40
	end := len(b)
	if plen != 0 { // 0: Jumbo Payload (RFC 2675) or TSO, take the capture
		end = min(end, 40+plen)
	}
	nh := b[6]
	b = b[40:end]
	// Walk the extension headers Linux ipv6_skip_exthdr() skips: Hop-by-Hop
	// (0), Routing (43), Fragment (44), Destination Options (60) and AH (51).
	// ESP (50), Mobility (135), No Next Header (59) and anything else end the
	// walk and are the protocol. Every header is at least 8 bytes long, so
	// the loop ends.
	for {
		switch nh {
		case 0, 43, 44, 51, 60:
		default:
			p.Protocol = nh
			return transport(p, b)
		}
		if len(b) < 2 {
			// Chain truncated before this header's Next Header and
			// length: the last Next Header read is the protocol
			// (zeek-trunc-ip6-ext-trunc gives 0).
			p.Protocol = nh
			return ResultIPTruncatedTransport
		}
		next := b[0]
		var hl int
		switch nh {
		case 44:
			// RFC 8200 4.5: next(8) reserved(8) offset(13) res(2) M(1)
			// Identification(32).
			hl = 8
			if len(b) >= 8 {
				off := binary.BigEndian.Uint16(b[2:4])
				p.FragOffset = off >> 3
				p.FragMore = off&1 != 0
				p.FragID = binary.BigEndian.Uint32(b[4:8])
				p.FragNextHeader = next
				// Offset 0 and M=0 is an atomic fragment (RFC 6946):
				// an ordinary packet.
				p.IsFragment = p.FragOffset != 0 || p.FragMore
				if p.FragOffset != 0 {
					// Non-first fragment: the rest of the chain and
					// the transport header are in the first one.
					p.Protocol = next
					return ResultIP
				}
			}
		case 51:
			// RFC 4302: Payload Len is the AH length in 4-byte units
			// minus 2.
			hl = (int(b[1]) + 2) * 4
		default:
			// RFC 8200: Hdr Ext Len in 8-byte units, not counting the
			// first 8 bytes.
			hl = (int(b[1]) + 1) * 8
		}
		if len(b) < hl {
			p.Protocol = next
			return ResultIPTruncatedTransport
		}
		nh = next
		b = b[hl:]
	}
}

// transport reads ports and TCP flags from the transport header b (cut to the
// IP length). A header cut by the snaplen still yields the fields that are in
// the capture, like Wireshark: TCP and SCTP ports need 4 bytes (the SYN of
// zeek-tcp-truncated-header is cut inside its options), UDP ports the whole
// 8-byte header (Wireshark reads it at once), TCP flags 14 bytes.
//
// TCP, UDP and SCTP share the port layout, so they take one path, and the
// per-protocol differences are selected arithmetically: in a mix of TCP and
// UDP a branch on the protocol mispredicts half the time.
func transport(p *Packet, b []byte) Result {
	proto := p.Protocol
	isTCP, isUDP, isSCTP := b2u(proto == 6), b2u(proto == 17), b2u(proto == 132)
	if isTCP|isUDP|isSCTP == 0 {
		// ICMP, GRE, ESP...: no ports.
		if (proto == 1 || proto == 58) && len(b) >= 2 {
			p.ICMPType, p.ICMPCode, p.HasICMP = b[0], b[1], true
		}
		return ResultIP
	}
	need := 4 + 4*int(isUDP) // bytes needed for the ports
	if len(b) < need {
		return ResultIPTruncatedTransport
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	// Header length: TCP data offset (RFC 9293), UDP 8 (RFC 768), SCTP
	// common header 12 (RFC 9260).
	var off, flags uint8
	if len(b) >= 14 {
		off, flags = b[12]>>4, b[13]
	}
	p.TCPFlags = flags & -isTCP
	hlen := int(isTCP)*int(off)*4 + int(isUDP)*8 + int(isSCTP)*12
	minLen := int(isTCP)*20 + int(isUDP)*8 + int(isSCTP)*12
	if len(b) < hlen || hlen < minLen {
		return ResultIPTruncatedTransport
	}
	if n := len(b) - hlen; n > 0 && isSCTP == 0 {
		// The payload's distance from the end of the capacity; general
		// makes it an offset into the frame.
		p.PayloadOff = uint32(cap(b) - hlen)
		p.PayloadLen = uint32(n)
	}
	return ResultIP
}

func b2u(b bool) uint8 {
	var u uint8
	if b {
		u = 1
	}
	return u
}
