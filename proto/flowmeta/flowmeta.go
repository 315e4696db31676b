// Package flowmeta holds the small pieces of flow presentation that the sensor
// (--output jsonl) and the collector (REST) must spell identically: the flow id,
// protocol names and TCP flag letters.
package flowmeta

import (
	"net/netip"
	"strconv"
	"strings"
)

// ID is a short, stable identifier of one flow record (the REST API's flowKey): a hash of
// the sensor id, the oriented 5-tuple and the time of the flow's first packet.
func ID(sensorID string, protocol uint8, src netip.Addr, srcPort uint16, dst netip.Addr, dstPort uint16, firstSeen int64) string {
	var b [16]byte
	return string(AppendID(b[:0], sensorID, protocol, src, srcPort, dst, dstPort, firstSeen))
}

// AppendID appends ID(...) to b: lower-case hex of the 64-bit FNV-1a hash, computed
// here without the hash.Hash allocation (encoders call it once per flow).
func AppendID(b []byte, sensorID string, protocol uint8, src netip.Addr, srcPort uint16, dst netip.Addr, dstPort uint16, firstSeen int64) []byte {
	h := uint64(fnvOffset)
	for i := 0; i < len(sensorID); i++ {
		h = (h ^ uint64(sensorID[i])) * fnvPrime
	}
	h *= fnvPrime // a 0 byte after the sensor id
	h = (h ^ uint64(protocol)) * fnvPrime
	h = hashAddrPort(h, src, srcPort)
	h = hashAddrPort(h, dst, dstPort)
	for i := 56; i >= 0; i -= 8 {
		h = (h ^ uint64(byte(uint64(firstSeen)>>i))) * fnvPrime
	}
	return strconv.AppendUint(b, h, 16)
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// hashAddrPort hashes the address as 16 bytes (IPv4 in IPv4-mapped form) and the
// port big-endian.
func hashAddrPort(h uint64, a netip.Addr, port uint16) uint64 {
	b := a.As16()
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	h = (h ^ uint64(port>>8)) * fnvPrime
	return (h ^ uint64(port&0xff)) * fnvPrime
}

var protocolNames = map[string]uint8{
	"icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47,
	"esp": 50, "ah": 51, "icmpv6": 58, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132,
}

var protocolByNumber = func() (names [256]string) {
	for i := range names {
		names[i] = strconv.Itoa(i)
	}
	for name, n := range protocolNames {
		names[n] = name
	}
	return names
}()

// ProtocolName is the lower-case name of an IP protocol number ("tcp"), or the
// number itself ("253") when it has no common name.
func ProtocolName(p uint8) string { return protocolByNumber[p] }

// ProtocolNumber looks up a protocol name (case-insensitive).
func ProtocolNumber(name string) (uint8, bool) {
	n, ok := protocolNames[strings.ToLower(name)]
	return n, ok
}

// TCPFlags spells TCP flags as letters, CWR first: C E U A P R S F.
func TCPFlags(flags uint8) string {
	var b [8]byte
	return string(AppendTCPFlags(b[:0], flags))
}

// tcpFlagLetters names the TCP flag bits: bit 0 = FIN ... bit 7 = CWR.
const tcpFlagLetters = "FSRPAUEC"

// AppendTCPFlags appends TCPFlags(flags) to b.
func AppendTCPFlags(b []byte, flags uint8) []byte {
	for i := 7; i >= 0; i-- {
		if flags&(1<<i) != 0 {
			b = append(b, tcpFlagLetters[i])
		}
	}
	return b
}

// ParseTCPFlags is the inverse of TCPFlags: ok only for a spelling TCPFlags gives.
func ParseTCPFlags(s string) (flags uint8, ok bool) {
	for i := 0; i < len(s); i++ {
		bit := strings.IndexByte(tcpFlagLetters, s[i])
		if bit < 0 {
			return 0, false
		}
		flags |= 1 << bit
	}
	var b [8]byte
	return flags, string(AppendTCPFlags(b[:0], flags)) == s
}
