package inspect

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/proto/flowmeta"
	"netwatch.dev/sensor/internal/decode"
)

func inspect1(t testing.TB, in *Inspector, f []byte, ts int64) (flowmeta.App, string) {
	t.Helper()
	var d decode.Decoder
	var p decode.Packet
	require.True(t, d.Decode(decode.LinkEthernet, f, &p).IsIP())
	app, name := in.Inspect(&p, f, ts)
	return app, string(name)
}

// realHello is the first ClientHello of the TLS capture (IPv6, 517 bytes,
// server name www.youtube.com per tcpdump -A).
func realHello(t testing.TB) []byte {
	f := readPcap(t, "pcapplusplus-tls2.pcap")[1]
	require.Equal(t, decode.LinkEthernet, f.link)
	return f.data
}

// split cuts the TCP payload of Ethernet frame f after k bytes into two
// frames, with the IP lengths fixed.
func split(t testing.TB, f []byte, k int) (a, b []byte) {
	var d decode.Decoder
	var p decode.Packet
	require.True(t, d.Decode(decode.LinkEthernet, f, &p).IsIP())
	hdr, pl := f[:p.PayloadOff], p.Payload(f)
	piece := func(x []byte) []byte {
		g := append(slices.Clone(hdr), x...)
		if p.IsIPv6 {
			binary.BigEndian.PutUint16(g[18:], uint16(len(g)-14-40))
		} else {
			binary.BigEndian.PutUint16(g[16:], uint16(len(g)-14))
		}
		return g
	}
	return piece(pl[:k]), piece(pl[k:])
}

func TestSNIFromRealClientHello(t *testing.T) {
	var in Inspector
	app, name := inspect1(t, &in, realHello(t), 1)
	assert.Equal(t, flowmeta.AppTLS, app)
	assert.Equal(t, "www.youtube.com", name)

	// The whole capture: hundreds of ClientHellos, all with a valid name,
	// none malformed.
	in = Inspector{}
	fs := inspectAll(&in, readPcap(t, "pcapplusplus-tls2.pcap"))
	assert.NotEmpty(t, fs)
	assert.Equal(t, uint64(323), counter(&in, "tls_client_hello"))
	assert.Equal(t, uint64(323), counter(&in, "tls_sni"))
	assert.Zero(t, counter(&in, "tls_malformed"))
}

func TestSplitClientHello(t *testing.T) {
	f := realHello(t)
	other := ethFrame(6, 40000, 443, []byte("bulk data, not TLS"))
	var d decode.Decoder
	var p decode.Packet
	require.True(t, d.Decode(decode.LinkEthernet, f, &p).IsIP())
	sniEnd := strings.Index(string(p.Payload(f)), "www.youtube.com") + len("www.youtube.com")
	require.Greater(t, sniEnd, 60)
	for _, k := range []int{1, 3, 5, 9, 60, sniEnd - 1, sniEnd, 400, 500} {
		t.Run(fmt.Sprint("k=", k), func(t *testing.T) {
			var in Inspector
			a, b := split(t, f, k)
			app, name := inspect1(t, &in, a, 1)
			if k >= sniEnd {
				// The name is in the first part: no need to wait.
				assert.Equal(t, [2]any{flowmeta.AppTLS, "www.youtube.com"}, [2]any{app, name})
				assert.Zero(t, in.pend.n)
				return
			}
			assert.Equal(t, flowmeta.AppNone, app, "the first part waits for the rest")
			// Another flow's segment in between changes nothing.
			app, _ = inspect1(t, &in, other, 2)
			assert.Equal(t, flowmeta.AppNone, app)
			// A retransmission of the first part neither.
			app, _ = inspect1(t, &in, a, 3)
			assert.Equal(t, flowmeta.AppNone, app)
			app, name = inspect1(t, &in, b, 4)
			assert.Equal(t, flowmeta.AppTLS, app)
			assert.Equal(t, "www.youtube.com", name)
			assert.Equal(t, uint64(1), counter(&in, "tls_split_client_hello"))
			assert.Equal(t, uint64(1), counter(&in, "tls_joined_client_hello"))
			assert.Zero(t, in.pend.n, "the pool is empty again")
		})
	}
	// Three segments.
	var in Inspector
	a, rest := split(t, f, 20)
	b, c := split(t, rest, 30)
	for i, g := range [][]byte{a, b} {
		app, _ := inspect1(t, &in, g, int64(i))
		assert.Equal(t, flowmeta.AppNone, app)
	}
	app, name := inspect1(t, &in, c, 3)
	assert.Equal(t, [2]any{flowmeta.AppTLS, "www.youtube.com"}, [2]any{app, name})
}

func TestPendingPoolBounded(t *testing.T) {
	hello := clientHello("bounded.example", 600)
	var in Inspector
	// 300 flows each send the first 50 bytes: the pool holds at most 256.
	for i := range 300 {
		app, _ := inspect1(t, &in, ethFrame(6, uint16(10000+i), 443, hello[:50]), int64(i))
		require.Equal(t, flowmeta.AppNone, app)
	}
	assert.LessOrEqual(t, in.pend.n, pendSets*pendWays)
	assert.Positive(t, counter(&in, "tls_pending_dropped"))
	assert.Equal(t, uint64(300), counter(&in, "tls_split_client_hello"))
	// The last flow's start is still there and completes.
	app, name := inspect1(t, &in, ethFrame(6, 10299, 443, hello[50:]), 400)
	assert.Equal(t, [2]any{flowmeta.AppTLS, "bounded.example"}, [2]any{app, name})
	// After the timeout, a sweep empties the pool.
	inspect1(t, &in, ethFrame(6, 1, 2, []byte("x")), 400+pendTimeout+pendSweep)
	assert.Zero(t, in.pend.n)
	assert.Positive(t, counter(&in, "tls_pending_expired"))

	// A start never completed within pendMaxSegments segments is given up.
	in = Inspector{}
	hello = clientHello("late.example", 3000)
	inspect1(t, &in, ethFrame(6, 5, 443, hello[:100]), 1)
	for i := range pendMaxSegments {
		app, _ := inspect1(t, &in, ethFrame(6, 5, 443, hello[100+i*10:110+i*10]), int64(2+i))
		if i < pendMaxSegments-1 {
			assert.Equal(t, flowmeta.AppNone, app)
		} else {
			assert.Equal(t, flowmeta.AppTLS, app, "given up: TLS without a name")
		}
	}
	assert.Zero(t, in.pend.n)
	assert.Equal(t, uint64(1), counter(&in, "tls_pending_expired"))
}

func TestClientHelloLimit(t *testing.T) {
	// A server name beyond MaxHello bytes is not searched for.
	var in Inspector
	hello := clientHello("far.example", MaxHello)
	a, _ := inspect1(t, &in, ethFrame(6, 5, 443, hello), 1)
	assert.Equal(t, flowmeta.AppTLS, a)
	assert.Zero(t, counter(&in, "tls_sni"))
	assert.Zero(t, in.pend.n)
	// Within it, a big ClientHello in one jumbo segment is fine.
	hello = clientHello("near.example", 3000)
	a, name := inspect1(t, &in, ethFrame(6, 5, 443, hello), 1)
	assert.Equal(t, [2]any{flowmeta.AppTLS, "near.example"}, [2]any{a, name})
}

func TestTLSNamesAndMalformed(t *testing.T) {
	var in Inspector
	app, name := inspect1(t, &in, ethFrame(6, 5, 443, clientHello("Mixed.CASE-host_1.Example", 0)), 1)
	assert.Equal(t, [2]any{flowmeta.AppTLS, "mixed.case-host_1.example"}, [2]any{app, name})
	for _, bad := range []string{"bad name", "x/y", strings.Repeat("a", 254), "caf\xc3\xa9"} {
		app, name = inspect1(t, &in, ethFrame(6, 5, 443, clientHello(bad, 0)), 1)
		assert.Equal(t, [2]any{flowmeta.AppTLS, ""}, [2]any{app, name}, bad)
	}
	assert.Equal(t, uint64(4), counter(&in, "tls_bad_sni"))
	app, name = inspect1(t, &in, ethFrame(6, 5, 443, clientHello("", 10)), 1)
	assert.Equal(t, [2]any{flowmeta.AppTLS, ""}, [2]any{app, name}, "no server_name extension")

	h := clientHello("ok.example", 0)
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"record too short for a handshake", []byte{22, 3, 1, 0, 2, 1, 0}},
		{"session id over 32", func() []byte { b := slices.Clone(h); b[5+4+34] = 33; return b }()},
		{"extensions length wrong", func() []byte { b := slices.Clone(h); b[len(b)-len("ok.example")-11]++; return b }()},
		{"sni list length wrong", func() []byte { b := slices.Clone(h); b[len(b)-len("ok.example")-5]++; return b }()},
	} {
		before := counter(&in, "tls_malformed")
		app, _ := inspect1(t, &in, ethFrame(6, 5, 443, tc.b), 1)
		assert.Equal(t, flowmeta.AppNone, app, tc.name)
		assert.Equal(t, before+1, counter(&in, "tls_malformed"), tc.name)
	}
}

func TestHTTPHost(t *testing.T) {
	var in Inspector
	fs := inspectAll(&in, readPcap(t, "pcapplusplus-one_http_stream_fin.pcap"))
	assert.Equal(t, []finding{{3, flowmeta.AppHTTP, "backup.avg.cz"}}, fs)

	for _, tc := range []struct {
		req  string
		app  flowmeta.App
		name string
	}{
		{"GET / HTTP/1.1\r\nUser-Agent: x\r\nHOST:  WWW.Example.COM:8080 \r\n\r\n", flowmeta.AppHTTP, "www.example.com"},
		{"POST /x HTTP/1.0\nhost: a.b\n\n", flowmeta.AppHTTP, "a.b"},
		{"OPTIONS * HTTP/1.1\r\n\r\nHost: after.end\r\n", flowmeta.AppHTTP, ""},
		{"GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", flowmeta.AppHTTP, ""},
		{"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n", flowmeta.AppHTTP, ""},
		{"GET / HTTP/1.1\r\nAccept: */*\r\n", flowmeta.AppHTTP, ""}, // headers go on in the next segment
		{"GET / HTTP/2.0\r\nHost: a\r\n\r\n", flowmeta.AppNone, ""},
		{"GETX / HTTP/1.1\r\nHost: a\r\n\r\n", flowmeta.AppNone, ""},
		{"GET /no-newline-yet HTTP/1.1", flowmeta.AppNone, ""},
		{"Hello", flowmeta.AppNone, ""},
		{"SSH-2.0-OpenSSH_9.6\r\n", flowmeta.AppSSH, ""},
	} {
		app, name := inspect1(t, &in, ethFrame(6, 40000, 80, []byte(tc.req)), 1)
		assert.Equal(t, [2]any{tc.app, tc.name}, [2]any{app, name}, "%q", tc.req)
	}
	assert.Equal(t, uint64(2), counter(&in, "http_bad_host"))
}

func TestQUIC(t *testing.T) {
	initial := func(b0 byte, v uint32) []byte {
		b := []byte{b0}
		b = binary.BigEndian.AppendUint32(b, v)
		b = append(b, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0)
		return append(b, make([]byte, 40)...)
	}
	var in Inspector
	for _, tc := range []struct {
		b   []byte
		app flowmeta.App
	}{
		{initial(0xc3, 1), flowmeta.AppQUIC},
		{initial(0xd3, 0x6b3343cf), flowmeta.AppQUIC}, // v2 Initial is type 1
		{initial(0xc0, 0xff00001d), flowmeta.AppQUIC}, // draft-29
		{initial(0xe3, 1), flowmeta.AppNone},          // v1 Handshake
		{initial(0xc3, 0x0a0a0a0a), flowmeta.AppNone}, // unknown version
		{initial(0x43, 1), flowmeta.AppNone},          // short header
	} {
		app, _ := inspect1(t, &in, ethFrame(17, 50000, 443, tc.b), 1)
		assert.Equal(t, tc.app, app, "%x", tc.b[:5])
	}
}

type answer struct {
	Name, Canonical, Addr string
	TTL                   uint32
}

func drain(in *Inspector) []answer {
	var out []answer
	in.DrainDNS(func(a *DNSAnswer) { out = append(out, answer{a.Name, a.Canonical, a.Addr.String(), a.TTL}) })
	return out
}

func TestDNSCNAMEChainAndCompression(t *testing.T) {
	m := newDNSResponse(7, 6)
	q := m.question("WWW.Example.com", 1)
	qp := fmt.Sprint("@", q)
	m.cname(qp, 60, "a.example.net")                        // owner: pointer to the question
	m.cname("a.example.net", 60, "b.cdn.@"+fmt.Sprint(q+4)) // target b.cdn.example.com, partly compressed
	m.a("b.cdn.example.com", 30, "192.0.2.7")
	m.a("B.CDN.example.com", 31, "2001:db8::7")
	m.a("other.example", 40, "192.0.2.99") // not on the chain
	m.a(qp, 50, "192.0.2.100")             // the question's own name, but it has a CNAME
	var in Inspector
	app, _ := inspect1(t, &in, ethFrame(17, 53, 33333, m.b), 1)
	assert.Equal(t, flowmeta.AppDNS, app)
	want := []answer{
		{"www.example.com", "b.cdn.example.com", "192.0.2.7", 30},
		{"www.example.com", "b.cdn.example.com", "2001:db8::7", 31},
	}
	assert.Equal(t, want, drain(&in))

	// Over TCP, with the 2-byte length; not whole in the segment: counted.
	tcpMsg := binary.BigEndian.AppendUint16(nil, uint16(len(m.b)))
	tcpMsg = append(tcpMsg, m.b...)
	app, _ = inspect1(t, &in, ethFrame(6, 53, 33333, tcpMsg), 2)
	assert.Equal(t, flowmeta.AppDNS, app)
	assert.Equal(t, want, drain(&in))
	app, _ = inspect1(t, &in, ethFrame(6, 53, 33333, tcpMsg[:40]), 2)
	assert.Equal(t, flowmeta.AppDNS, app)
	assert.Equal(t, uint64(1), counter(&in, "dns_tcp_partial"))
	assert.Empty(t, drain(&in))

	// No CNAME: the question's A records, Canonical empty; a query
	// (same port) is DNS but has no answers.
	m = newDNSResponse(8, 2)
	q = m.question("host.example", 28)
	m.a(fmt.Sprint("@", q), 5, "2001:db8::5")
	m.a(fmt.Sprint("@", q), 5, "2001:db8::5") // the same pair again: once
	inspect1(t, &in, ethFrame(17, 53, 1, m.b), 3)
	query := slices.Clone(m.b)
	query[2] &^= 0x80
	inspect1(t, &in, ethFrame(17, 3333, 53, query), 3)
	assert.Equal(t, []answer{{"host.example", "", "2001:db8::5", 5}}, drain(&in))
}

func TestDNSRealCapture(t *testing.T) {
	var in Inspector
	inspectAll(&in, readPcap(t, "pcapplusplus-DnsPackets.pcap"))
	got := map[string][]string{}
	canon := map[string]string{}
	for _, a := range drain(&in) {
		got[a.Name] = append(got[a.Name], a.Addr)
		canon[a.Name] = a.Canonical
	}
	// tcpdump: 2 responses for www.google-analytics.com, both CNAME
	// www-google-analytics.l.google.com and the same 16 addresses.
	assert.Len(t, got["www.google-analytics.com"], 32)
	assert.Contains(t, got["www.google-analytics.com"], "212.199.205.226")
	for n, addrs := range got {
		assert.Len(t, addrs, len(slices.Compact(slices.Sorted(slices.Values(addrs)))), "%s: each address once", n)
	}
	assert.Equal(t, "www-google-analytics.l.google.com", canon["www.google-analytics.com"])
	assert.Equal(t, []string{"81.169.145.151"}, got["www.meetingcpp.com"])
	assert.Equal(t, "meetingcpp.com", canon["www.meetingcpp.com"])
	assert.Equal(t, "", canon["www.google.com"])
	assert.Zero(t, counter(&in, "dns_malformed"))
	assert.Empty(t, drain(&in), "drained")
}

func TestDNSMalformed(t *testing.T) {
	var in Inspector
	loop := newDNSResponse(1, 1)
	loop.b = append(loop.b, 0xc0, 12, 0, 1, 0, 1) // question name points at itself
	fwd := newDNSResponse(1, 1)
	q := fwd.question("a.example", 1)
	fwd.b = append(fwd.b, 0xc0, byte(len(fwd.b)+2), 0xc0, byte(len(fwd.b))) // two pointers at each other
	_ = q
	long := newDNSResponse(1, 0)
	long.question(strings.Repeat("abcdefghij.", 26)+"x", 1)
	for _, tc := range []struct {
		name    string
		b       []byte
		counter string
	}{
		{"pointer loop in the question", loop.b, "dns_malformed"},
		{"pointer loop in an answer", fwd.b, "dns_malformed"},
		{"answer cut", newDNSResponseCut(), "dns_malformed"},
		{"name too long", long.b, "dns_malformed"},
		{"bad name", badName(), "dns_bad_name"},
	} {
		before := counter(&in, tc.counter)
		app, _ := inspect1(t, &in, ethFrame(17, 53, 1, tc.b), 1)
		assert.Equal(t, flowmeta.AppDNS, app, tc.name)
		assert.Equal(t, before+1, counter(&in, tc.counter), tc.name)
	}
	assert.Empty(t, drain(&in))
}

func newDNSResponseCut() []byte {
	m := newDNSResponse(1, 1)
	m.question("a.example", 1)
	m.a("a.example", 1, "192.0.2.1")
	return m.b[:len(m.b)-2]
}

func badName() []byte {
	m := newDNSResponse(1, 1)
	m.question("a b.example", 1)
	return m.b
}

func TestDNSAnswerCap(t *testing.T) {
	var in Inspector
	n := 0
	for r := range 140 {
		m := newDNSResponse(uint16(r), 64)
		q := m.question(fmt.Sprintf("n%d.example", r), 1)
		for i := range 64 {
			m.a(fmt.Sprint("@", q), 1, netip.AddrFrom4([4]byte{10, byte(r), byte(i), 1}).String())
			n++
		}
		inspect1(t, &in, ethFrame(17, 53, 1, m.b), 1)
	}
	require.Greater(t, n, MaxDNSAnswers)
	assert.Len(t, drain(&in), MaxDNSAnswers)
	assert.Equal(t, uint64(n-MaxDNSAnswers), counter(&in, "dns_answers_dropped"))
}

func TestCounterNames(t *testing.T) {
	var in Inspector
	cs := in.Counters(nil)
	require.Len(t, cs, numCounters)
	re := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)
	seen := map[string]bool{}
	for _, c := range cs {
		assert.Regexp(t, re, c.Name)
		assert.False(t, seen[c.Name], c.Name)
		seen[c.Name] = true
	}
}

func TestZeroAllocsPerPacket(t *testing.T) {
	var frames []frame
	for _, name := range []string{"pcapplusplus-tls2.pcap", "pcapplusplus-example2.pcap", "pcapplusplus-DnsPackets.pcap", "ndpi-alexa-app.pcapng"} {
		frames = append(frames, readPcap(t, name)...)
	}
	a, b := split(t, realHello(t), 100)
	frames = append(frames, frame{decode.LinkEthernet, a, 1}, frame{decode.LinkEthernet, b, 2})
	var in Inspector
	inspectAll(&in, frames) // first use allocates the pool and the arena
	in.DrainDNS(func(*DNSAnswer) {})
	var d decode.Decoder
	var p decode.Packet
	found := 0
	allocs := testing.AllocsPerRun(5, func() {
		for _, f := range frames {
			if d.Decode(f.link, f.data, &p).IsIP() {
				if app, _ := in.Inspect(&p, f.data, f.ts); app != flowmeta.AppNone {
					found++
				}
			}
		}
		in.dns.ents = in.dns.ents[:0] // what DrainDNS does, minus the strings
		in.dns.arena = in.dns.arena[:0]
		clear(in.dns.index)
	})
	assert.Zero(t, allocs)
	assert.Greater(t, found, 1000)
}
