package flowmeta

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
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
