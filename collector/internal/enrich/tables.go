package enrich

import (
	"net/netip"

	"netwatch.dev/collector/internal/geoip"
	"netwatch.dev/collector/internal/names"
)

// Tables is the Enricher of the collector: the DNS name table and the GeoIP
// databases, each optional (nil: that part is unknown). A nil *Tables knows
// nothing.
type Tables struct {
	DNS     *names.Table
	ASN     *geoip.DB
	Country *geoip.DB
}

var _ Enricher = (*Tables)(nil)

// Lookup returns what the tables know of a.
func (t *Tables) Lookup(a netip.Addr) Host {
	if t == nil || !a.IsValid() {
		return Host{}
	}
	h := Host{Name: t.DNS.Latest(a), Country: t.Country.Country(a)}
	h.ASN, h.ASName = t.ASN.ASN(a)
	return h
}

// Names returns the names DNS responses gave for a, latest first.
func (t *Tables) Names(a netip.Addr) []string {
	if t == nil {
		return nil
	}
	return t.DNS.Names(a)
}

// NameMatcher returns the host: predicate of suffix (see names.Table.NameMatcher).
func (t *Tables) NameMatcher(suffix string) func(netip.Addr) bool {
	if t == nil {
		return func(netip.Addr) bool { return false }
	}
	return t.DNS.NameMatcher(suffix)
}
