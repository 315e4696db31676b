// Package enrich says who an address is: the latest name captured DNS responses
// gave for it, and its autonomous system and country from the GeoIP databases
// the collector was given.
package enrich

import "net/netip"

// Host is what is known about one address; zero fields are unknown.
type Host struct {
	// Name is the latest name a DNS response gave for the address.
	Name    string
	ASN     uint32
	ASName  string
	Country string // ISO 3166-1 alpha-2, upper case
}

// Enricher answers for addresses. Its methods are safe for concurrent use and
// cheap enough to call once per row of a page of flows.
type Enricher interface {
	// Lookup returns what is known about a.
	Lookup(a netip.Addr) Host
	// Names returns the names DNS responses gave for a, latest first (for a host view).
	Names(a netip.Addr) []string
	// NameMatcher returns a predicate true for the addresses with a name equal to
	// suffix or ending in "."+suffix (the host: filter).
	NameMatcher(suffix string) func(netip.Addr) bool
}
