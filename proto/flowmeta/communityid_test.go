package flowmeta

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

// tuple is one test vector's flow as the vectors give it.
type tuple struct {
	proto    uint8
	src, dst netip.Addr
	a, b     uint16 // ports, or ICMP type and code (or counterpart type)
	ports    bool
}

func (t tuple) id(seed uint16) string {
	if t.proto == protoICMP || t.proto == protoICMPv6 {
		return CommunityID(seed, t.proto, t.src, t.dst, 0, 0, uint8(t.a), uint8(t.b), true)
	}
	return CommunityID(seed, t.proto, t.src, t.dst, t.a, t.b, 0, 0, false)
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func parsePort(t *testing.T, s string) (uint16, bool) {
	t.Helper()
	if s == "-" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n), true
}

// lines returns the fields of each line of a testdata file, without comments.
func lines(t *testing.T, name string) [][]string {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, strings.Fields(l))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no vectors", name)
	}
	return out
}

func parseTuple(t *testing.T, proto, src, dst, a, b string) tuple {
	t.Helper()
	p, err := strconv.ParseUint(proto, 10, 8)
	if err != nil {
		t.Fatal(err)
	}
	tp := tuple{proto: uint8(p), src: mustAddr(t, src), dst: mustAddr(t, dst)}
	var okA, okB bool
	tp.a, okA = parsePort(t, a)
	tp.b, okB = parsePort(t, b)
	tp.ports = okA && okB
	return tp
}

// seen counts the kinds of vectors a test went through, so a test data file
// that lost its ICMPv6 lines (say) fails instead of passing on the rest.
type seen map[string]int

func (s seen) add(tp tuple, seed uint16) {
	kind := "other"
	switch tp.proto {
	case protoTCP:
		kind = "tcp"
	case protoUDP:
		kind = "udp"
	case protoSCTP:
		kind = "sctp"
	case protoICMP, protoICMPv6:
		_, _, oneWay := icmpPorts(tp.proto == protoICMPv6, uint8(tp.a), uint8(tp.b))
		kind = map[bool]string{false: "icmp", true: "icmp6"}[tp.proto == protoICMPv6] + map[bool]string{false: "-twoway", true: "-oneway"}[oneWay]
	}
	s[kind]++
	s[map[bool]string{false: "ipv6", true: "ipv4"}[tp.src.Is4()]]++
	s["seed"+strconv.Itoa(int(seed))]++
}

func (s seen) require(t *testing.T, kinds ...string) {
	t.Helper()
	for _, k := range kinds {
		if s[k] == 0 {
			t.Errorf("no %s vector tested (seen %v)", k, s)
		}
	}
}

func TestCommunityIDSpecBaselineJSON(t *testing.T) {
	s := seen{}
	for _, c := range []struct {
		file string
		seed uint16
		hex  bool
	}{{"spec-baseline_deflt.json", 0, false}, {"spec-baseline_seed1.json", 1, false}, {"spec-baseline_nob64.json", 0, true}} {
		data, err := os.ReadFile("testdata/" + c.file)
		if err != nil {
			t.Fatal(err)
		}
		var vs []struct {
			Proto        uint8
			Saddr, Daddr string
			Sport, Dport *uint16
			Communityid  string
		}
		if err := json.Unmarshal(data, &vs); err != nil {
			t.Fatal(err)
		}
		if len(vs) < 20 {
			t.Fatalf("%s: %d vectors", c.file, len(vs))
		}
		for _, v := range vs {
			tp := tuple{proto: v.Proto, src: mustAddr(t, v.Saddr), dst: mustAddr(t, v.Daddr), ports: v.Sport != nil}
			if tp.ports {
				tp.a, tp.b = *v.Sport, *v.Dport
			}
			got := tp.id(c.seed)
			if c.hex {
				got = hexOf(t, got)
			}
			if got != v.Communityid {
				t.Errorf("%s: %+v seed %d: got %s, want %s", c.file, v, c.seed, got, v.Communityid)
			}
			s.add(tp, c.seed)
		}
	}
	s.require(t, "tcp", "udp", "sctp", "icmp-twoway", "icmp-oneway", "icmp6-twoway", "icmp6-oneway", "other", "ipv4", "ipv6", "seed0", "seed1")
}

// hexOf turns "1:<base64>" into "1:<hex>", the spec's no-base64 rendering.
func hexOf(t *testing.T, id string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(id, "1:"))
	if err != nil || !strings.HasPrefix(id, "1:") {
		t.Fatalf("%q: not 1:<base64>: %v", id, err)
	}
	return "1:" + hex.EncodeToString(raw)
}

func TestCommunityIDSpecTables(t *testing.T) {
	s := seen{}
	for _, f := range lines(t, "spec-tables.txt") {
		seed, _ := strconv.Atoi(f[0])
		tp := parseTuple(t, f[1], f[2], f[3], f[4], f[5])
		if got := tp.id(uint16(seed)); got != f[6] {
			t.Errorf("%v: got %s", f, got)
		}
		s.add(tp, uint16(seed))
	}
	s.require(t, "tcp", "udp", "sctp", "icmp-twoway", "icmp-oneway", "icmp6-twoway", "icmp6-oneway", "other", "ipv4", "ipv6", "seed0", "seed1")
}

func TestCommunityIDPycommunityid(t *testing.T) {
	s := seen{}
	for _, f := range lines(t, "pycommunityid.txt") {
		tp := parseTuple(t, f[0], f[1], f[2], f[3], f[4])
		got := tp.id(0)
		if got != f[5] {
			t.Errorf("%v seed 0: got %s", f, got)
		}
		if f[6] != "-" && hexOf(t, got) != "1:"+f[6] {
			t.Errorf("%v seed 0: got %s", f, hexOf(t, got))
		}
		if f[7] != "-" {
			if got := tp.id(1); got != f[7] {
				t.Errorf("%v seed 1: got %s", f, got)
			}
			s.add(tp, 1)
		}
		s.add(tp, 0)
	}
	s.require(t, "tcp", "udp", "sctp", "icmp-twoway", "icmp-oneway", "icmp6-twoway", "icmp6-oneway", "other", "ipv4", "ipv6", "seed0", "seed1")
}

// TestCommunityIDZeekHashInput checks the exact bytes hashed against those Zeek's
// plugin logs: the ordering of endpoints and the ICMP port mapping, not only the
// digest.
func TestCommunityIDZeekHashInput(t *testing.T) {
	s := seen{}
	for _, f := range lines(t, "zeek-run-pcaps.txt") {
		// "<pcap>: seed saddr daddr proto pad sport dport (N bytes) -> id"
		want, id := f[1:8], f[len(f)-1]
		hexField := func(i int) []byte {
			b, err := hex.DecodeString(strings.ReplaceAll(want[i], ":", ""))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		src, _ := netip.AddrFromSlice(hexField(1))
		dst, _ := netip.AddrFromSlice(hexField(2))
		proto := hexField(3)[0]
		sp, dp := hexField(5), hexField(6)
		tp := tuple{proto: proto, src: src, dst: dst, a: uint16(sp[0])<<8 | uint16(sp[1]), b: uint16(dp[0])<<8 | uint16(dp[1]), ports: true}
		if got := tp.id(0); got != id {
			t.Errorf("%v: got %s", f, got)
		}
		var in [communityInputMax]byte
		n := communityInput(&in, 0, tp.proto, tp.src, tp.dst, tp.a, tp.b, uint8(tp.a), uint8(tp.b), true)
		wantIn := strings.Join(want, ":")
		if got := hexColons(in[:n]); got != wantIn {
			t.Errorf("%v: hash input %s, want %s", f, got, wantIn)
		}
		s.add(tp, 0)
	}
	s.require(t, "tcp", "udp", "icmp-twoway", "icmp6-twoway", "icmp6-oneway", "ipv4", "ipv6")
}

func hexColons(b []byte) string {
	var sb strings.Builder
	for i, c := range b {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(hex.EncodeToString([]byte{c}))
	}
	return sb.String()
}

// TestCommunityIDDirections: both directions of a two-way flow get one ID, a
// one-way ICMP message keeps its direction, and the seed changes the ID.
func TestCommunityIDDirections(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.1")
	a6, b6 := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1")
	cases := []struct {
		name        string
		fwd, rev    string
		sameReverse bool
	}{
		{"tcp", CommunityID(0, 6, a, b, 40000, 443, 0, 0, false), CommunityID(0, 6, b, a, 443, 40000, 0, 0, false), true},
		{"udp same addr", CommunityID(0, 17, a, a, 1000, 53, 0, 0, false), CommunityID(0, 17, a, a, 53, 1000, 0, 0, false), true},
		{"gre", CommunityID(7, 47, a6, b6, 0, 0, 0, 0, false), CommunityID(7, 47, b6, a6, 0, 0, 0, 0, false), true},
		{"gre ports ignored", CommunityID(0, 47, a, b, 1, 2, 0, 0, false), CommunityID(0, 47, a, b, 0, 0, 0, 0, false), true},
		{"icmp echo", CommunityID(0, 1, a, b, 0, 0, 8, 0, true), CommunityID(0, 1, b, a, 0, 0, 0, 0, true), true},
		{"icmp timestamp", CommunityID(0, 1, a, b, 0, 0, 13, 0, true), CommunityID(0, 1, b, a, 0, 0, 14, 0, true), true},
		{"icmp mask", CommunityID(0, 1, a, b, 0, 0, 17, 0, true), CommunityID(0, 1, b, a, 0, 0, 18, 0, true), true},
		{"icmp router", CommunityID(0, 1, a, b, 0, 0, 10, 0, true), CommunityID(0, 1, b, a, 0, 0, 9, 0, true), true},
		{"icmp info", CommunityID(0, 1, a, b, 0, 0, 15, 0, true), CommunityID(0, 1, b, a, 0, 0, 16, 0, true), true},
		{"icmp unreachable", CommunityID(0, 1, a, b, 0, 0, 3, 1, true), CommunityID(0, 1, b, a, 0, 0, 3, 1, true), false},
		{"icmp6 echo", CommunityID(0, 58, a6, b6, 0, 0, 128, 0, true), CommunityID(0, 58, b6, a6, 0, 0, 129, 0, true), true},
		{"icmp6 mld", CommunityID(0, 58, a6, b6, 0, 0, 130, 0, true), CommunityID(0, 58, b6, a6, 0, 0, 131, 0, true), true},
		{"icmp6 wru", CommunityID(0, 58, a6, b6, 0, 0, 139, 0, true), CommunityID(0, 58, b6, a6, 0, 0, 140, 0, true), true},
		{"icmp6 haad", CommunityID(0, 58, a6, b6, 0, 0, 144, 0, true), CommunityID(0, 58, b6, a6, 0, 0, 145, 0, true), true},
		{"icmp6 packet too big", CommunityID(0, 58, a6, b6, 0, 0, 2, 0, true), CommunityID(0, 58, b6, a6, 0, 0, 2, 0, true), false},
		{"seed", CommunityID(0, 6, a, b, 1, 2, 0, 0, false), CommunityID(65535, 6, a, b, 1, 2, 0, 0, false), false},
	}
	for _, c := range cases {
		if !strings.HasPrefix(c.fwd, "1:") || len(c.fwd) != CommunityIDMaxLen {
			t.Errorf("%s: %q is not a Community ID", c.name, c.fwd)
		}
		if (c.fwd == c.rev) != c.sameReverse {
			t.Errorf("%s: %s and %s: same = %v, want %v", c.name, c.fwd, c.rev, c.fwd == c.rev, c.sameReverse)
		}
	}
}

func TestCommunityIDNone(t *testing.T) {
	a4, a6 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::1")
	for name, id := range map[string]string{
		"icmp without type":  CommunityID(0, 1, a4, a4, 0, 0, 0, 0, false),
		"icmp6 without type": CommunityID(0, 58, a6, a6, 0, 0, 0, 0, false),
		"invalid address":    CommunityID(0, 6, netip.Addr{}, a4, 1, 2, 0, 0, false),
		"mixed families":     CommunityID(0, 6, a6, a4, 1, 2, 0, 0, false),
	} {
		if id != "" {
			t.Errorf("%s: %q, want no ID", name, id)
		}
	}
	b := AppendCommunityID([]byte("x"), 0, 1, a4, a4, 0, 0, 0, 0, false)
	if string(b) != "x" {
		t.Errorf("append with no ID: %q", b)
	}
}

func TestAppendCommunityIDAllocs(t *testing.T) {
	src, dst := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")
	buf := make([]byte, 0, 64)
	want := CommunityID(3, 6, src, dst, 1, 2, 0, 0, false)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendCommunityID(buf[:0], 3, 6, src, dst, 1, 2, 0, 0, false)
	})
	if allocs != 0 {
		t.Errorf("AppendCommunityID: %v allocations", allocs)
	}
	if string(buf) != want {
		t.Errorf("append %q, string %q", buf, want)
	}
}

func BenchmarkAppendCommunityID(b *testing.B) {
	for _, c := range []struct {
		name     string
		src, dst netip.Addr
	}{
		{"ipv4", netip.MustParseAddr("192.168.1.52"), netip.MustParseAddr("8.8.8.8")},
		{"ipv6", netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2")},
	} {
		b.Run(c.name, func(b *testing.B) {
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendCommunityID(buf[:0], 0, 17, c.src, c.dst, 54585, 53, 0, 0, false)
			}
		})
	}
}
