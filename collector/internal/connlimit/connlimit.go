// Package connlimit caps the connections a listener keeps open per client
// address, so that one address cannot take every file descriptor of the process
// (and with them the service of every other client).
package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"netwatch.dev/common/flagconfig"
)

// Limits are the caps of one listener; 0 turns a cap off.
type Limits struct {
	// PerIP caps the connections open at once from one remote address. An IPv6
	// client counts by its /64: one host usually holds a whole /64.
	PerIP int
	// Loopback caps those from one loopback address (a process on this host, or a
	// reverse proxy in front of the collector): higher, as a proxy carries many
	// clients, but a local process can flood too.
	Loopback int
}

// Check validates l; errors name the field.
func (l Limits) Check() error {
	switch {
	case l.PerIP < 0:
		return flagconfig.Fieldf("PerIP", "%d must not be negative (0 turns the cap off)", l.PerIP)
	case l.Loopback < 0:
		return flagconfig.Fieldf("Loopback", "%d must not be negative (0 turns the cap off)", l.Loopback)
	}
	return nil
}

// Refusal describes a connection closed at accept because its address was at its cap.
type Refusal struct {
	Remote   net.Addr
	Open     int  // connections open from that address (the cap)
	Loopback bool // the loopback cap applied
}

// Listener is a net.Listener that closes, at once, a connection from an address
// that already has its cap of connections open; Accept never returns those.
type Listener struct {
	net.Listener
	limits  Limits
	refused func(Refusal)

	mu      sync.Mutex
	open    map[netip.Prefix]int
	refusal atomic.Uint64
}

// Wrap caps l's connections by limits. refused, if not nil, is called (on the
// accepting goroutine, before the connection is closed) for each one refused.
func Wrap(l net.Listener, limits Limits, refused func(Refusal)) *Listener {
	return &Listener{Listener: l, limits: limits, refused: refused, open: map[netip.Prefix]int{}}
}

// Key is the address a connection from addr counts against (an IPv6 address by its
// /64), and whether it is a loopback address. ok is false for a non-IP address.
func Key(addr net.Addr) (k netip.Prefix, loopback, ok bool) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Prefix{}, false, false
	}
	ip := ap.Addr().Unmap().WithZone("")
	if ip.Is4() || ip.IsLoopback() {
		return netip.PrefixFrom(ip, ip.BitLen()), ip.IsLoopback(), true
	}
	p, _ := ip.Prefix(64)
	return p, false, true
}

// Accept waits for the next connection its address's cap allows.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		k, loopback, ok := Key(c.RemoteAddr())
		limit := l.limits.PerIP
		if loopback {
			limit = l.limits.Loopback
		}
		if !ok || limit <= 0 {
			return c, nil
		}
		l.mu.Lock()
		n := l.open[k]
		if n >= limit {
			l.mu.Unlock()
			l.refusal.Add(1)
			if l.refused != nil {
				l.refused(Refusal{Remote: c.RemoteAddr(), Open: n, Loopback: loopback})
			}
			c.Close()
			continue
		}
		l.open[k] = n + 1
		l.mu.Unlock()
		return &conn{Conn: c, l: l, key: k}, nil
	}
}

// Refused is the number of connections refused so far.
func (l *Listener) Refused() uint64 { return l.refusal.Load() }

// Open is the number of connections open now from addr's address (its /64 for IPv6).
func (l *Listener) Open(addr net.Addr) int {
	k, _, ok := Key(addr)
	if !ok {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[k]
}

func (l *Listener) release(k netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[k]--; l.open[k] <= 0 {
		delete(l.open, k)
	}
}

// conn gives its place back once, on its first Close (also when hijacked by an
// HTTP handler, which closes the same conn).
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Prefix
	once sync.Once
}

// CloseWrite half-closes the connection when the underlying one can (TCP):
// net/http does so before closing a connection it refused a request on (an
// oversized header), so that the client reads the answer rather than a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}
