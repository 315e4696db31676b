// Package inspect reads the first payload bytes of flows: the TLS ClientHello
// server name, the HTTP/1.x Host, an application label, and the name/address
// pairs of DNS responses. It works on bounded prefixes of single packets (a
// ClientHello split over segments is the one thing it joins, within a bounded
// buffer) and never allocates per packet.
//
// The capture worker calls Inspect for every decoded packet while the frame
// is still valid (frames alias the kernel ring or the capture reader's
// buffer). A cheap prefilter on the first payload bytes and the ports decides
// what is parsed at all, so bulk data costs a few instructions.
package inspect

import (
	"encoding/binary"
	"net/netip"

	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/decode"
)

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

// Counter indexes.
const (
	cTLSClientHello    = iota // ClientHellos recognised (complete or parsed up to MaxHello)
	cTLSSNI                   // of them with a valid server name
	cTLSBadSNI                // with a server name that failed validation
	cTLSMalformed             // TLS handshake records that do not parse
	cTLSSplit                 // ClientHellos whose start was kept to wait for more segments
	cTLSJoined                // of them completed by later segments
	cTLSPendingDropped        // kept starts dropped because the pool was full
	cTLSPendingExpired        // kept starts given up (too many segments or timeout)
	cHTTPRequests             // HTTP/1.x requests recognised
	cHTTPHost                 // of them with a valid Host
	cHTTPBadHost              // with a Host that failed validation
	cSSH                      // SSH banners
	cQUIC                     // QUIC long-header Initial packets
	cDNSMessages              // DNS messages recognised (queries and responses)
	cDNSResponses             // DNS responses parsed
	cDNSAnswers               // distinct (name, address) answers collected
	cDNSAnswersDropped        // answers not kept: MaxDNSAnswers or the name arena full
	cDNSMalformed             // DNS responses that do not parse
	cDNSBadName               // names in responses that failed validation
	cDNSTCPPartial            // TCP DNS responses not whole in one segment
	numCounters
)

var counterNames = [numCounters]string{
	cTLSClientHello: "tls_client_hello", cTLSSNI: "tls_sni", cTLSBadSNI: "tls_bad_sni",
	cTLSMalformed: "tls_malformed", cTLSSplit: "tls_split_client_hello", cTLSJoined: "tls_joined_client_hello",
	cTLSPendingDropped: "tls_pending_dropped", cTLSPendingExpired: "tls_pending_expired",
	cHTTPRequests: "http_requests", cHTTPHost: "http_host", cHTTPBadHost: "http_bad_host",
	cSSH: "ssh_banners", cQUIC: "quic_initial",
	cDNSMessages: "dns_messages", cDNSResponses: "dns_responses", cDNSAnswers: "dns_answers",
	cDNSAnswersDropped: "dns_answers_dropped", cDNSMalformed: "dns_malformed",
	cDNSBadName: "dns_bad_name", cDNSTCPPartial: "dns_tcp_partial",
}

// MaxHello is how many bytes of a ClientHello are looked at, and the most
// kept per flow direction while one is split over segments. Nothing is
// reassembled beyond it.
const MaxHello = 4096

// maxName is the longest server or DNS name accepted (RFC 1035 presentation
// form without the final dot).
const maxName = 253

// Inspector is one capture worker's payload inspector; it is not safe for
// concurrent use. The zero value is ready; it allocates its buffers (the
// pending-ClientHello pool, the DNS answer arena) on first use.
type Inspector struct {
	counters [numCounters]uint64
	name     [maxName]byte // the name Inspect returns
	pend     pendPool
	dns      dnsStore
	scratch  dnsScratch
}

// Inspect looks at the payload of p, which was decoded from frame (still
// valid: call it before the frame is released), seen at ts (unix nanos). It
// returns what it recognised, AppNone when nothing, and the server name (TLS
// SNI or HTTP Host, lower-case, validated), which is only valid until the
// next call. DNS responses' answers are collected for DrainDNS.
//
// Bulk payloads are turned away by Candidate, which the caller inlines.
func (in *Inspector) Inspect(p *decode.Packet, frame []byte, ts int64) (flowmeta.App, []byte) {
	if in.pend.n == 0 && !Candidate(p, frame) {
		return flowmeta.AppNone, nil
	}
	return in.inspect(p, frame, ts)
}

// Pending reports whether split ClientHellos are waiting for their next
// segment: then every payload goes to Inspect, not only the Candidates.
func (in *Inspector) Pending() bool { return in.pend.n != 0 }

// Candidate is the prefilter, small enough to inline: the first payload byte
// may start something recognised over the packet's protocol (a table lookup),
// or the packet is to or from port 53 and its payload has a DNS header with
// one question (at offset 4 over UDP, 6 over TCP after the message length).
// Payloads shorter than 8 bytes are left to Inspect.
func Candidate(p *decode.Packet, frame []byte) bool {
	off := uint(p.PayloadOff)
	if off+8 > uint(len(frame)) {
		return p.PayloadLen != 0
	}
	// The port and question tests are arithmetic, not branches: TCP and UDP,
	// DNS and bulk come mixed, and a branch on which one would mispredict.
	udp := uint(p.Protocol & 16 >> 4)                     // 1 for UDP (17), 0 for TCP (6)
	q := binary.BigEndian.Uint16(frame[off+6-2*udp:]) ^ 1 // 0: one question
	return prefilter[frame[off]]&uint8(1+udp) != 0 || min(p.SrcPort^53, p.DstPort^53)|q == 0
}

// Prefilter bits: which first payload bytes may start something recognised
// over TCP (1) and over UDP (2).
const (
	preTCP = 1
	preUDP = 2
)

var prefilter = func() (t [256]uint8) {
	t[0x16] = preTCP               // TLS handshake record
	for _, c := range "SCDGHOPT" { // SSH-, HTTP methods
		t[c] = preTCP
	}
	for c := 0xc0; c <= 0xff; c++ { // QUIC long header, fixed bit
		t[c] |= preUDP
	}
	return t
}()

func b2u(b bool) uint8 {
	var u uint8
	if b {
		u = 1
	}
	return u
}

func (in *Inspector) inspect(p *decode.Packet, frame []byte, ts int64) (flowmeta.App, []byte) {
	b := p.Payload(frame)
	if len(b) == 0 {
		return flowmeta.AppNone, nil
	}
	if p.Protocol == 6 {
		if in.pend.n != 0 {
			if app, name, ok := in.joinHello(p, b, ts); ok {
				return app, name
			}
		}
		if p.SrcPort == 53 || p.DstPort == 53 {
			return in.dnsTCP(p, b, ts)
		}
		switch b[0] {
		case 0x16:
			if len(b) < 2 || b[1] == 3 {
				return in.tls(p, b, ts)
			}
		case 'S':
			if len(b) >= 4 && string(b[:4]) == "SSH-" {
				in.counters[cSSH]++
				return flowmeta.AppSSH, nil
			}
		case 'C', 'D', 'G', 'H', 'O', 'P', 'T':
			return in.http(b)
		}
		return flowmeta.AppNone, nil
	}
	// UDP (the decoder locates no payload for other protocols).
	if p.SrcPort == 53 || p.DstPort == 53 {
		return in.dnsUDP(p, b, ts)
	}
	if b[0]&0xc0 == 0xc0 {
		return in.quic(b)
	}
	return flowmeta.AppNone, nil
}

// quic recognises a QUIC long-header Initial packet (RFC 9000 17.2.2, RFC
// 9369 for v2, the drafts' 0xff0000xx): the fixed bit, a known version with
// its Initial type, and connection ids of at most 20 bytes.
func (in *Inspector) quic(b []byte) (flowmeta.App, []byte) {
	if len(b) < 7 {
		return flowmeta.AppNone, nil
	}
	typ := b[0] >> 4 & 3
	switch v := binary.BigEndian.Uint32(b[1:5]); {
	case v == 1 || v>>8 == 0xff0000:
		if typ != 0 {
			return flowmeta.AppNone, nil
		}
	case v == 0x6b3343cf: // v2: Initial is type 1
		if typ != 1 {
			return flowmeta.AppNone, nil
		}
	default:
		return flowmeta.AppNone, nil
	}
	dcid := int(b[5])
	if dcid > 20 || len(b) < 7+dcid || b[6+dcid] > 20 {
		return flowmeta.AppNone, nil
	}
	in.counters[cQUIC]++
	return flowmeta.AppQUIC, nil
}

// nameByte maps a name byte to lower case, or to 0 when it may not appear in
// a server name: [a-z0-9._-], upper case letters accepted.
var nameByte = func() (t [256]byte) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = byte(c), byte(c)
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c)
	}
	t['.'], t['-'], t['_'] = '.', '-', '_'
	return t
}()

// setName validates src as a server name and copies it lower-cased into the
// name Inspect returns.
func (in *Inspector) setName(src []byte) ([]byte, bool) {
	if len(src) == 0 || len(src) > maxName {
		return nil, false
	}
	dst := in.name[:len(src)]
	for i, c := range src {
		l := nameByte[c]
		if l == 0 {
			return nil, false
		}
		dst[i] = l
	}
	return dst, true
}

// Counters appends the inspector's counters (cumulative) to dst.
func (in *Inspector) Counters(dst []Counter) []Counter {
	for i, v := range in.counters {
		dst = append(dst, Counter{Name: counterNames[i], Value: v})
	}
	return dst
}
