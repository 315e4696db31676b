// Package bpf compiles a documented subset of the tcpdump / pcap-filter(7)
// expression language into classic BPF, in pure Go (the sensor is built with
// CGO_ENABLED=0, so libpcap's compiler is not available).
//
// Compile targets a Linux AF_PACKET socket (SO_ATTACH_FILTER) on an Ethernet
// link: the packet starts at the Ethernet header, and the outer VLAN tag is
// NOT in the packet but in the skb metadata (see "vlan" below). CompileFor
// targets the frames of a capture file of a given link type (Ethernet, Linux
// cooked v1/v2, raw IP, BSD loopback), where VLAN tags are in the packet bytes; its programs
// run in golang.org/x/net/bpf's VM and behave as libpcap's for the same link
// type (the tests compare them with tcpdump -d).
//
// Grammar (case-sensitive keywords, as in tcpdump):
//
//	expr      = term { ("or" | "||") term }
//	term      = factor { ("and" | "&&") factor }
//	factor    = ("not" | "!") factor | "(" expr ")" | primitive
//	primitive = "ip" | "ip6" | "arp" | "rarp"
//	          | "tcp" | "udp" | "sctp" | "icmp" | "icmp6"
//	          | ["tcp" | "udp" | "sctp"] [dir] ("port" PORT | "portrange" PORT "-" PORT)
//	          | ["ip" | "ip6" | "arp" | "rarp"] [dir] ("host" ADDR | "net" CIDR)
//	          | ["ip" | "ip6"] "proto" PROTO  (number 0-255 or a name: tcp, \tcp, udp, ...)
//	          | "ether" [dir] ["host"] MAC | "ether" "proto" ETHERTYPE
//	          | "vlan" [ID]
//	          | ("less" | "greater") LENGTH
//	          | access ["&" const] relop const
//	access    = ("ether" | "ip" | "ip6" | "tcp" | "udp" | "sctp" | "icmp") "[" OFF [":" (1|2|4)] "]" | "len"
//	const     = NUMBER | NAME | "(" const { "|" const } ")"
//	relop     = "=" | "==" | "!=" | "<" | "<=" | ">" | ">="
//	dir       = "src" | "dst"
//
// Numbers are decimal, 0x hex or 0 octal. ADDR is an IPv4 or IPv6 literal (no
// DNS), PORT a number (no service names). The NAMEs are tcpdump's: tcpflags,
// tcp-fin, tcp-syn, tcp-rst, tcp-push, tcp-ack, tcp-urg, tcp-ece, tcp-cwr,
// icmptype, icmpcode and the icmp-echo family. Anything else is an error that
// names the token and its offset.
//
// Semantics follow libpcap:
//   - IPv4 "host" and "net" also match the sender/target addresses of ARP and
//     RARP (unless qualified by "ip");
//   - "tcp", "udp", "sctp", "icmp6" and "ip6 proto" also match an IPv6 packet
//     whose fixed header is followed by a fragment header carrying that
//     protocol; other extension headers are not walked;
//   - IPv4 ports and tcp[]/udp[]/icmp[] are only read in the first fragment
//     (fragment offset 0); tcp[], udp[], sctp[] and icmp[] are IPv4 only;
//   - on BSD loopback (NULL, LOOP) "ip6" matches every AF_INET6 value the
//     sensor decodes (10, 24, 28, 30, NULL in either byte order), where
//     libpcap matches only its own host's;
//   - "less N" is "len <= N", "greater N" is "len >= N"; len is the frame
//     length the filter sees (for a capture file, the captured bytes);
//   - on a capture file "vlan [ID]" tests the 802.1Q/802.1ad tag in the packet
//     and, as in libpcap, shifts every primitive written after it by the 4
//     bytes of the tag (so "vlan and tcp port 80" reads the tagged packet);
//   - on the live socket (Compile) "vlan [ID]" tests the VLAN tag the kernel
//     keeps in skb metadata (SKF_AD_VLAN_TAG_PRESENT / SKF_AD_VLAN_TAG). On
//     Linux the outer 802.1Q tag of every received frame is moved there
//     before packet sockets see it (__netif_receive_skb_core calls
//     skb_vlan_untag), and drivers with VLAN offload put it there on
//     transmit, so the tag is not in the packet bytes and the following
//     primitives keep the untagged offsets. Inner (QinQ) tags that stay in the
//     packet are not matched.
package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	xbpf "golang.org/x/net/bpf"

	"netwatch.dev/sensor/internal/decode"
)

// MaxSnaplen is the largest value a program may return; libpcap's
// MAXIMUM_SNAPLEN. A program returns min(packet length, its return value)
// bytes to the socket, and 0 to drop the packet.
const MaxSnaplen = 262144

// ErrSyntax is wrapped by every error about a malformed expression.
var ErrSyntax = errors.New("bad filter expression")

// ErrLinkType is wrapped by the error of CompileFor for a link type the
// compiler cannot target.
var ErrLinkType = errors.New("link type not supported by the filter compiler")

// Error describes what is wrong with an expression and where.
type Error struct {
	Expr string // the whole expression
	Pos  int    // byte offset of the offending token, or len(Expr) at the end
	Msg  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("filter %q: %s at offset %d", e.Expr, e.Msg, e.Pos)
}

// Unwrap lets errors.Is(err, ErrSyntax) hold.
func (e *Error) Unwrap() error { return ErrSyntax }

// layout is where a target's frames keep what the primitives read.
type layout struct {
	name       string
	typeOff    int    // offset of the 16-bit EtherType-valued protocol field; -1: none
	rawFamily  int    // when typeOff < 0: 0 = the IP version nibble decides, 4 or 6 = always that family
	loopback   int    // BSD loopback: 4-byte AF_ value first; 1 = either byte order (NULL), 2 = network order (LOOP)
	nl         uint32 // offset of the network-layer header
	ether      bool   // Ethernet: MAC addresses at 0 and 6, "vlan" available
	kernelVLAN bool   // the outer VLAN tag is in skb metadata, not in the packet
}

var (
	liveEthernet = layout{name: "Ethernet", typeOff: 12, nl: 14, ether: true, kernelVLAN: true}
	fileLayouts  = map[decode.LinkType]layout{
		decode.LinkEthernet:  {name: "Ethernet", typeOff: 12, nl: 14, ether: true},
		decode.LinkLinuxSLL:  {name: "Linux cooked (SLL)", typeOff: 14, nl: 16},
		decode.LinkLinuxSLL2: {name: "Linux cooked v2 (SLL2)", typeOff: 0, nl: 20},
		decode.LinkRaw:       {name: "raw IP", typeOff: -1},
		decode.LinkRawDLT12:  {name: "raw IP", typeOff: -1},
		decode.LinkRawDLT14:  {name: "raw IP", typeOff: -1},
		decode.LinkIPv4:      {name: "raw IPv4", typeOff: -1, rawFamily: 4},
		decode.LinkIPv6:      {name: "raw IPv6", typeOff: -1, rawFamily: 6},
		decode.LinkNull:      {name: "BSD loopback (NULL)", typeOff: -1, loopback: 1, nl: 4},
		decode.LinkLoop:      {name: "OpenBSD loopback (LOOP)", typeOff: -1, loopback: 2, nl: 4},
	}
)

// Compile compiles expr into a program for the live AF_PACKET socket on an
// Ethernet link that returns snaplen for matching packets and 0 for the
// others. snaplen 0 means MaxSnaplen. An empty (or all-space) expression
// matches every packet.
func Compile(expr string, snaplen uint32) ([]xbpf.Instruction, error) {
	return compile(expr, snaplen, liveEthernet)
}

// CompileFor is Compile for the frames of a capture file of link type lt, as
// libpcap compiles for a savefile: offsets follow the link header and VLAN
// tags are read from the packet. The program uses no kernel extension, so it
// runs in x/net/bpf's VM. A link type it cannot target is an error wrapping
// ErrLinkType.
func CompileFor(expr string, snaplen uint32, lt decode.LinkType) ([]xbpf.Instruction, error) {
	lay, ok := fileLayouts[lt]
	if !ok {
		return nil, fmt.Errorf("filter %q: %w: %d (supported: Ethernet 1, Linux cooked SLL 113 and SLL2 276, raw IP 12, 14, 101, 228, 229, BSD loopback 0, 108)", expr, ErrLinkType, lt)
	}
	return compile(expr, snaplen, lay)
}

func compile(expr string, snaplen uint32, lay layout) ([]xbpf.Instruction, error) {
	if snaplen == 0 || snaplen > MaxSnaplen {
		snaplen = MaxSnaplen
	}
	if strings.TrimSpace(expr) == "" {
		return []xbpf.Instruction{xbpf.RetConstant{Val: snaplen}}, nil
	}
	p := &parser{expr: expr, lay: lay}
	if err := p.lex(); err != nil {
		return nil, err
	}
	n, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		t := p.toks[p.i]
		if t.s == "&" || t.s == "|" {
			return nil, p.errf(t.pos, "unexpected %q (use %q; a single one is a bitwise operator in PROTO[OFF] & MASK)", t.s, t.s+t.s)
		}
		return nil, p.errf(t.pos, "unexpected %q", t.s)
	}
	g := &gen{}
	accept, reject := g.newLabel(), g.newLabel()
	g.node(n, accept, reject)
	g.place(accept)
	g.emit(xbpf.RetConstant{Val: snaplen})
	g.place(reject)
	g.emit(xbpf.RetConstant{Val: 0})
	prog, err := g.resolve()
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", expr, err)
	}
	return prog, nil
}

// Assemble is Compile followed by assembling into the raw form the kernel
// takes (struct sock_filter).
func Assemble(expr string, snaplen uint32) ([]xbpf.RawInstruction, error) {
	prog, err := Compile(expr, snaplen)
	if err != nil {
		return nil, err
	}
	raw, err := xbpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("filter %q: assemble: %w", expr, err)
	}
	return raw, nil
}

// ---- lexer / parser ----

type token struct {
	s   string
	pos int
}

type parser struct {
	expr string
	toks []token
	i    int
	lay  layout // current offsets: "vlan" on a capture file moves them by 4
}

func (p *parser) errf(pos int, format string, args ...any) error {
	return &Error{Expr: p.expr, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) lex() error {
	s := p.expr
	for i := 0; i < len(s); {
		c := s[i]
		two := ""
		if i+1 < len(s) {
			two = s[i : i+2]
		}
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case two == "&&" || two == "||" || two == "==" || two == "!=" || two == "<=" || two == ">=":
			p.toks = append(p.toks, token{two, i})
			i += 2
		case strings.IndexByte("()![]&|=<>", c) >= 0:
			p.toks = append(p.toks, token{s[i : i+1], i})
			i++
		case isWordChar(c) || c == '\\':
			j := i + 1
			for j < len(s) && isWordChar(s[j]) {
				j++
			}
			p.toks = append(p.toks, token{s[i:j], i})
			i = j
		default:
			return p.errf(i, "unexpected character %q", c)
		}
	}
	return nil
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == ':' || c == '/' || c == '_' || c == '-' || c == '%'
}

func (p *parser) peek() (token, bool) {
	if p.i < len(p.toks) {
		return p.toks[p.i], true
	}
	return token{pos: len(p.expr)}, false
}

func (p *parser) peekIs(ss ...string) bool {
	t, ok := p.peek()
	if !ok {
		return false
	}
	for _, s := range ss {
		if t.s == s {
			return true
		}
	}
	return false
}

func (p *parser) next() (token, bool) {
	t, ok := p.peek()
	if ok {
		p.i++
	}
	return t, ok
}

// expect consumes the next token, which must be s.
func (p *parser) expect(s, after string) error {
	t, ok := p.next()
	if !ok {
		return p.errf(t.pos, "expression ends where %q was expected after %q", s, after)
	}
	if t.s != s {
		return p.errf(t.pos, "expected %q after %q, got %q", s, after, t.s)
	}
	return nil
}

type node interface{}

type (
	andNode struct{ l, r node }
	orNode  struct{ l, r node }
	notNode struct{ x node }
	// testNode runs ops (loads and ALU operations) and compares the
	// accumulator with val (cond, JumpEqual by default).
	testNode struct {
		ops  []xbpf.Instruction
		cond xbpf.JumpTest
		val  uint32
	}
	// constNode is a test whose answer is known at compile time (e.g. "ip6"
	// on a raw IPv4 link).
	constNode bool
)

func (p *parser) parseExpr() (node, error) {
	l, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for p.peekIs("or", "||") {
		p.i++
		r, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
	return l, nil
}

func (p *parser) parseTerm() (node, error) {
	l, err := p.parseFactor()
	if err != nil {
		return nil, err
	}
	for p.peekIs("and", "&&") {
		p.i++
		r, err := p.parseFactor()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *parser) parseFactor() (node, error) {
	t, ok := p.next()
	if !ok {
		return nil, p.errf(t.pos, "expression ends where a primitive was expected")
	}
	switch t.s {
	case "not", "!":
		x, err := p.parseFactor()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	case "(":
		x, err := p.parseExpr()
		if err != nil {
			return nil, err
		}
		c, ok := p.next()
		if !ok || c.s != ")" {
			return nil, p.errf(c.pos, "missing %q to close %q at offset %d", ")", "(", t.pos)
		}
		return x, nil
	}
	return p.parsePrimitive(t)
}

const (
	dirAny = iota
	dirSrc
	dirDst
)

// address families a host/net primitive matches.
const (
	famIP = 1 << iota
	famIP6
	famARP
	famRARP
	famAny = famIP | famIP6 | famARP | famRARP
)

const (
	etIP   = 0x0800
	etARP  = 0x0806
	etRARP = 0x8035
	etIP6  = 0x86dd
)

var protoNames = map[string]uint32{
	"icmp": 1, "igmp": 2, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51,
	"icmp6": 58, "pim": 103, "vrrp": 112, "sctp": 132,
}

// constNames are tcpdump's named constants for tcp[], icmp[] comparisons.
var constNames = map[string]uint32{
	"tcpflags": 13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
	"icmptype": 0, "icmpcode": 1,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
}

func (p *parser) parsePrimitive(t token) (node, error) {
	switch t.s {
	case "ip", "ip6", "arp", "rarp":
		fam := map[string]int{"ip": famIP, "ip6": famIP6, "arp": famARP, "rarp": famRARP}[t.s]
		switch {
		case p.peekIs("[") && (t.s == "ip" || t.s == "ip6"):
			return p.parseAccess(t)
		case p.peekIs("proto") && (t.s == "ip" || t.s == "ip6"):
			p.i++
			pr, err := p.parseProto()
			if err != nil {
				return nil, err
			}
			if t.s == "ip" {
				return p.ip4Proto(pr), nil
			}
			return p.ip6Proto(pr), nil
		case p.peekIs("src", "dst", "host", "net"):
			return p.parseHostNet(fam)
		}
		return p.linkProto(map[string]uint32{"ip": etIP, "ip6": etIP6, "arp": etARP, "rarp": etRARP}[t.s]), nil
	case "icmp":
		if p.peekIs("[") {
			return p.parseAccess(t)
		}
		return p.ip4Proto(1), nil
	case "icmp6":
		return p.ip6Proto(58), nil
	case "tcp", "udp", "sctp":
		proto := protoNames[t.s]
		switch {
		case p.peekIs("["):
			return p.parseAccess(t)
		case p.peekIs("port", "portrange", "src", "dst"):
			dir := p.parseDir()
			return p.parsePortKind(t.s, dir, []uint32{proto})
		}
		return orNode{p.ip4Proto(proto), p.ip6Proto(proto)}, nil
	case "proto":
		pr, err := p.parseProto()
		if err != nil {
			return nil, err
		}
		return orNode{p.ip4Proto(pr), p.ip6Proto(pr)}, nil
	case "ether":
		return p.parseEther(t)
	case "vlan":
		return p.parseVLAN(t)
	case "less", "greater":
		n, err := p.parseNumber("length")
		if err != nil {
			return nil, err
		}
		cond := xbpf.JumpLessOrEqual
		if t.s == "greater" {
			cond = xbpf.JumpGreaterOrEqual
		}
		return testNode{ops: []xbpf.Instruction{xbpf.LoadExtension{Num: xbpf.ExtLen}}, cond: cond, val: n}, nil
	case "len":
		return p.parseAccess(t)
	case "src", "dst", "host", "net", "port", "portrange":
		p.i-- // re-read the direction / kind
		if p.peekIs("src", "dst") {
			dir := p.parseDir()
			if p.peekIs("port", "portrange") {
				return p.parsePortKind(t.s, dir, []uint32{6, 17, 132})
			}
			p.i--
		} else if p.peekIs("port", "portrange") {
			return p.parsePortKind(t.s, dirAny, []uint32{6, 17, 132})
		}
		return p.parseHostNet(famAny)
	}
	switch t.s {
	case "and", "or", "&&", "||", ")", "&", "|", "=", "==", "!=", "<", "<=", ">", ">=", "[", "]":
		return nil, p.errf(t.pos, "expected a primitive, got %q", t.s)
	}
	if _, err := netip.ParseAddr(t.s); err == nil {
		return nil, p.errf(t.pos, "bare address %q: write %q", t.s, "host "+t.s)
	}
	return nil, p.errf(t.pos, "unknown primitive %q (supported: ip ip6 arp rarp tcp udp sctp icmp icmp6 host net port portrange proto src dst ether vlan less greater, PROTO[OFF:SIZE] comparisons, and/or/not)", t.s)
}

func (p *parser) parseDir() int {
	t, _ := p.peek()
	switch t.s {
	case "src":
		p.i++
		return dirSrc
	case "dst":
		p.i++
		return dirDst
	}
	return dirAny
}

// parsePortKind reads "port N" or "portrange N-M" (the direction is read).
func (p *parser) parsePortKind(after string, dir int, protos []uint32) (node, error) {
	kw, ok := p.next()
	if !ok {
		return nil, p.errf(kw.pos, "expression ends where %q or %q was expected after %q", "port", "portrange", after)
	}
	switch kw.s {
	case "port":
		port, err := p.parsePort()
		if err != nil {
			return nil, err
		}
		return p.portMatch(protos, dir, port, port), nil
	case "portrange":
		t, ok := p.next()
		if !ok {
			return nil, p.errf(t.pos, "expression ends where a port range like 1024-2047 was expected")
		}
		a, b, found := strings.Cut(t.s, "-")
		lo, err1 := strconv.ParseUint(a, 10, 16)
		hi, err2 := strconv.ParseUint(b, 10, 16)
		if !found || err1 != nil || err2 != nil {
			return nil, p.errf(t.pos, "port range %q is not N-M with numbers in 0-65535", t.s)
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		return p.portMatch(protos, dir, uint32(lo), uint32(hi)), nil
	}
	return nil, p.errf(kw.pos, "expected %q or %q after %q, got %q", "port", "portrange", after, kw.s)
}

// parseHostNet reads [dir] ("host" ADDR | "net" CIDR) for the families fam.
func (p *parser) parseHostNet(fam int) (node, error) {
	dir := p.parseDir()
	kw, ok := p.next()
	if !ok {
		return nil, p.errf(kw.pos, "expression ends where %q, %q or %q was expected", "host", "net", "port")
	}
	var pf netip.Prefix
	switch kw.s {
	case "host":
		a, err := p.parseAddr()
		if err != nil {
			return nil, err
		}
		pf = netip.PrefixFrom(a, a.BitLen())
	case "net":
		var err error
		if pf, err = p.parsePrefix(); err != nil {
			return nil, err
		}
	default:
		if fam == famAny {
			return nil, p.errf(kw.pos, "expected %q, %q, %q or %q, got %q", "host", "net", "port", "portrange", kw.s)
		}
		return nil, p.errf(kw.pos, "expected %q or %q, got %q", "host", "net", kw.s)
	}
	if pf.Addr().Is4() && fam&(famIP|famARP|famRARP) == 0 || pf.Addr().Is6() && fam&famIP6 == 0 {
		return nil, p.errf(kw.pos, "%s address %s does not fit the protocol qualifier", kw.s, pf.Addr())
	}
	return p.prefixMatch(pf, dir, fam), nil
}

func (p *parser) parsePort() (uint32, error) {
	t, ok := p.next()
	if !ok {
		return 0, p.errf(t.pos, "expression ends where a port number was expected")
	}
	n, err := strconv.ParseUint(t.s, 10, 16)
	if err != nil {
		return 0, p.errf(t.pos, "port %q is not a number in 0-65535 (service names are not supported)", t.s)
	}
	return uint32(n), nil
}

// parseNumber reads a decimal, 0x hex or 0 octal number (what names).
func (p *parser) parseNumber(what string) (uint32, error) {
	t, ok := p.next()
	if !ok {
		return 0, p.errf(t.pos, "expression ends where a %s was expected", what)
	}
	return p.number(t, what)
}

func (p *parser) number(t token, what string) (uint32, error) {
	n, err := strconv.ParseUint(t.s, 0, 32)
	if err != nil || strings.ContainsAny(t.s, "_oObB") {
		return 0, p.errf(t.pos, "%s %q is not a number (decimal, 0x hex or 0 octal, at most 32 bits)", what, t.s)
	}
	return uint32(n), nil
}

// parseProto reads the protocol after "proto": a number or a name.
func (p *parser) parseProto() (uint32, error) {
	t, ok := p.next()
	if !ok {
		return 0, p.errf(t.pos, "expression ends where a protocol number or name was expected")
	}
	if v, ok := protoNames[strings.TrimPrefix(t.s, `\`)]; ok {
		return v, nil
	}
	n, err := strconv.ParseUint(t.s, 0, 8)
	if err != nil || strings.ContainsAny(t.s, "_oObB") {
		return 0, p.errf(t.pos, "protocol %q is not a number in 0-255 or one of tcp udp sctp icmp icmp6 igmp gre esp ah pim vrrp", t.s)
	}
	return uint32(n), nil
}

func (p *parser) parseAddr() (netip.Addr, error) {
	t, ok := p.next()
	if !ok {
		return netip.Addr{}, p.errf(t.pos, "expression ends where an address was expected")
	}
	a, err := netip.ParseAddr(t.s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, p.errf(t.pos, "host %q is not an IPv4 or IPv6 address (host names are not resolved)", t.s)
	}
	return a.Unmap(), nil
}

func (p *parser) parsePrefix() (netip.Prefix, error) {
	t, ok := p.next()
	if !ok {
		return netip.Prefix{}, p.errf(t.pos, "expression ends where a network was expected")
	}
	pf, err := netip.ParsePrefix(t.s)
	if err != nil {
		if a, err2 := netip.ParseAddr(t.s); err2 == nil && a.Zone() == "" {
			return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
		}
		return netip.Prefix{}, p.errf(t.pos, "net %q is not a CIDR prefix like 10.0.0.0/8 or fd00::/8", t.s)
	}
	if pf.Addr().Is4In6() {
		if pf.Bits() < 96 {
			return netip.Prefix{}, p.errf(t.pos, "net %q mixes IPv4-mapped and IPv6 bits", t.s)
		}
		pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
	}
	return pf.Masked(), nil
}

// parseEther reads what follows "ether": [dir] [host] MAC, proto N, or [OFF:SIZE].
func (p *parser) parseEther(t token) (node, error) {
	if !p.lay.ether {
		return nil, p.errf(t.pos, "%q needs an Ethernet link, not %s", "ether", p.lay.name)
	}
	if p.peekIs("[") {
		return p.parseAccess(t)
	}
	if p.peekIs("proto") {
		p.i++
		n, ok := p.peek()
		if ok {
			switch strings.TrimPrefix(n.s, `\`) {
			case "ip", "ip6", "arp", "rarp":
				p.i++
				return p.linkProto(map[string]uint32{"ip": etIP, "ip6": etIP6, "arp": etARP, "rarp": etRARP}[strings.TrimPrefix(n.s, `\`)]), nil
			}
		}
		v, err := p.parseNumber("EtherType")
		if err != nil {
			return nil, err
		}
		if v <= 1500 || v > 0xffff {
			return nil, p.errf(n.pos, "ether proto %q: only EtherType values 1501-65535 are supported (802.3 length / LLC frames are not)", n.s)
		}
		return p.linkProto(v), nil
	}
	dir := p.parseDir()
	if p.peekIs("host") {
		p.i++
	}
	m, ok := p.next()
	if !ok {
		return nil, p.errf(m.pos, "expression ends where a MAC address was expected")
	}
	mac, err := net.ParseMAC(m.s)
	if err != nil || len(mac) != 6 {
		return nil, p.errf(m.pos, "ether address %q is not a MAC address like 02:00:00:00:00:01", m.s)
	}
	at := func(off uint32) node {
		return andNode{
			testNode{ops: []xbpf.Instruction{ld(off+2, 4)}, val: uint32(mac[2])<<24 | uint32(mac[3])<<16 | uint32(mac[4])<<8 | uint32(mac[5])},
			testNode{ops: []xbpf.Instruction{ld(off, 2)}, val: uint32(mac[0])<<8 | uint32(mac[1])},
		}
	}
	return either(at(6), at(0), dir), nil
}

// parseVLAN reads "vlan [ID]".
func (p *parser) parseVLAN(t token) (node, error) {
	if !p.lay.ether {
		return nil, p.errf(t.pos, "%q needs an Ethernet link, not %s", "vlan", p.lay.name)
	}
	var id uint64
	hasID := false
	if n, ok := p.peek(); ok {
		if v, err := strconv.ParseUint(n.s, 10, 16); err == nil {
			p.i++
			if v > 4095 {
				return nil, p.errf(n.pos, "vlan id %d out of range 0-4095", v)
			}
			id, hasID = v, true
		}
	}
	if p.lay.kernelVLAN {
		present := testNode{ops: []xbpf.Instruction{xbpf.LoadExtension{Num: xbpf.ExtVLANTagPresent}}, val: 1}
		if !hasID {
			return present, nil
		}
		return andNode{present, testNode{
			ops: []xbpf.Instruction{xbpf.LoadExtension{Num: xbpf.ExtVLANTag}, and(0x0fff)},
			val: uint32(id),
		}}, nil
	}
	// In the packet, as libpcap does for a savefile: a tag's TPID where the
	// EtherType would be, and every later primitive 4 bytes further on.
	off := uint32(p.lay.typeOff)
	var n node = orNode{p.typeIs(off, 0x8100), orNode{p.typeIs(off, 0x88a8), p.typeIs(off, 0x9100)}}
	if hasID {
		n = andNode{n, testNode{ops: []xbpf.Instruction{ld(off+2, 2), and(0x0fff)}, val: uint32(id)}}
	}
	p.lay.typeOff += 4
	p.lay.nl += 4
	return n, nil
}

// parseAccess reads PROTO[OFF:SIZE] [& MASK] RELOP VALUE, or len RELOP VALUE
// (t is PROTO or len).
func (p *parser) parseAccess(t token) (node, error) {
	var (
		guard node
		ops   []xbpf.Instruction
	)
	if t.s == "len" {
		ops = []xbpf.Instruction{xbpf.LoadExtension{Num: xbpf.ExtLen}}
	} else {
		p.i++ // "["
		ot, ok := p.next()
		if !ok {
			return nil, p.errf(ot.pos, "expression ends where an offset was expected after %q", t.s+"[")
		}
		offS, sizeS, hasSize := strings.Cut(ot.s, ":")
		off, err := p.number(token{offS, ot.pos}, "offset")
		if v, ok := constNames[offS]; ok {
			off, err = v, nil
		}
		if err != nil {
			return nil, err
		}
		size := uint32(1)
		if hasSize {
			if size, err = p.number(token{sizeS, ot.pos + len(offS) + 1}, "size"); err != nil {
				return nil, err
			}
			if size != 1 && size != 2 && size != 4 {
				return nil, p.errf(ot.pos+len(offS)+1, "size %q must be 1, 2 or 4", sizeS)
			}
		}
		if err := p.expect("]", t.s+"["+ot.s); err != nil {
			return nil, err
		}
		if off > MaxSnaplen {
			return nil, p.errf(ot.pos, "offset %d is beyond the largest frame (%d)", off, MaxSnaplen)
		}
		nl := p.lay.nl
		switch t.s {
		case "ether":
			ops = []xbpf.Instruction{ld(off, int(size))}
			guard = constNode(true)
		case "ip":
			guard = p.linkProto(etIP)
			ops = []xbpf.Instruction{ld(nl+off, int(size))}
		case "ip6":
			guard = p.linkProto(etIP6)
			ops = []xbpf.Instruction{ld(nl+off, int(size))}
		default: // tcp udp sctp icmp: IPv4 first fragments, after the IP header
			guard = andNode{p.ip4Proto(protoNames[t.s]), p.firstFragment()}
			ops = []xbpf.Instruction{xbpf.LoadMemShift{Off: nl}, xbpf.LoadIndirect{Off: nl + off, Size: int(size)}}
		}
	}
	if p.peekIs("&") {
		p.i++
		m, err := p.parseConst()
		if err != nil {
			return nil, err
		}
		ops = append(ops, and(m))
	}
	rt, ok := p.next()
	if !ok {
		return nil, p.errf(rt.pos, "expression ends where a comparison (=, !=, <, <=, >, >=) was expected")
	}
	cond, ok := map[string]xbpf.JumpTest{
		"=": xbpf.JumpEqual, "==": xbpf.JumpEqual, "!=": xbpf.JumpNotEqual,
		"<": xbpf.JumpLessThan, "<=": xbpf.JumpLessOrEqual, ">": xbpf.JumpGreaterThan, ">=": xbpf.JumpGreaterOrEqual,
	}[rt.s]
	if !ok {
		return nil, p.errf(rt.pos, "expected a comparison (=, !=, <, <=, >, >=) or & MASK, got %q (only PROTO[OFF:SIZE] [& MASK] OP VALUE is supported)", rt.s)
	}
	v, err := p.parseConst()
	if err != nil {
		return nil, err
	}
	test := testNode{ops: ops, cond: cond, val: v}
	if guard == nil {
		return test, nil
	}
	return andNode{guard, test}, nil
}

// parseConst reads NUMBER, NAME or "(" const { "|" const } ")".
func (p *parser) parseConst() (uint32, error) {
	t, ok := p.next()
	if !ok {
		return 0, p.errf(t.pos, "expression ends where a number was expected")
	}
	if t.s == "(" {
		var v uint32
		for {
			c, err := p.parseConst()
			if err != nil {
				return 0, err
			}
			v |= c
			n, ok := p.next()
			if ok && n.s == ")" {
				return v, nil
			}
			if !ok || n.s != "|" {
				return 0, p.errf(n.pos, "expected %q or %q in a constant", "|", ")")
			}
		}
	}
	if v, ok := constNames[t.s]; ok {
		return v, nil
	}
	return p.number(t, "value")
}

// ---- primitives in terms of tests ----

func ld(off uint32, size int) xbpf.Instruction { return xbpf.LoadAbsolute{Off: off, Size: size} }

func and(m uint32) xbpf.Instruction { return xbpf.ALUOpConstant{Op: xbpf.ALUOpAnd, Val: m} }

func (p *parser) typeIs(off, t uint32) node {
	return testNode{ops: []xbpf.Instruction{ld(off, 2)}, val: t}
}

// linkProto tests the link layer's protocol (an EtherType value).
func (p *parser) linkProto(t uint32) node {
	if p.lay.typeOff >= 0 {
		return p.typeIs(uint32(p.lay.typeOff), t)
	}
	if p.lay.loopback != 0 {
		// The AF_ values the decoder takes: AF_INET 2; AF_INET6 10 (Linux),
		// 24 (NetBSD, OpenBSD), 28 (FreeBSD), 30 (Darwin). NULL is in the
		// writer's byte order, LOOP in network order.
		afs := map[uint32][]uint32{etIP: {2}, etIP6: {10, 24, 28, 30}}[t]
		var alts []node
		for _, af := range afs {
			alts = append(alts, testNode{ops: []xbpf.Instruction{ld(0, 4)}, val: af})
			if p.lay.loopback == 1 {
				alts = append(alts, testNode{ops: []xbpf.Instruction{ld(0, 4)}, val: af << 24})
			}
		}
		if len(alts) == 0 {
			return constNode(false)
		}
		return anyOf(alts)
	}
	switch p.lay.rawFamily {
	case 4:
		return constNode(t == etIP)
	case 6:
		return constNode(t == etIP6)
	}
	version := map[uint32]uint32{etIP: 0x40, etIP6: 0x60}
	if v, ok := version[t]; ok {
		return testNode{ops: []xbpf.Instruction{ld(0, 1), and(0xf0)}, val: v}
	}
	return constNode(false)
}

func (p *parser) ip4Proto(pr uint32) node {
	return andNode{p.linkProto(etIP), testNode{ops: []xbpf.Instruction{ld(p.lay.nl+9, 1)}, val: pr}}
}

// ip6Proto is libpcap's "ip6 proto": the fixed header's Next Header, or a
// fragment header's right after it.
func (p *parser) ip6Proto(pr uint32) node {
	nh := func(off uint32, v uint32) node { return testNode{ops: []xbpf.Instruction{ld(p.lay.nl+off, 1)}, val: v} }
	return andNode{p.linkProto(etIP6), orNode{nh(6, pr), andNode{nh(6, 44), nh(40, pr)}}}
}

func (p *parser) firstFragment() node {
	return testNode{ops: []xbpf.Instruction{ld(p.lay.nl+6, 2), and(0x1fff)}, val: 0}
}

func either(a, b node, dir int) node {
	switch dir {
	case dirSrc:
		return a
	case dirDst:
		return b
	}
	return orNode{a, b}
}

func anyOf(ns []node) node {
	n := ns[0]
	for _, m := range ns[1:] {
		n = orNode{n, m}
	}
	return n
}

// inRange tests lo <= A <= hi after ops.
func inRange(ops []xbpf.Instruction, lo, hi uint32) node {
	if lo == hi {
		return testNode{ops: ops, val: lo}
	}
	return andNode{testNode{ops: ops, cond: xbpf.JumpGreaterOrEqual, val: lo}, testNode{cond: xbpf.JumpLessOrEqual, val: hi}}
}

func (p *parser) portMatch(protos []uint32, dir int, lo, hi uint32) node {
	nl := p.lay.nl
	var v4p, v6p []node
	for _, pr := range protos {
		v4p = append(v4p, testNode{ops: []xbpf.Instruction{ld(nl+9, 1)}, val: pr})
		v6p = append(v6p, testNode{ops: []xbpf.Instruction{ld(nl+6, 1)}, val: pr})
	}
	// IPv4: X = 4*(IHL) via ldxb 4*([nl]&0xf); ports at [x+nl], [x+nl+2].
	hdr := xbpf.LoadMemShift{Off: nl}
	v4 := andNode{andNode{andNode{p.linkProto(etIP), anyOf(v4p)}, p.firstFragment()},
		either(
			inRange([]xbpf.Instruction{hdr, xbpf.LoadIndirect{Off: nl, Size: 2}}, lo, hi),
			inRange([]xbpf.Instruction{hdr, xbpf.LoadIndirect{Off: nl + 2, Size: 2}}, lo, hi), dir)}
	// IPv6: fixed 40-byte header, ports at nl+40 and nl+42.
	v6 := andNode{andNode{p.linkProto(etIP6), anyOf(v6p)},
		either(
			inRange([]xbpf.Instruction{ld(nl+40, 2)}, lo, hi),
			inRange([]xbpf.Instruction{ld(nl+42, 2)}, lo, hi), dir)}
	return orNode{v4, v6}
}

// prefixMatch tests the source and/or destination address of the families
// in fam (IPv4 prefixes: IPv4, ARP, RARP; IPv6 prefixes: IPv6).
func (p *parser) prefixMatch(pf netip.Prefix, dir, fam int) node {
	nl := p.lay.nl
	if pf.Addr().Is4() {
		a := pf.Addr().As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		mask := uint32(0)
		if pf.Bits() > 0 {
			mask = ^uint32(0) << (32 - pf.Bits())
		}
		t := func(off uint32) node {
			if mask == 0 { // 0.0.0.0/0: any address (and no load, as libpcap's optimizer leaves it)
				return constNode(true)
			}
			ops := []xbpf.Instruction{ld(off, 4)}
			if mask != ^uint32(0) {
				ops = append(ops, and(mask))
			}
			return testNode{ops: ops, val: v & mask}
		}
		var alts []node
		if fam&famIP != 0 {
			alts = append(alts, andNode{p.linkProto(etIP), either(t(nl+12), t(nl+16), dir)})
		}
		// ARP/RARP for IPv4 over Ethernet: sender address at 14, target at 24.
		var arp []node
		if fam&famARP != 0 {
			arp = append(arp, p.linkProto(etARP))
		}
		if fam&famRARP != 0 {
			arp = append(arp, p.linkProto(etRARP))
		}
		if len(arp) > 0 {
			alts = append(alts, andNode{anyOf(arp), either(t(nl+14), t(nl+24), dir)})
		}
		return anyOf(alts)
	}
	a := pf.Addr().As16()
	t := func(base uint32) node {
		var n node
		for w := 0; w < 4; w++ {
			bits := pf.Bits() - 32*w
			if bits <= 0 {
				break
			}
			mask := ^uint32(0)
			if bits < 32 {
				mask = ^uint32(0) << (32 - bits)
			}
			v := uint32(a[4*w])<<24 | uint32(a[4*w+1])<<16 | uint32(a[4*w+2])<<8 | uint32(a[4*w+3])
			ops := []xbpf.Instruction{ld(base+uint32(4*w), 4)}
			if mask != ^uint32(0) {
				ops = append(ops, and(mask))
			}
			tn := testNode{ops: ops, val: v & mask}
			if n == nil {
				n = tn
			} else {
				n = andNode{n, tn}
			}
		}
		if n == nil { // ::/0
			return constNode(true)
		}
		return n
	}
	return andNode{p.linkProto(etIP6), either(t(nl+8), t(nl+24), dir)}
}

// ---- code generation ----
//
// Each node is generated with a "true" and a "false" label: control reaches
// the true label iff the node matches. Labels are resolved to the forward
// skips of classic BPF conditional jumps (at most 255) at the end.

type label int

type gen struct {
	prog   []xbpf.Instruction
	jumps  []pendingJump
	labels []int // label -> pc, -1 until placed
}

type pendingJump struct {
	pc     int
	jt, jf label // jt only for an unconditional jump (always)
	always bool
	cond   xbpf.JumpTest
	val    uint32
}

func (g *gen) newLabel() label {
	g.labels = append(g.labels, -1)
	return label(len(g.labels) - 1)
}

func (g *gen) place(l label) { g.labels[l] = len(g.prog) }

func (g *gen) emit(i xbpf.Instruction) { g.prog = append(g.prog, i) }

func (g *gen) node(n node, t, f label) {
	switch n := n.(type) {
	case andNode:
		m := g.newLabel()
		g.node(n.l, m, f)
		g.place(m)
		g.node(n.r, t, f)
	case orNode:
		m := g.newLabel()
		g.node(n.l, t, m)
		g.place(m)
		g.node(n.r, t, f)
	case notNode:
		g.node(n.x, f, t)
	case constNode:
		to := f
		if n {
			to = t
		}
		g.jumps = append(g.jumps, pendingJump{pc: len(g.prog), jt: to, always: true})
		g.emit(nil) // patched in resolve
	case testNode:
		for _, op := range n.ops {
			g.emit(op)
		}
		g.jumps = append(g.jumps, pendingJump{pc: len(g.prog), jt: t, jf: f, cond: n.cond, val: n.val})
		g.emit(nil) // patched in resolve
	default:
		panic(fmt.Sprintf("bpf: unknown node %T", n))
	}
}

func (g *gen) resolve() ([]xbpf.Instruction, error) {
	if len(g.prog) > 4096 {
		return nil, fmt.Errorf("expression too complex: %d instructions exceed the kernel's 4096 (BPF_MAXINSNS)", len(g.prog))
	}
	for _, j := range g.jumps {
		skip := func(l label) (uint8, error) {
			d := g.labels[l] - (j.pc + 1)
			if d < 0 || d > 255 {
				return 0, fmt.Errorf("expression too complex: jump of %d instructions exceeds classic BPF's 255", d)
			}
			return uint8(d), nil
		}
		if j.always {
			g.prog[j.pc] = xbpf.Jump{Skip: uint32(g.labels[j.jt] - (j.pc + 1))}
			continue
		}
		st, err := skip(j.jt)
		if err != nil {
			return nil, err
		}
		sf, err := skip(j.jf)
		if err != nil {
			return nil, err
		}
		g.prog[j.pc] = xbpf.JumpIf{Cond: j.cond, Val: j.val, SkipTrue: st, SkipFalse: sf}
	}
	return g.prog, nil
}
