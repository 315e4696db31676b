// Package inspect reads the first payload bytes of flows: the TLS ClientHello
// server name, the HTTP/1.x Host, an application label, and the name/address
// pairs of DNS responses. It works on bounded prefixes of single packets (a
// ClientHello split over segments is the one thing it joins, within a bounded
// buffer) and never allocates per packet.
package inspect

import "net/netip"

// DNSAnswer is one address a captured DNS response gave for a name.
type DNSAnswer struct {
	// Name is the question's name, lower-case, without the final dot.
	Name string
	// Canonical is the end of the CNAME chain when there was one, else "".
	Canonical string
	Addr      netip.Addr
	TTL       uint32
	Seen      int64 // capture time, unix nanos
}

// Counter is one named inspection counter (tls_malformed, dns_malformed...).
type Counter struct {
	Name  string
	Value uint64
}

// Inspector is one capture worker's payload inspector; it is not safe for
// concurrent use.
type Inspector struct{}

// DrainDNS calls fn with each DNS answer collected since the previous call, at
// most once per (name, address) pair, and forgets them.
func (in *Inspector) DrainDNS(fn func(*DNSAnswer)) {}

// Counters appends the inspector's counters (cumulative) to dst.
func (in *Inspector) Counters(dst []Counter) []Counter { return dst }
