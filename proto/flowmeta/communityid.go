package flowmeta

import (
	"crypto/sha1"
	"encoding/base64"
	"net/netip"
)

// IP protocol numbers the Community ID treats specially.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
	protoSCTP   = 132
)

// CommunityIDMaxLen is the length of every Community ID v1: "1:" and the base64
// (with padding) of a 20-byte SHA-1 digest.
const CommunityIDMaxLen = 2 + 28

// CommunityID is the flow's Community ID v1
// (https://github.com/corelight/community-id-spec): "1:" and the standard base64,
// with padding, of the SHA-1 of the seed (2 bytes, network order), the smaller
// endpoint's address then the other's, the protocol, a zero byte and, for TCP, UDP,
// SCTP, ICMP and ICMPv6, the two ports (network order) in the same order as the
// addresses. ICMP and ICMPv6 map the message type and code to ports as Zeek does:
// a request or reply type gets its counterpart type as the second port (so both
// directions get the same ID), any other type its code, and those one-way messages
// are never reordered. Other protocols hash the addresses only.
//
// src and dst are 4-byte addresses for IPv4 (an IPv4-mapped IPv6 address is
// hashed as the 16 bytes it is). An ICMP or ICMPv6 flow without a type and code
// (hasICMP false) and a flow with an invalid address have no ID: "".
func CommunityID(seed uint16, proto uint8, src, dst netip.Addr, sport, dport uint16, icmpType, icmpCode uint8, hasICMP bool) string {
	var b [CommunityIDMaxLen]byte
	return string(AppendCommunityID(b[:0], seed, proto, src, dst, sport, dport, icmpType, icmpCode, hasICMP))
}

// AppendCommunityID appends CommunityID(...) to b (nothing when there is no ID),
// without allocating when b has room for CommunityIDMaxLen more bytes.
func AppendCommunityID(b []byte, seed uint16, proto uint8, src, dst netip.Addr, sport, dport uint16, icmpType, icmpCode uint8, hasICMP bool) []byte {
	var in [communityInputMax]byte
	n := communityInput(&in, seed, proto, src, dst, sport, dport, icmpType, icmpCode, hasICMP)
	if n == 0 {
		return b
	}
	sum := sha1.Sum(in[:n])
	b = append(b, '1', ':')
	return base64.StdEncoding.AppendEncode(b, sum[:])
}

// communityInputMax is the longest hash input: IPv6 with ports.
const communityInputMax = 2 + 16 + 16 + 2 + 4

// communityInput writes the hash input into in and returns its length (0: no ID).
func communityInput(in *[communityInputMax]byte, seed uint16, proto uint8, src, dst netip.Addr, sport, dport uint16, icmpType, icmpCode uint8, hasICMP bool) int {
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return 0
	}
	hasPorts, oneWay := false, false
	switch proto {
	case protoTCP, protoUDP, protoSCTP:
		hasPorts = true
	case protoICMP, protoICMPv6:
		if !hasICMP {
			return 0
		}
		hasPorts = true
		sport, dport, oneWay = icmpPorts(proto == protoICMPv6, icmpType, icmpCode)
	}
	var sa, da [16]byte
	alen := 16
	if src.Is4() {
		alen = 4
		s4, d4 := src.As4(), dst.As4()
		copy(sa[:], s4[:])
		copy(da[:], d4[:])
	} else {
		sa, da = src.As16(), dst.As16()
	}
	if !oneWay && !endpointLess(sa[:alen], da[:alen], sport, dport, hasPorts) {
		sa, da = da, sa
		sport, dport = dport, sport
	}
	in[0], in[1] = byte(seed>>8), byte(seed)
	n := 2
	n += copy(in[n:], sa[:alen])
	n += copy(in[n:], da[:alen])
	in[n], in[n+1] = proto, 0
	n += 2
	if hasPorts {
		in[n], in[n+1], in[n+2], in[n+3] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)
		n += 4
	}
	return n
}

// endpointLess reports whether (a, ap) orders before (b, bp), the way the spec
// orders endpoints (the reference's is_lt): by address bytes, then by port.
func endpointLess(a, b []byte, ap, bp uint16, ports bool) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return ports && ap < bp
}

// icmpPorts maps an ICMP (v6: ICMPv6) type and code to the port pair of the
// Community ID, as Zeek's ICMP analyzer does (ICMP4_counterpart/ICMP6_counterpart):
// a type with a counterpart gets (type, counterpart), any other (type, code) and
// oneWay.
func icmpPorts(v6 bool, typ, code uint8) (sport, dport uint16, oneWay bool) {
	var peer uint8
	var ok bool
	if v6 {
		peer, ok = icmp6Counterpart(typ)
	} else {
		peer, ok = icmp4Counterpart(typ)
	}
	if !ok {
		return uint16(typ), uint16(code), true
	}
	return uint16(typ), uint16(peer), false
}

func icmp4Counterpart(t uint8) (uint8, bool) {
	switch t {
	case 8: // echo request
		return 0, true
	case 0: // echo reply
		return 8, true
	case 13: // timestamp
		return 14, true
	case 14: // timestamp reply
		return 13, true
	case 15: // information request
		return 16, true
	case 16: // information reply
		return 15, true
	case 10: // router solicitation
		return 9, true
	case 9: // router advertisement
		return 10, true
	case 17: // address mask request
		return 18, true
	case 18: // address mask reply
		return 17, true
	}
	return 0, false
}

func icmp6Counterpart(t uint8) (uint8, bool) {
	switch t {
	case 128: // echo request
		return 129, true
	case 129: // echo reply
		return 128, true
	case 130: // multicast listener query
		return 131, true
	case 131: // multicast listener report
		return 130, true
	case 133: // router solicitation
		return 134, true
	case 134: // router advertisement
		return 133, true
	case 135: // neighbor solicitation
		return 136, true
	case 136: // neighbor advertisement
		return 135, true
	case 139: // node information query ("who are you" request)
		return 140, true
	case 140: // node information reply
		return 139, true
	case 144: // home agent address discovery request
		return 145, true
	case 145: // home agent address discovery reply
		return 144, true
	}
	return 0, false
}
