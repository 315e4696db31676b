package connlimit

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// dialFrom connects to addr from the loopback address src (Linux routes all of
// 127.0.0.0/8 to lo).
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// server accepts on a capped listener and keeps what it accepts, answering one
// byte on each so that the client knows it was accepted.
type server struct {
	lis      *Listener
	mu       sync.Mutex
	accepted []net.Conn
	refusals []Refusal
}

func serve(t *testing.T, limits Limits) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &server{}
	s.lis = Wrap(l, limits, func(r Refusal) { s.mu.Lock(); s.refusals = append(s.refusals, r); s.mu.Unlock() })
	go func() {
		for {
			c, err := s.lis.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted = append(s.accepted, c)
			s.mu.Unlock()
			c.Write([]byte{1})
		}
	}()
	t.Cleanup(func() {
		s.lis.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.accepted {
			c.Close()
		}
	})
	return s
}

// accepted reads the server's byte (accepted) or the end of the connection (refused).
func accepted(t *testing.T, c net.Conn) bool {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := c.Read(make([]byte, 1))
	if n == 1 {
		return true
	}
	var ne net.Error
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "neither accepted nor closed within 10 s")
	return false
}

// TestCapPerAddress: 300 connections from 127.0.0.2 against a cap of 100: the first
// 100 are kept, the other 200 closed at once, each counted and reported; another
// loopback address is not affected; closing a kept one makes room for one more.
func TestCapPerAddress(t *testing.T) {
	const limit, flood = 100, 300
	s := serve(t, Limits{PerIP: 5, Loopback: limit})
	addr := s.lis.Addr().String()
	var conns []net.Conn
	kept := 0
	for range flood {
		c := dialFrom(t, "127.0.0.2", addr)
		conns = append(conns, c)
		if accepted(t, c) {
			kept++
		}
	}
	assert.Equal(t, limit, kept)
	assert.Equal(t, uint64(flood-limit), s.lis.Refused())
	assert.Equal(t, limit, s.lis.Open(conns[0].LocalAddr()))
	s.mu.Lock()
	refusals := slices.Clone(s.refusals)
	s.mu.Unlock()
	require.Equal(t, flood-limit, len(refusals))
	assert.True(t, refusals[0].Loopback)
	assert.Equal(t, limit, refusals[0].Open)
	assert.Equal(t, "127.0.0.2", refusals[0].Remote.(*net.TCPAddr).IP.String())

	assert.True(t, accepted(t, dialFrom(t, "127.0.0.3", addr)), "another address has its own cap")

	// The server closes one of the kept connections: its place is free again.
	s.mu.Lock()
	s.accepted[0].Close()
	s.mu.Unlock()
	require.Eventually(t, func() bool { return s.lis.Open(conns[0].LocalAddr()) == limit-1 }, 10*time.Second, time.Millisecond)
	assert.True(t, accepted(t, dialFrom(t, "127.0.0.2", addr)))
	assert.False(t, accepted(t, dialFrom(t, "127.0.0.2", addr)), "full again")
}

// TestClientCloseGivesThePlaceBack: a client that closes its connection frees its
// place once the server closes its end (as a server does at EOF); a second Close
// does not free another.
func TestClientCloseGivesThePlaceBack(t *testing.T) {
	s := serve(t, Limits{Loopback: 1})
	addr := s.lis.Addr().String()
	c := dialFrom(t, "127.0.0.2", addr)
	require.True(t, accepted(t, c))
	require.False(t, accepted(t, dialFrom(t, "127.0.0.2", addr)))
	c.Close()
	s.mu.Lock()
	sc := s.accepted[0]
	s.mu.Unlock()
	sc.Close()
	sc.Close()
	assert.Equal(t, 0, s.lis.Open(c.LocalAddr()))
	require.True(t, accepted(t, dialFrom(t, "127.0.0.2", addr)))
	assert.Equal(t, 1, s.lis.Open(c.LocalAddr()), "a second Close freed nothing more")
	assert.False(t, accepted(t, dialFrom(t, "127.0.0.2", addr)))
}

// TestZeroIsNoCap: with the caps at 0 nothing is refused.
func TestZeroIsNoCap(t *testing.T) {
	s := serve(t, Limits{})
	for range 50 {
		require.True(t, accepted(t, dialFrom(t, "127.0.0.2", s.lis.Addr().String())))
	}
	assert.Zero(t, s.lis.Refused())
}

func TestKeys(t *testing.T) {
	key := func(s string) netip.Prefix {
		k, _, ok := Key(net.TCPAddrFromAddrPort(netip.MustParseAddrPort(s)))
		require.True(t, ok, s)
		return k
	}
	assert.Equal(t, key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:2:ffff::9]:2"), "one IPv6 /64")
	assert.NotEqual(t, key("[2001:db8:1:2::1]:1"), key("[2001:db8:1:3::1]:1"))
	assert.Equal(t, key("192.0.2.1:1"), key("[::ffff:192.0.2.1]:2"), "IPv4-mapped is IPv4")
	assert.NotEqual(t, key("192.0.2.1:1"), key("192.0.2.2:1"))
	_, loop, _ := Key(&net.TCPAddr{IP: net.IPv6loopback})
	assert.True(t, loop)
	_, loop, _ = Key(&net.TCPAddr{IP: net.ParseIP("127.0.0.9")})
	assert.True(t, loop)
	_, _, ok := Key(&net.UnixAddr{Name: "/run/x.sock", Net: "unix"})
	assert.False(t, ok, "a unix socket is not capped")
}

func TestLimitsCheckNamesTheField(t *testing.T) {
	assert.ErrorContains(t, Limits{PerIP: -1}.Check(), "PerIP: ")
	assert.ErrorContains(t, Limits{Loopback: -1}.Check(), "Loopback: ")
	assert.NoError(t, Limits{}.Check())
}

// TestCloseWriteReachesTheConnection: a capped connection half-closes as the TCP
// one would (net/http relies on it to deliver a refusal such as a 431 before it
// closes): the client reads the end while its own side still writes.
func TestCloseWriteReachesTheConnection(t *testing.T) {
	s := serve(t, Limits{Loopback: 1})
	c := dialFrom(t, "127.0.0.2", s.lis.Addr().String())
	require.True(t, accepted(t, c))
	s.mu.Lock()
	sc := s.accepted[0]
	s.mu.Unlock()
	cw, ok := sc.(interface{ CloseWrite() error })
	require.True(t, ok)
	require.NoError(t, cw.CloseWrite())
	assert.False(t, accepted(t, c), "the client reads the end")
	_, err := c.Write([]byte("still open"))
	assert.NoError(t, err)
	n, err := sc.Read(make([]byte, 32))
	assert.NoError(t, err)
	assert.Equal(t, len("still open"), n)
}
