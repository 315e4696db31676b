package flowmeta

import (
	"encoding/binary"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTCPFlags(t *testing.T) {
	assert.Equal(t, "", TCPFlags(0))
	assert.Equal(t, "S", TCPFlags(0x02))
	assert.Equal(t, "AS", TCPFlags(0x12))
	assert.Equal(t, "APF", TCPFlags(0x19))
	assert.Equal(t, "CEUAPRSF", TCPFlags(0xff))
}

func TestProtocolNames(t *testing.T) {
	assert.Equal(t, "tcp", ProtocolName(6))
	assert.Equal(t, "icmpv6", ProtocolName(58))
	assert.Equal(t, "253", ProtocolName(253))
	n, ok := ProtocolNumber("SCTP")
	assert.True(t, ok)
	assert.Equal(t, uint8(132), n)
	_, ok = ProtocolNumber("bogus")
	assert.False(t, ok)
}

func TestIDDependsOnEveryPart(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	base := ID("s", 6, a, 1, b, 2, 100)
	assert.Equal(t, base, ID("s", 6, a, 1, b, 2, 100), "stable")
	for _, other := range []string{
		ID("t", 6, a, 1, b, 2, 100), ID("s", 17, a, 1, b, 2, 100), ID("s", 6, b, 1, a, 2, 100),
		ID("s", 6, a, 3, b, 2, 100), ID("s", 6, a, 1, b, 4, 100), ID("s", 6, a, 1, b, 2, 101),
	} {
		assert.NotEqual(t, base, other)
	}
}

// fnvID is the flow id spelled with hash/fnv, as the ids stored and shown so far
// were computed: AppendID must give the same bytes.
func fnvID(sensorID string, protocol uint8, src netip.Addr, srcPort uint16, dst netip.Addr, dstPort uint16, firstSeen int64) string {
	h := fnv.New64a()
	var b [8]byte
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
	binary.BigEndian.PutUint64(b[:], uint64(firstSeen))
	h.Write(b[:])
	return strconv.FormatUint(h.Sum64(), 16)
}

func TestIDIsFNV1a(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		var a, b [16]byte
		for j := range a {
			a[j], b[j] = byte(r.IntN(256)), byte(r.IntN(256))
		}
		src, dst := netip.AddrFrom16(a), netip.AddrFrom16(b)
		if i%2 == 0 {
			src, dst = src.Unmap(), netip.AddrFrom4([4]byte(b[:4]))
		}
		id := []string{"", "s1", "ünï\x00\"", strings.Repeat("x", r.IntN(100))}[i%4]
		p, sp, dp, first := uint8(r.IntN(256)), uint16(r.IntN(65536)), uint16(r.IntN(65536)), int64(r.Uint64())
		want := fnvID(id, p, src, sp, dst, dp, first)
		require.Equal(t, want, ID(id, p, src, sp, dst, dp, first))
		require.Equal(t, "x"+want, string(AppendID([]byte("x"), id, p, src, sp, dst, dp, first)))
	}
	assert.Equal(t, "3efa5d5bf310af5c", ID("s", 6, netip.MustParseAddr("10.0.0.1"), 1, netip.MustParseAddr("10.0.0.2"), 2, 100),
		"the spelling of ids already stored and shown")
}

func TestParseTCPFlags(t *testing.T) {
	for f := range 256 {
		got, ok := ParseTCPFlags(TCPFlags(uint8(f)))
		require.True(t, ok, TCPFlags(uint8(f)))
		require.Equal(t, uint8(f), got)
	}
	for _, s := range []string{"SA", "X", "SS", "s", "AS "} {
		_, ok := ParseTCPFlags(s)
		assert.False(t, ok, "%q is not how TCPFlags spells flags", s)
	}
}
