package bpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	xbpf "golang.org/x/net/bpf"
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
		{"net 0.0.0.0/0", []string{"udp4", "udp4opts", "udp4frag", "tcp4", "icmp4"}},
		{"net fd00::/32", []string{"udp6", "icmp6"}},
		{"net fd00::/8", []string{"udp6", "icmp6", "tcp6"}},
		{"dst net 2001:db8::/32", []string{"tcp6"}},
		{"net fd00:1::/33", []string{"tcp6"}},
		{"(tcp or udp) and net 10.0.0.0/8 and not port 53", []string{"udp4frag", "tcp4"}},
		{"udp and (port 1 or port 53)", []string{"udp4", "udp4opts", "udp6"}},
		{"not (ip or ip6)", []string{"arp"}},
		{"not not arp", []string{"arp"}},
	} {
		prog, err := Compile(tc.expr, 0)
		if err != nil {
			t.Errorf("Compile(%q): %v", tc.expr, err)
			continue
		}
		vm, err := xbpf.NewVM(prog)
		if err != nil {
			t.Errorf("NewVM(%q): %v", tc.expr, err)
			continue
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
		{"udp & tcp", `unexpected '&' (use "&&")`},
		{"udp $", `unexpected character '$'`},
		{"10.0.0.1", `bare address "10.0.0.1": write "host 10.0.0.1"`},
		{"vlan 5000", `vlan id 5000 out of range`},
		{"tcp src host 1.2.3.4", `expected "port" after "tcp"`},
		{"src foo", `expected "host", "net" or "port", got "foo"`},
	} {
		_, err := Compile(tc.expr, 0)
		if err == nil {
			t.Errorf("Compile(%q): no error, want %q", tc.expr, tc.msg)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Compile(%q): error %v does not wrap ErrSyntax", tc.expr, err)
		}
		if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), tc.expr) {
			t.Errorf("Compile(%q): error %q should name the expression and say %q", tc.expr, err, tc.msg)
		}
	}
}

func TestCompileTooComplex(t *testing.T) {
	e := strings.Repeat("host fd00::1 or ", 40) + "host fd00::1"
	if _, err := Compile(e, 0); err == nil || !strings.Contains(err.Error(), "too complex") {
		t.Errorf("got %v, want a too-complex error", err)
	}
}
