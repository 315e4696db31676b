package bpf

import (
	"cmp"
	"encoding/binary"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	xbpf "golang.org/x/net/bpf"

	"netwatch.dev/sensor/internal/decode"
)

// frame builds an Ethernet frame carrying an IPv4 or IPv6 packet with the
// given protocol and, for TCP/UDP/SCTP, ports. ipOpts adds IPv4 options
// (to move the transport header), frag sets the IPv4 fragment offset.
func frame(src, dst string, proto uint8, sport, dport uint16, ipOpts int, frag uint16) []byte {
	s, d := netip.MustParseAddr(src), netip.MustParseAddr(dst)
	b := make([]byte, 14, 128)
	copy(b[0:6], []byte{2, 0, 0, 0, 0, 1})
	copy(b[6:12], []byte{2, 0, 0, 0, 0, 2})
	if s.Is4() {
		binary.BigEndian.PutUint16(b[12:], 0x0800)
		ip := make([]byte, 20+ipOpts)
		ip[0] = 0x40 | byte((20+ipOpts)/4)
		binary.BigEndian.PutUint16(ip[6:], frag)
		ip[8], ip[9] = 64, proto
		s4, d4 := s.As4(), d.As4()
		copy(ip[12:], s4[:])
		copy(ip[16:], d4[:])
		b = append(b, ip...)
	} else {
		binary.BigEndian.PutUint16(b[12:], 0x86dd)
		ip := make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, proto, 64
		s16, d16 := s.As16(), d.As16()
		copy(ip[8:], s16[:])
		copy(ip[24:], d16[:])
		b = append(b, ip...)
	}
	l4 := make([]byte, 20)
	binary.BigEndian.PutUint16(l4[0:], sport)
	binary.BigEndian.PutUint16(l4[2:], dport)
	return append(b, l4...)
}

func arpFrame() []byte {
	b := make([]byte, 42)
	binary.BigEndian.PutUint16(b[12:], 0x0806)
	return b
}

func TestCompileMatches(t *testing.T) {
	udp4 := frame("10.0.0.1", "10.0.0.2", 17, 5353, 53, 0, 0)
	udp4opts := frame("10.0.0.1", "10.0.0.2", 17, 5353, 53, 8, 0)
	udp4frag := frame("10.0.0.1", "10.0.0.2", 17, 5353, 53, 0, 185) // not first fragment
	tcp4 := frame("192.168.1.10", "10.1.2.3", 6, 40000, 443, 0, 0)
	icmp4 := frame("10.0.0.2", "10.0.0.1", 1, 0, 0, 0, 0)
	udp6 := frame("fd00::1", "fd00::2", 17, 5353, 53, 0, 0)
	tcp6 := frame("fd00:1::1", "2001:db8::2", 6, 40000, 443, 0, 0)
	icmp6 := frame("fd00::2", "fd00::1", 58, 0, 0, 0, 0)
	arp := arpFrame()
	all := map[string][]byte{"udp4": udp4, "udp4opts": udp4opts, "udp4frag": udp4frag, "tcp4": tcp4,
		"icmp4": icmp4, "udp6": udp6, "tcp6": tcp6, "icmp6": icmp6, "arp": arp}

	for _, tc := range []struct {
		expr  string
		match []string // the others must not match
	}{
		{"", []string{"udp4", "udp4opts", "udp4frag", "tcp4", "icmp4", "udp6", "tcp6", "icmp6", "arp"}},
		{"ip", []string{"udp4", "udp4opts", "udp4frag", "tcp4", "icmp4"}},
		{"ip6", []string{"udp6", "tcp6", "icmp6"}},
		{"arp", []string{"arp"}},
		{"udp", []string{"udp4", "udp4opts", "udp4frag", "udp6"}},
		{"tcp", []string{"tcp4", "tcp6"}},
		{"icmp", []string{"icmp4"}},
		{"icmp6", []string{"icmp6"}},
		{"not ip and not ip6", []string{"arp"}},
		{"! udp && ! tcp", []string{"icmp4", "icmp6", "arp"}},
		{"port 53", []string{"udp4", "udp4opts", "udp6"}},
		{"dst port 53", []string{"udp4", "udp4opts", "udp6"}},
		{"src port 53", nil},
		{"src port 5353", []string{"udp4", "udp4opts", "udp6"}},
		{"tcp port 53", nil},
		{"udp dst port 53", []string{"udp4", "udp4opts", "udp6"}},
		{"tcp port 443 or icmp", []string{"tcp4", "tcp6", "icmp4"}},
		{"host 10.0.0.1", []string{"udp4", "udp4opts", "udp4frag", "icmp4"}},
		{"src host 10.0.0.1", []string{"udp4", "udp4opts", "udp4frag"}},
		{"dst host 10.0.0.1", []string{"icmp4"}},
		{"host fd00::1", []string{"udp6", "icmp6"}},
		{"dst host fd00::1", []string{"icmp6"}},
		{"net 10.0.0.0/8", []string{"udp4", "udp4opts", "udp4frag", "tcp4", "icmp4"}},
		{"src net 192.168.0.0/16", []string{"tcp4"}},
		{"net 0.0.0.0/0", []string{"udp4", "udp4opts", "udp4frag", "tcp4", "icmp4", "arp"}}, // ARP too, as libpcap
		{"net fd00::/32", []string{"udp6", "icmp6"}},
		{"net fd00::/8", []string{"udp6", "icmp6", "tcp6"}},
		{"dst net 2001:db8::/32", []string{"tcp6"}},
		{"net fd00:1::/33", []string{"tcp6"}},
		{"(tcp or udp) and net 10.0.0.0/8 and not port 53", []string{"udp4frag", "tcp4"}},
		{"udp and (port 1 or port 53)", []string{"udp4", "udp4opts", "udp6"}},
		{"not (ip or ip6)", []string{"arp"}},
		{"not not arp", []string{"arp"}},
	} {
		t.Run(cmp.Or(tc.expr, "no filter"), func(t *testing.T) {
			prog, err := Compile(tc.expr, 0)
			if err != nil {
				t.Errorf("Compile(%q): %v", tc.expr, err)
				return
			}
			vm, err := xbpf.NewVM(prog)
			if err != nil {
				t.Errorf("NewVM(%q): %v", tc.expr, err)
				return
			}
			want := map[string]bool{}
			for _, m := range tc.match {
				want[m] = true
			}
			for name, f := range all {
				n, err := vm.Run(f)
				if err != nil {
					t.Errorf("%q on %s: %v", tc.expr, name, err)
					continue
				}
				if got := n > 0; got != want[name] {
					t.Errorf("%q on %s: matched=%v, want %v", tc.expr, name, got, want[name])
				}
				// (x/net/bpf's VM returns the program's value unclamped; the
				// kernel takes min(packet length, value).)
				if n > 0 && n != MaxSnaplen {
					t.Errorf("%q on %s: returned %d, want MaxSnaplen", tc.expr, name, n)
				}
			}
		})
	}
}

func TestCompileSnaplen(t *testing.T) {
	prog, err := Compile("udp", 16)
	if err != nil {
		t.Fatal(err)
	}
	vm, err := xbpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := vm.Run(frame("10.0.0.1", "10.0.0.2", 17, 1, 2, 0, 0)); n != 16 {
		t.Errorf("snaplen 16: got %d", n)
	}
	prog, err = Compile("", 0)
	if err != nil || len(prog) != 1 || prog[0] != (xbpf.RetConstant{Val: MaxSnaplen}) {
		t.Errorf("empty expression: %v %v", prog, err)
	}
}

// vlan uses kernel-only extensions (x/net/bpf's VM does not run them); the
// capture package's live test checks it in the kernel. Here: it assembles.
func TestCompileVLAN(t *testing.T) {
	for _, e := range []string{"vlan", "vlan 42", "vlan and udp", "vlan 42 and port 53", "not vlan"} {
		if _, err := Assemble(e, 0); err != nil {
			t.Errorf("Assemble(%q): %v", e, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ expr, msg string }{
		{"udpp", `unknown primitive "udpp"`},
		{"port http", `port "http" is not a number`},
		{"port 70000", `port "70000" is not a number`},
		{"host example.com", `host "example.com" is not an IPv4 or IPv6 address`},
		{"net 10.0.0.0/33", `net "10.0.0.0/33" is not a CIDR prefix`},
		{"(udp", `missing ")"`},
		{"udp)", `unexpected ")"`},
		{"udp and", `expression ends where a primitive was expected`},
		{"udp & tcp", `unexpected "&" (use "&&"`},
		{"udp $", `unexpected character '$'`},
		{"10.0.0.1", `bare address "10.0.0.1": write "host 10.0.0.1"`},
		{"vlan 5000", `vlan id 5000 out of range`},
		{"tcp src host 1.2.3.4", `expected "port" or "portrange" after "tcp", got "host"`},
		{"src foo", `expected "host", "net", "port" or "portrange", got "foo"`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := Compile(tc.expr, 0)
			if err == nil {
				t.Errorf("Compile(%q): no error, want %q", tc.expr, tc.msg)
				return
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("Compile(%q): error %v does not wrap ErrSyntax", tc.expr, err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), tc.expr) {
				t.Errorf("Compile(%q): error %q should name the expression and say %q", tc.expr, err, tc.msg)
			}
		})
	}
}

func TestCompileTooComplex(t *testing.T) {
	e := strings.Repeat("host fd00::1 or ", 40) + "host fd00::1"
	if _, err := Compile(e, 0); err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Errorf("got %v, want a too-complex error", err)
	}
}

// TestBPFNewPrimitives checks portrange, proto, tcp[] and ether host on
// hand-built frames (the tcpdump differential test covers them broadly).
func TestBPFNewPrimitives(t *testing.T) {
	syn := frame("10.0.0.1", "10.0.0.2", 6, 40000, 443, 0, 0)
	syn[14+20+13] = 0x02
	synack := frame("10.0.0.2", "10.0.0.1", 6, 443, 40000, 0, 0)
	synack[14+20+13] = 0x12
	ack6 := frame("fd00::1", "fd00::2", 6, 40000, 443, 0, 0)
	ack6[14+40+13] = 0x10
	gre := frame("10.0.0.1", "10.0.0.2", 47, 0, 0, 0, 0)
	udp := frame("10.0.0.1", "10.0.0.2", 17, 5353, 1050, 0, 0)
	copy(udp[0:6], []byte{0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e})
	all := map[string][]byte{"syn": syn, "synack": synack, "ack6": ack6, "gre": gre, "udp": udp, "arp": arpFrame()}
	for _, tc := range []struct {
		expr  string
		match []string
	}{
		{"portrange 1000-1100", []string{"udp"}},
		{"dst portrange 400-500", []string{"syn", "ack6"}},
		{"tcp src portrange 400-500", []string{"synack"}},
		{"udp portrange 5353-5353", []string{"udp"}},
		{"proto 47", []string{"gre"}},
		{"ip proto 47", []string{"gre"}},
		{`ip proto \tcp`, []string{"syn", "synack"}},
		{"ip6 proto 6", []string{"ack6"}},
		{"proto tcp", []string{"syn", "synack", "ack6"}},
		{"tcp[tcpflags] & tcp-syn != 0", []string{"syn", "synack"}},
		{"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", []string{"syn"}},
		{"tcp[13] = 0x12", []string{"synack"}},
		{"tcp[0:2] > 1024", []string{"syn"}},
		{"udp[2:2] <= 1050", []string{"udp"}},
		{"ether dst 00:1b:21:3c:4d:5e", []string{"udp"}},
		{"ether host 00:1b:21:3c:4d:5e", []string{"udp"}},
		{"ether src host 02:00:00:00:00:02", []string{"syn", "synack", "ack6", "gre", "udp"}},
		{"ether proto 0x0806", []string{"arp"}},
		{"greater 60", []string{"ack6"}},
		{"less 53", []string{"arp"}},
		{"len = 54", []string{"syn", "synack", "gre", "udp"}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			for _, target := range []string{"live", "file"} {
				prog, err := Compile(tc.expr, 0)
				if target == "file" {
					prog, err = CompileFor(tc.expr, 0, decode.LinkEthernet)
				}
				if err != nil {
					t.Errorf("%s: Compile(%q): %v", target, tc.expr, err)
					continue
				}
				vm, err := xbpf.NewVM(prog)
				if err != nil {
					t.Fatalf("%s: NewVM(%q): %v", target, tc.expr, err)
				}
				for name, f := range all {
					n, err := vm.Run(f)
					if err != nil {
						t.Fatalf("%q on %s: %v", tc.expr, name, err)
					}
					if got, want := n > 0, slices.Contains(tc.match, name); got != want {
						t.Errorf("%s: %q on %s: matched=%v, want %v", target, tc.expr, name, got, want)
					}
				}
			}
		})
	}
}

// TestBPFLinkTypes: the same filter on the same packet behind other
// link headers; link types the compiler cannot target are refused.
func TestBPFLinkTypes(t *testing.T) {
	eth := frame("10.0.0.1", "10.0.0.2", 6, 40000, 443, 0, 0)
	ip := eth[14:]
	sll := append([]byte{0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0, 8, 0}, ip...)
	sll2 := append([]byte{8, 0, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 2, 0, 0}, ip...)
	nullLE, nullBE := append([]byte{2, 0, 0, 0}, ip...), append([]byte{0, 0, 0, 2}, ip...)
	for _, c := range []struct {
		name string
		lt   decode.LinkType
		f    []byte
	}{
		{"ethernet", decode.LinkEthernet, eth}, {"linux cooked", decode.LinkLinuxSLL, sll}, {"linux cooked v2", decode.LinkLinuxSLL2, sll2},
		{"raw", decode.LinkRaw, ip}, {"ipv4", decode.LinkIPv4, ip},
		{"null little endian", decode.LinkNull, nullLE}, {"null big endian", decode.LinkNull, nullBE}, {"loop", decode.LinkLoop, nullBE},
	} {
		t.Run(c.name, func(t *testing.T) {
			lt, f := c.lt, c.f
			for expr, want := range map[string]bool{"tcp port 443": true, "host 10.0.0.2 and tcp": true, "ip6": false, "udp": false,
				"tcp[tcpflags] & tcp-syn = 0": true, "net 10.0.0.0/8 and not portrange 1-1024": false} {
				prog, err := CompileFor(expr, 0, lt)
				if err != nil {
					t.Fatalf("CompileFor(%q, %d): %v", expr, lt, err)
				}
				vm, err := xbpf.NewVM(prog)
				if err != nil {
					t.Fatalf("NewVM(%q, %d): %v", expr, lt, err)
				}
				if n, err := vm.Run(f); err != nil || (n > 0) != want {
					t.Errorf("%q on link type %d: accepted=%v (%v), want %v", expr, lt, n > 0, err, want)
				}
			}
		})
	}
	_, err := CompileFor("tcp", 0, decode.LinkType(127)) // 802.11 radiotap
	if !errors.Is(err, ErrLinkType) || !strings.Contains(err.Error(), "link type not supported") {
		t.Errorf("radiotap: got %v, want ErrLinkType", err)
	}
	for _, tc := range []struct {
		lt   decode.LinkType
		expr string
	}{{decode.LinkLinuxSLL, "vlan"}, {decode.LinkRaw, "ether host 02:00:00:00:00:01"}, {decode.LinkLinuxSLL2, "ether[0] = 1"}} {
		t.Run(tc.expr, func(t *testing.T) {
			if _, err := CompileFor(tc.expr, 0, tc.lt); err == nil || !strings.Contains(err.Error(), "needs an Ethernet link") {
				t.Errorf("CompileFor(%q, %d): %v, want a needs-Ethernet error", tc.expr, tc.lt, err)
			}
		})
	}
}

func TestBPFErrorOffsets(t *testing.T) {
	for _, tc := range []struct {
		expr string
		pos  int
		msg  string
	}{
		{"portrange 10", 10, `port range "10" is not N-M`},
		{"tcp and portrange 10-70000", 18, `port range "10-70000"`},
		{"proto foo", 6, `protocol "foo" is not a number in 0-255`},
		{"ip proto 256", 9, `protocol "256"`},
		{"tcp[13 = 2", 7, `expected "]" after "tcp[13"`},
		{"tcp[13:3] = 1", 7, `size "3" must be 1, 2 or 4`},
		{"tcp[13] & 2", 11, `expression ends where a comparison`},
		{"tcp[13] & 2 and tcp", 12, `expected a comparison`},
		{"tcp[x] = 1", 4, `offset "x" is not a number`},
		{"tcp[tcpflags] & tcp-bogus != 0", 16, `value "tcp-bogus" is not a number`},
		{"tcp[13] & (tcp-syn tcp-ack) != 0", 19, `expected "|" or ")" in a constant`},
		{"ether host 1.2.3.4", 11, `ether address "1.2.3.4" is not a MAC address`},
		{"ether proto 100", 12, `only EtherType values 1501-65535`},
		{"ip6 host 10.0.0.1", 4, `does not fit the protocol qualifier`},
		{"ip src port 80", 7, `expected "host" or "net", got "port"`},
		{"udp[0] + 1 = 2", 7, `unexpected character '+'`},
		{"less", 4, `expression ends where a length was expected`},
		{"tcp | udp", 4, `unexpected "|" (use "||"`},
		{"tcp and and", 8, `expected a primitive, got "and"`},
		{"udp or )", 7, `expected a primitive, got ")"`},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			_, err := Compile(tc.expr, 0)
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("Compile(%q): %v, want an *Error", tc.expr, err)
				return
			}
			if e.Pos != tc.pos || !strings.Contains(e.Msg, tc.msg) {
				t.Errorf("Compile(%q): %q at %d, want %q at %d", tc.expr, e.Msg, e.Pos, tc.msg, tc.pos)
			}
		})
	}
}
