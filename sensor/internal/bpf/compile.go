// Package bpf compiles a documented subset of the tcpdump / pcap-filter(7)
// expression language into classic BPF, in pure Go (the sensor is built with
// CGO_ENABLED=0, so libpcap's compiler is not available).
//
// The programs are meant for a Linux AF_PACKET socket (SO_ATTACH_FILTER) on an
// Ethernet link: the packet starts at the Ethernet header, and the outer VLAN
// tag is NOT in the packet but in the skb metadata (see "vlan" below).
//
// Grammar (case-sensitive keywords, as in tcpdump):
//
//	expr      = term { ("or" | "||") term }
//	term      = factor { ("and" | "&&") factor }
//	factor    = ("not" | "!") factor | "(" expr ")" | primitive
//	primitive = "ip" | "ip6" | "arp"
//	          | "tcp" | "udp" | "sctp" | "icmp" | "icmp6"
//	          | ("tcp" | "udp" | "sctp") [dir] "port" PORT
//	          | [dir] "host" ADDR          (IPv4 or IPv6 literal; no DNS)
//	          | [dir] "net" CIDR           (e.g. 10.0.0.0/8, fd00::/8)
//	          | [dir] "port" PORT          (TCP, UDP or SCTP)
//	          | "vlan" [ID]
//	dir       = "src" | "dst"
//
// Semantics follow libpcap where they overlap, with these documented limits:
//   - "host" and "net" match IPv4/IPv6 only (libpcap also matches ARP/RARP);
//   - IPv6 upper-layer protocol and ports are read from the fixed header's
//     Next Header field: extension headers are not walked (as libpcap does
//     for "port");
//   - IPv4 ports are only matched in the first fragment (fragment offset 0),
//     as libpcap does;
//   - "vlan [ID]" tests the VLAN tag the kernel keeps in skb metadata
//     (SKF_AD_VLAN_TAG_PRESENT / SKF_AD_VLAN_TAG). On Linux the outer 802.1Q
//     tag of every received frame is moved there before packet sockets see it
//     (__netif_receive_skb_core calls skb_vlan_untag), and drivers with VLAN
//     offload put it there on transmit, so the tag is not in the packet bytes
//     and the following primitives keep the untagged offsets. Inner (QinQ)
//     tags that stay in the packet are not matched.
package bpf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	xbpf "golang.org/x/net/bpf"
)

// MaxSnaplen is the largest value a program may return; libpcap's
// MAXIMUM_SNAPLEN. A program returns min(packet length, its return value)
// bytes to the socket, and 0 to drop the packet.
const MaxSnaplen = 262144

// ErrSyntax is wrapped by every error about a malformed expression.
var ErrSyntax = errors.New("bad filter expression")

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

// Compile compiles expr into a program that returns snaplen for matching
// packets and 0 for the others. snaplen 0 means MaxSnaplen. An empty (or
// all-space) expression matches every packet.
func Compile(expr string, snaplen uint32) ([]xbpf.Instruction, error) {
	if snaplen == 0 || snaplen > MaxSnaplen {
		snaplen = MaxSnaplen
	}
	if strings.TrimSpace(expr) == "" {
		return []xbpf.Instruction{xbpf.RetConstant{Val: snaplen}}, nil
	}
	p := &parser{expr: expr}
	if err := p.lex(); err != nil {
		return nil, err
	}
	n, err := p.parseExpr()
	if err != nil {
		return nil, err
	}
	if p.i < len(p.toks) {
		return nil, p.errf(p.toks[p.i].pos, "unexpected %q", p.toks[p.i].s)
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
}

func (p *parser) errf(pos int, format string, args ...any) error {
	return &Error{Expr: p.expr, Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) lex() error {
	s := p.expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '!':
			p.toks = append(p.toks, token{s[i : i+1], i})
			i++
		case c == '&' || c == '|':
			if i+1 >= len(s) || s[i+1] != c {
				return p.errf(i, "unexpected %q (use %q)", c, string([]byte{c, c}))
			}
			p.toks = append(p.toks, token{s[i : i+2], i})
			i += 2
		case isWordChar(c):
			j := i
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

func (p *parser) next() (token, bool) {
	t, ok := p.peek()
	if ok {
		p.i++
	}
	return t, ok
}

type node interface{}

type (
	andNode struct{ l, r node }
	orNode  struct{ l, r node }
	notNode struct{ x node }
	// testNode runs loads, optionally ANDs the accumulator with mask, and
	// compares it with val (jump-if-equal). It is the only leaf.
	testNode struct {
		loads []xbpf.Instruction
		mask  uint32
		val   uint32
	}
)

func (p *parser) parseExpr() (node, error) {
	l, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || (t.s != "or" && t.s != "||") {
			return l, nil
		}
		p.i++
		r, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		l = orNode{l, r}
	}
}

func (p *parser) parseTerm() (node, error) {
	l, err := p.parseFactor()
	if err != nil {
		return nil, err
	}
	for {
		t, ok := p.peek()
		if !ok || (t.s != "and" && t.s != "&&") {
			return l, nil
		}
		p.i++
		r, err := p.parseFactor()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
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

func (p *parser) parsePrimitive(t token) (node, error) {
	switch t.s {
	case "ip":
		return etherType(0x0800), nil
	case "ip6":
		return etherType(0x86dd), nil
	case "arp":
		return etherType(0x0806), nil
	case "icmp":
		return ip4Proto(1), nil
	case "icmp6":
		return ip6Proto(58), nil
	case "tcp", "udp", "sctp":
		proto := map[string]uint32{"tcp": 6, "udp": 17, "sctp": 132}[t.s]
		if n, ok := p.peek(); ok && (n.s == "port" || n.s == "src" || n.s == "dst") {
			dir, err := p.parseDir()
			if err != nil {
				return nil, err
			}
			kw, _ := p.next()
			if kw.s != "port" {
				return nil, p.errf(kw.pos, "expected %q after %q", "port", t.s)
			}
			port, err := p.parsePort()
			if err != nil {
				return nil, err
			}
			return portMatch([]uint32{proto}, dir, port), nil
		}
		return orNode{ip4Proto(proto), ip6Proto(proto)}, nil
	case "vlan":
		present := testNode{loads: []xbpf.Instruction{xbpf.LoadExtension{Num: xbpf.ExtVLANTagPresent}}, val: 1}
		n, ok := p.peek()
		if !ok {
			return present, nil
		}
		id, err := strconv.ParseUint(n.s, 10, 16)
		if err != nil {
			return present, nil // "vlan and ..." : no id given
		}
		p.i++
		if id > 4095 {
			return nil, p.errf(n.pos, "vlan id %d out of range 0-4095", id)
		}
		return andNode{present, testNode{
			loads: []xbpf.Instruction{xbpf.LoadExtension{Num: xbpf.ExtVLANTag}},
			mask:  0x0fff,
			val:   uint32(id),
		}}, nil
	case "src", "dst", "host", "net", "port":
		p.i-- // re-read the direction / kind
		dir, err := p.parseDir()
		if err != nil {
			return nil, err
		}
		kw, ok := p.next()
		if !ok {
			return nil, p.errf(kw.pos, "expression ends where %q, %q or %q was expected", "host", "net", "port")
		}
		switch kw.s {
		case "host":
			a, err := p.parseAddr()
			if err != nil {
				return nil, err
			}
			return prefixMatch(netip.PrefixFrom(a, a.BitLen()), dir), nil
		case "net":
			pf, err := p.parsePrefix()
			if err != nil {
				return nil, err
			}
			return prefixMatch(pf, dir), nil
		case "port":
			port, err := p.parsePort()
			if err != nil {
				return nil, err
			}
			return portMatch([]uint32{6, 17, 132}, dir, port), nil
		}
		return nil, p.errf(kw.pos, "expected %q, %q or %q, got %q", "host", "net", "port", kw.s)
	}
	if _, err := netip.ParseAddr(t.s); err == nil {
		return nil, p.errf(t.pos, "bare address %q: write %q", t.s, "host "+t.s)
	}
	return nil, p.errf(t.pos, "unknown primitive %q (supported: ip ip6 arp tcp udp sctp icmp icmp6 host net port src dst vlan, and/or/not)", t.s)
}

func (p *parser) parseDir() (int, error) {
	t, _ := p.peek()
	switch t.s {
	case "src":
		p.i++
		return dirSrc, nil
	case "dst":
		p.i++
		return dirDst, nil
	}
	return dirAny, nil
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
		if a, err2 := netip.ParseAddr(t.s); err2 == nil {
			return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
		}
		return netip.Prefix{}, p.errf(t.pos, "net %q is not a CIDR prefix like 10.0.0.0/8 or fd00::/8", t.s)
	}
	if pf.Addr().Is4In6() {
		pf = netip.PrefixFrom(pf.Addr().Unmap(), pf.Bits()-96)
	}
	return pf.Masked(), nil
}

// ---- primitives in terms of tests ----
//
// Offsets are from the start of the Ethernet header (14 bytes, no tag: see
// the package comment on VLAN). IPv4 header at 14, IPv6 header at 14.

func ld(off uint32, size int) xbpf.Instruction { return xbpf.LoadAbsolute{Off: off, Size: size} }

func etherType(t uint32) node { return testNode{loads: []xbpf.Instruction{ld(12, 2)}, val: t} }

func ip4Proto(p uint32) node {
	return andNode{etherType(0x0800), testNode{loads: []xbpf.Instruction{ld(14+9, 1)}, val: p}}
}

func ip6Proto(p uint32) node {
	return andNode{etherType(0x86dd), testNode{loads: []xbpf.Instruction{ld(14+6, 1)}, val: p}}
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

func portMatch(protos []uint32, dir int, port uint32) node {
	var v4p, v6p []node
	for _, pr := range protos {
		v4p = append(v4p, testNode{loads: []xbpf.Instruction{ld(14+9, 1)}, val: pr})
		v6p = append(v6p, testNode{loads: []xbpf.Instruction{ld(14+6, 1)}, val: pr})
	}
	// IPv4: X = 4*(IHL) via ldxb 4*([14]&0xf); ports at [x+14], [x+16].
	firstFragment := testNode{loads: []xbpf.Instruction{ld(14+6, 2)}, mask: 0x1fff, val: 0}
	hdr := xbpf.LoadMemShift{Off: 14}
	v4 := andNode{andNode{andNode{etherType(0x0800), anyOf(v4p)}, firstFragment},
		either(
			testNode{loads: []xbpf.Instruction{hdr, xbpf.LoadIndirect{Off: 14, Size: 2}}, val: port},
			testNode{loads: []xbpf.Instruction{hdr, xbpf.LoadIndirect{Off: 16, Size: 2}}, val: port}, dir)}
	// IPv6: fixed 40-byte header, ports at 54 and 56.
	v6 := andNode{andNode{etherType(0x86dd), anyOf(v6p)},
		either(
			testNode{loads: []xbpf.Instruction{ld(54, 2)}, val: port},
			testNode{loads: []xbpf.Instruction{ld(56, 2)}, val: port}, dir)}
	return orNode{v4, v6}
}

func prefixMatch(pf netip.Prefix, dir int) node {
	if pf.Bits() == 0 { // 0.0.0.0/0 or ::/0: any packet of that family
		if pf.Addr().Is4() {
			return etherType(0x0800)
		}
		return etherType(0x86dd)
	}
	if pf.Addr().Is4() {
		a := pf.Addr().As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		mask := ^uint32(0) << (32 - pf.Bits())
		t := func(off uint32) node {
			return testNode{loads: []xbpf.Instruction{ld(off, 4)}, mask: maskOrZero(mask), val: v & mask}
		}
		return andNode{etherType(0x0800), either(t(14+12), t(14+16), dir)}
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
			tn := testNode{loads: []xbpf.Instruction{ld(base+uint32(4*w), 4)}, mask: maskOrZero(mask), val: v & mask}
			if n == nil {
				n = tn
			} else {
				n = andNode{n, tn}
			}
		}
		return n
	}
	return andNode{etherType(0x86dd), either(t(14+8), t(14+24), dir)}
}

// maskOrZero turns the all-ones mask into "no mask" (0) for testNode.
func maskOrZero(m uint32) uint32 {
	if m == ^uint32(0) {
		return 0
	}
	return m
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
	jt, jf label
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
	case testNode:
		for _, l := range n.loads {
			g.emit(l)
		}
		if n.mask != 0 {
			g.emit(xbpf.ALUOpConstant{Op: xbpf.ALUOpAnd, Val: n.mask})
		}
		g.jumps = append(g.jumps, pendingJump{pc: len(g.prog), jt: t, jf: f, val: n.val})
		g.emit(nil) // patched in resolve
	default:
		panic(fmt.Sprintf("bpf: unknown node %T", n))
	}
}

func (g *gen) resolve() ([]xbpf.Instruction, error) {
	for _, j := range g.jumps {
		skip := func(l label) (uint8, error) {
			d := g.labels[l] - (j.pc + 1)
			if d < 0 || d > 255 {
				return 0, fmt.Errorf("expression too complex: jump of %d instructions exceeds classic BPF's 255", d)
			}
			return uint8(d), nil
		}
		st, err := skip(j.jt)
		if err != nil {
			return nil, err
		}
		sf, err := skip(j.jf)
		if err != nil {
			return nil, err
		}
		g.prog[j.pc] = xbpf.JumpIf{Cond: xbpf.JumpEqual, Val: j.val, SkipTrue: st, SkipFalse: sf}
	}
	if len(g.prog) > 4096 {
		return nil, fmt.Errorf("expression too complex: %d instructions exceed the kernel's 4096 (BPF_MAXINSNS)", len(g.prog))
	}
	return g.prog, nil
}
