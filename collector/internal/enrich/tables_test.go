package enrich

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/collector/internal/geoip"
	"netwatch.dev/collector/internal/geoip/geoiptest"
	"netwatch.dev/collector/internal/names"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

func TestTablesCombineNamesAndGeoIP(t *testing.T) {
	dir := t.TempDir()
	asn, err := geoip.Open(geoip.ASN, geoiptest.WriteFile(t, dir, "asn.mmdb", geoiptest.ASNBytes(t, map[string]geoiptest.AS{
		"192.0.2.0/24": {Number: 13335, Org: "Cloudflare, Inc."},
	})), nil)
	require.NoError(t, err)
	country, err := geoip.Open(geoip.Country, geoiptest.WriteFile(t, dir, "country.mmdb", geoiptest.CountryBytes(t, "", map[string]geoiptest.Place{
		"192.0.2.0/24": {Country: "US"}, "198.51.100.0/24": {Registered: "DE"},
	})), nil)
	require.NoError(t, err)
	tb := names.New(names.DefaultConfig(), time.Now)
	tb.Observe("s1", []*netwatchv1.DnsObservation{{Name: "www.example.com", Canonical: "edge.example.net", Addr: []byte{192, 0, 2, 1}}})

	e := &Tables{DNS: tb, ASN: asn, Country: country}
	a := netip.MustParseAddr("192.0.2.1")
	assert.Equal(t, Host{Name: "www.example.com", ASN: 13335, ASName: "Cloudflare, Inc.", Country: "US"}, e.Lookup(a))
	assert.Equal(t, Host{Country: "DE"}, e.Lookup(netip.MustParseAddr("198.51.100.9")))
	assert.Equal(t, Host{}, e.Lookup(netip.MustParseAddr("2001:db8::1")))
	assert.Equal(t, []string{"www.example.com", "edge.example.net"}, e.Names(a))
	assert.True(t, e.NameMatcher("example.net")(a))
	assert.False(t, e.NameMatcher("example.org")(a))

	// Parts missing, or none at all: unknown, never a panic.
	for _, part := range []*Tables{{DNS: tb}, {ASN: asn}, {Country: country}, {}, nil} {
		var en Enricher = part
		h := en.Lookup(a)
		if part != nil && part.DNS != nil {
			assert.Equal(t, "www.example.com", h.Name)
		} else {
			assert.Empty(t, h.Name)
			assert.Empty(t, en.Names(a))
			assert.False(t, en.NameMatcher("example.com")(a))
		}
		if part != nil && part.ASN != nil {
			assert.Equal(t, uint32(13335), h.ASN)
		} else {
			assert.Zero(t, h.ASN)
		}
		if part != nil && part.Country != nil {
			assert.Equal(t, "US", h.Country)
		} else {
			assert.Empty(t, h.Country)
		}
	}
}
