package bpf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	xbpf "golang.org/x/net/bpf"

	"netwatch.dev/common/difftest"
	"netwatch.dev/sensor/internal/decode"
)

// tcpdumpProgram returns libpcap's program for expr on the link type dlt
// (a tcpdump -y name), from `tcpdump -ddd`. ok is false when tcpdump refuses
// the expression; "expression rejects all packets" is the program "ret #0".
func tcpdumpProgram(t *testing.T, tcpdump, dlt, expr string) (prog []xbpf.Instruction, ok bool, msg string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(tcpdump, "-ddd", "-y", dlt, expr)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if strings.Contains(stderr.String(), "expression rejects all packets") {
			return []xbpf.Instruction{xbpf.RetConstant{Val: 0}}, true, ""
		}
		return nil, false, strings.TrimSpace(stderr.String())
	}
	lines := strings.Fields(stdout.String())
	if len(lines) == 0 {
		t.Fatalf("tcpdump -ddd %q: no output", expr)
	}
	n, err := strconv.Atoi(lines[0])
	if err != nil || len(lines) != 1+4*n {
		t.Fatalf("tcpdump -ddd %q: unexpected output %q", expr, stdout.String())
	}
	for i := range n {
		var v [4]uint64
		for j := range v {
			if v[j], err = strconv.ParseUint(lines[1+4*i+j], 10, 32); err != nil {
				t.Fatalf("tcpdump -ddd %q: %v", expr, err)
			}
		}
		raw := xbpf.RawInstruction{Op: uint16(v[0]), Jt: uint8(v[1]), Jf: uint8(v[2]), K: uint32(v[3])}
		prog = append(prog, raw.Disassemble())
	}
	return prog, true, ""
}

func needTcpdump(t *testing.T) string {
	path, err := exec.LookPath("tcpdump")
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" || os.Geteuid() == 0 {
		t.Fatalf("tcpdump is not installed (.ci/deps.sh installs it): %v", err)
	}
	t.Skip("tcpdump is not installed (not root, not CI): the differential test against libpcap needs it")
	return ""
}

// Corpus of generated frames: a random mix of the values the table's
// expressions test, plus truncations.
var (
	corpusMACs = [][]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, {0x00, 0x1b, 0x21, 0x3c, 0x4d, 0x5e}}
	corpusV4   = []string{"10.0.0.1", "10.0.0.2", "192.168.1.10", "10.1.2.3", "8.8.8.8", "172.16.5.4"}
	corpusV6   = []string{"fd00::1", "fd00::2", "2001:db8::2", "fd00:1::1", "fe80::1"}
	corpusPort = []uint16{0, 10, 20, 53, 80, 443, 1023, 1024, 5353, 8080, 65535}
	corpusProt = []uint8{1, 2, 6, 17, 47, 50, 58, 132, 6, 17}
	corpusFlag = []uint8{0x02, 0x12, 0x10, 0x11, 0x04, 0x18, 0x20, 0x40, 0x80, 0x00, 0x01, 0x08}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// l4 is a transport header: ports, and for TCP the flags at 13.
func l4(r *rand.Rand, proto uint8) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b[0:], pick(r, corpusPort))
	binary.BigEndian.PutUint16(b[2:], pick(r, corpusPort))
	if proto == 6 {
		b[13] = pick(r, corpusFlag)
	}
	if proto == 1 || proto == 58 {
		b[0], b[1] = pick(r, []byte{0, 3, 8, 11, 128, 129}), byte(r.IntN(3))
	}
	return b
}

func ip4Packet(r *rand.Rand) []byte {
	opts := pick(r, []int{0, 0, 0, 4, 12})
	h := make([]byte, 20+opts)
	h[0] = 0x40 | byte((20+opts)/4)
	proto := pick(r, corpusProt)
	frag := pick(r, []uint16{0, 0, 0, 0x2000, 0x2000 | 185, 185, 0x4000})
	binary.BigEndian.PutUint16(h[6:], frag)
	h[8], h[9] = 64, proto
	s, d := netip.MustParseAddr(pick(r, corpusV4)).As4(), netip.MustParseAddr(pick(r, corpusV4)).As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	return append(h, l4(r, proto)...)
}

func ip6Packet(r *rand.Rand) []byte {
	h := make([]byte, 40)
	h[0] = 0x60
	proto := pick(r, corpusProt)
	h[6], h[7] = proto, 64
	s, d := netip.MustParseAddr(pick(r, corpusV6)).As16(), netip.MustParseAddr(pick(r, corpusV6)).As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	if r.IntN(5) == 0 { // fragment header, then the transport header
		h[6] = 44
		fh := make([]byte, 8)
		fh[0] = proto
		binary.BigEndian.PutUint16(fh[2:], pick(r, []uint16{0, 1, 185 << 3}))
		h = append(h, fh...)
	}
	return append(h, l4(r, proto)...)
}

func arpPacket(r *rand.Rand) []byte {
	b := make([]byte, 28)
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], 0x0800)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], uint16(1+r.IntN(2)))
	copy(b[8:], pick(r, corpusMACs))
	s, d := netip.MustParseAddr(pick(r, corpusV4)).As4(), netip.MustParseAddr(pick(r, corpusV4)).As4()
	copy(b[14:], s[:])
	copy(b[18:], pick(r, corpusMACs))
	copy(b[24:], d[:])
	return b
}

// corpus returns Ethernet frames and, for each, its network-layer payload
// and EtherType (to rebuild it on other link types); tagged frames have
// payload nil.
type corpusFrame struct {
	eth     []byte
	etype   uint16
	payload []byte
}

func corpus() []corpusFrame {
	r := rand.New(rand.NewPCG(1, 2))
	var out []corpusFrame
	for range 4000 {
		var etype uint16
		var payload []byte
		switch r.IntN(10) {
		case 0, 1, 2, 3:
			etype, payload = 0x0800, ip4Packet(r)
		case 4, 5, 6:
			etype, payload = 0x86dd, ip6Packet(r)
		case 7:
			etype, payload = pick(r, []uint16{0x0806, 0x8035}), arpPacket(r)
		case 8:
			etype, payload = pick(r, []uint16{0x88cc, 0x0800, 0x86dd, 0x05dc, 0x9000}), make([]byte, r.IntN(60))
			for i := range payload {
				payload[i] = byte(r.Uint32())
			}
			if etype == 0x0800 && len(payload) > 0 {
				payload[0] = 0x45
			}
			if etype == 0x86dd && len(payload) > 0 {
				payload[0] = 0x60
			}
		case 9: // 802.1Q / 802.1ad tagged, maybe twice
			etype, payload = 0x0800, ip4Packet(r)
			if r.IntN(2) == 0 {
				etype, payload = 0x86dd, ip6Packet(r)
			}
		}
		eth := append(append(append([]byte{}, pick(r, corpusMACs)...), pick(r, corpusMACs)...), byte(etype>>8), byte(etype))
		f := corpusFrame{etype: etype, payload: payload}
		if len(out)%10 == 9 {
			for range 1 + r.IntN(2) {
				tag := []byte{0, 0, 0, 0}
				binary.BigEndian.PutUint16(tag[0:], pick(r, []uint16{0x8100, 0x8100, 0x88a8, 0x9100}))
				binary.BigEndian.PutUint16(tag[2:], uint16(pick(r, []int{10, 20, 4095, 0}))|uint16(r.IntN(8))<<13)
				eth = append(eth[:12:12], append(tag, eth[12:]...)...)
			}
			f.payload = nil
		}
		f.eth = append(eth, payload...)
		if r.IntN(4) == 0 { // trailing bytes (Ethernet padding, payload) for less/greater
			f.eth = append(f.eth, make([]byte, r.IntN(100))...)
		}
		out = append(out, f)
	}
	// Short frames: every length of a few frames up to past the transport header.
	for _, f := range out[:40] {
		for n := 0; n < len(f.eth) && n < 80; n += 3 {
			out = append(out, corpusFrame{eth: f.eth[:n]})
		}
	}
	return out
}

// onLink rebuilds f for another link type; nil when it has no such form.
func onLink(f corpusFrame, lt decode.LinkType) []byte {
	if lt == decode.LinkEthernet {
		return f.eth
	}
	if f.payload == nil {
		return nil
	}
	switch lt {
	case decode.LinkLinuxSLL:
		h := make([]byte, 16)
		binary.BigEndian.PutUint16(h[0:], 0)
		binary.BigEndian.PutUint16(h[2:], 1)
		binary.BigEndian.PutUint16(h[4:], 6)
		copy(h[6:], f.eth[6:12])
		binary.BigEndian.PutUint16(h[14:], f.etype)
		return append(h, f.payload...)
	case decode.LinkLinuxSLL2:
		h := make([]byte, 20)
		binary.BigEndian.PutUint16(h[0:], f.etype)
		binary.BigEndian.PutUint32(h[4:], 2)
		binary.BigEndian.PutUint16(h[8:], 1)
		h[11] = 6
		copy(h[12:], f.eth[6:12])
		return append(h, f.payload...)
	case decode.LinkRaw:
		return f.payload
	case decode.LinkNull, decode.LinkLoop: // AF_INET 2, AF_INET6 10 (Linux: what libpcap compiles for here)
		af := map[uint16]byte{0x0800: 2, 0x86dd: 10}[f.etype]
		if af == 0 {
			return nil
		}
		if lt == decode.LinkNull {
			return append([]byte{af, 0, 0, 0}, f.payload...) // little-endian writer
		}
		return append([]byte{0, 0, 0, af}, f.payload...)
	case decode.LinkIPv4:
		if f.etype != 0x0800 {
			return nil
		}
		return f.payload
	case decode.LinkIPv6:
		if f.etype != 0x86dd {
			return nil
		}
		return f.payload
	}
	return nil
}

// diffExprs are compared with libpcap on every link type; those marked
// ethernetOnly only on Ethernet (ours and tcpdump's both refuse the others).
var diffExprs = []string{
	"ip", "ip6", "arp", "rarp", "tcp", "udp", "sctp", "icmp", "icmp6",
	"host 10.0.0.1", "src host 10.0.0.1", "dst host 192.168.1.10", "host fd00::1", "dst host 2001:db8::2",
	"net 10.0.0.0/8", "src net 192.168.0.0/16", "dst net 10.0.0.0/24", "net 0.0.0.0/0", "net fd00::/16", "net fd00:1::/33", "net ::/0", "src net 2001:db8::/32",
	"port 53", "src port 53", "dst port 443", "tcp port 443", "udp port 53", "sctp port 80", "tcp dst port 80", "udp src port 5353",
	"portrange 10-20", "tcp portrange 1000-1100", "udp src portrange 50-60", "dst portrange 1024-65535", "portrange 80-80", "portrange 443-80",
	"proto 6", "proto 47", "ip proto 17", "ip6 proto 58", "ip6 proto 44", `ip proto \tcp`, `proto \udp`, "ip proto 50",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) != 0", "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0",
	"tcp[13] = 18", "tcp[13] & 0x03 > 0", "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0", "tcp[tcpflags] & (tcp-push|tcp-urg|tcp-ece|tcp-cwr) = 0x80",
	"tcp[0:2] = 443", "tcp[2:2] >= 1024", "udp[0:2] < 1024", "udp[2:2] <= 53", "tcp[0:4] & 0xffff = 80", "icmp[icmptype] = icmp-echo",
	"icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply", "ip[9] = 6", "ip[6:2] & 0x1fff != 0", "ip6[6] = 17",
	"ip host 10.0.0.2", "arp host 10.0.0.1", "ip src net 10.0.0.0/8", "ip6 dst host fd00::2",
	"tcp and (port 80 or port 443)", "not tcp", "not (tcp or udp)", "! udp && ! tcp", "ip and not icmp",
	"(tcp or udp) and net 10.0.0.0/8 and not port 53", "host 10.0.0.1 and (tcp or icmp)", "udp or (ip6 and tcp dst port 80)",
	"not not arp", "tcp or udp or icmp or icmp6 or arp", "src host 10.0.0.1 or dst net fd00::/8",
	"less 60", "greater 100", "len >= 64", "len < 54", "less 60 and tcp",
}

var ethernetOnly = []string{
	"ether host 02:00:00:00:00:01", "ether src 02:00:00:00:00:02", "ether dst host ff:ff:ff:ff:ff:ff",
	"ether src host 00:1b:21:3c:4d:5e and tcp", "ether proto 0x88cc", `ether proto \arp`, "ether[0] & 1 != 0", "ether[12:2] = 0x0800",
	"vlan", "vlan 10", "vlan 20 and tcp port 80", "vlan and ip6", "vlan 10 or vlan 20", "udp and not vlan", "tcp or vlan",
	"vlan and host 10.0.0.1", "vlan 4095 and portrange 10-100",
}

var dltNames = map[decode.LinkType]string{
	decode.LinkEthernet: "EN10MB", decode.LinkLinuxSLL: "LINUX_SLL", decode.LinkLinuxSLL2: "LINUX_SLL2",
	decode.LinkRaw: "RAW", decode.LinkIPv4: "IPV4", decode.LinkIPv6: "IPV6", decode.LinkNull: "NULL", decode.LinkLoop: "LOOP",
}

// TestBPFMatchesTcpdump compares, frame by frame, what our program and
// libpcap's (tcpdump -ddd) accept, both run in x/net/bpf's VM.
func TestBPFMatchesTcpdump(t *testing.T) {
	tcpdump := needTcpdump(t)
	frames := corpus()
	for _, lt := range []decode.LinkType{decode.LinkEthernet, decode.LinkLinuxSLL, decode.LinkLinuxSLL2, decode.LinkRaw, decode.LinkIPv4, decode.LinkIPv6, decode.LinkNull, decode.LinkLoop} {
		var data [][]byte
		for _, f := range frames {
			if b := onLink(f, lt); b != nil {
				data = append(data, b)
			}
		}
		exprs := diffExprs
		if lt == decode.LinkEthernet {
			exprs = append(append([]string{}, diffExprs...), ethernetOnly...)
		}
		t.Run(dltNames[lt], func(t *testing.T) {
			for _, expr := range exprs {
				want, ok, msg := tcpdumpProgram(t, tcpdump, dltNames[lt], expr)
				if !ok {
					t.Errorf("tcpdump refuses %q on %s: %s", expr, dltNames[lt], msg)
					continue
				}
				got, err := CompileFor(expr, 0, lt)
				if err != nil {
					t.Errorf("CompileFor(%q, %s): %v", expr, dltNames[lt], err)
					continue
				}
				if lt == decode.LinkEthernet && !strings.Contains(expr, "vlan") {
					// The live program differs only in how it reads VLAN tags.
					if live, err := Compile(expr, 0); err != nil {
						t.Errorf("Compile(%q) (live): %v", expr, err)
					} else if d := difftest.Diff(got, live); d != "" {
						t.Errorf("Compile(%q) (live) differs from CompileFor(Ethernet) (-file +live):\n%s", expr, d)
					}
				}
				matched, err := sameVerdicts(got, want, data)
				if err != nil {
					t.Errorf("%q on %s: %v\nours:\n%s\nlibpcap:\n%s", expr, dltNames[lt], err, dump(got), dump(want))
				}
				t.Logf("%-60q accepts %4d of %d frames", expr, matched, len(data))
				if lt == decode.LinkEthernet && (matched == 0 || matched == len(data)) {
					t.Errorf("%q accepts %d of the %d frames: the corpus does not tell accept from reject", expr, matched, len(data))
				}
			}
			if lt == decode.LinkEthernet {
				return
			}
			for _, expr := range ethernetOnly {
				if _, ok, _ := tcpdumpProgram(t, tcpdump, dltNames[lt], expr); ok {
					continue // tcpdump has a meaning for it here; we refuse it, which is not a wrong filter
				}
				if _, err := CompileFor(expr, 0, lt); err == nil {
					t.Errorf("CompileFor(%q, %s): compiled, but libpcap refuses it", expr, dltNames[lt])
				}
			}
		})
	}
}

// sameVerdicts runs both programs on every frame; it returns how many frames
// they accept.
func sameVerdicts(got, want []xbpf.Instruction, frames [][]byte) (int, error) {
	gvm, err := xbpf.NewVM(got)
	if err != nil {
		return 0, fmt.Errorf("ours: %v", err)
	}
	wvm, err := xbpf.NewVM(want)
	if err != nil {
		return 0, fmt.Errorf("libpcap's: %v", err)
	}
	matched := 0
	for _, f := range frames {
		g, err := gvm.Run(f)
		if err != nil {
			return 0, fmt.Errorf("ours on % x: %v", f, err)
		}
		w, err := wvm.Run(f)
		if err != nil {
			return 0, fmt.Errorf("libpcap's on % x: %v", f, err)
		}
		if (g > 0) != (w > 0) {
			return 0, fmt.Errorf("frame % x: ours accepts=%v, libpcap accepts=%v", f, g > 0, w > 0)
		}
		if w > 0 {
			matched++
		}
	}
	return matched, nil
}

func dump(prog []xbpf.Instruction) string {
	var b strings.Builder
	for i, ins := range prog {
		fmt.Fprintf(&b, "  %3d %v\n", i, ins)
	}
	return b.String()
}
