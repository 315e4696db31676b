// Package flowmeta holds the small pieces of flow presentation that the sensor
// (--output jsonl) and the collector (REST) must spell identically: the flow id,
// protocol names and TCP flag letters.
package flowmeta

import (
	"encoding/binary"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
)

// ID is a short, stable identifier of one flow record (the REST API's flowKey): a hash of
// the sensor id, the oriented 5-tuple and the time of the flow's first packet.
func ID(sensorID string, protocol uint8, src netip.Addr, srcPort uint16, dst netip.Addr, dstPort uint16, firstSeen int64) string {
	h := fnv.New64a()
	var b [16]byte
	h.Write([]byte(sensorID))
	h.Write([]byte{0, protocol})
	a := src.As16()
	h.Write(a[:])
	binary.BigEndian.PutUint16(b[:2], srcPort)
	h.Write(b[:2])
	a = dst.As16()
	h.Write(a[:])
	binary.BigEndian.PutUint16(b[:2], dstPort)
	h.Write(b[:2])
	binary.BigEndian.PutUint64(b[:8], uint64(firstSeen))
	h.Write(b[:8])
	return strconv.FormatUint(h.Sum64(), 16)
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
	const letters = "FSRPAUEC" // bit 0 = FIN ... bit 7 = CWR
	var b [8]byte
	n := 0
	for i := 7; i >= 0; i-- {
		if flags&(1<<i) != 0 {
			b[n] = letters[i]
			n++
		}
	}
	return string(b[:n])
}
