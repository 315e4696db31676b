//go:build linux

// Package testnet gives tests a throwaway network: a network namespace and a veth
// pair, one end in the namespace, removed when the test ends whatever its outcome,
// plus helpers that send real traffic through it. Root only: RequireRoot skips the
// test otherwise (and in -short mode), saying why.
package testnet

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func RequireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("live capture test: skipped with -short; make test-integration runs it")
	}
	if os.Geteuid() != 0 {
		t.Skip("live capture tests need root: CAP_NET_RAW for AF_PACKET and CAP_NET_ADMIN/CAP_SYS_ADMIN to create a network namespace and veth pair (CI runs them as root)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("live capture tests need the ip command (iproute2): %v", err)
	}
}

func IP(t testing.TB, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

type Net struct {
	Host, Peer, NS string     // host end (root namespace), peer end (in NS)
	HostIP, PeerIP netip.Addr // a /30 in 10.0.0.0/8
	Subnet         [2]byte
}

// New creates a namespace and a veth pair with unique names, and
// removes them when the test ends, whatever its outcome.
func New(t testing.TB) *Net {
	t.Helper()
	RequireRoot(t)
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(r[:])
	n := &Net{Host: "nw" + id + "h", Peer: "nw" + id + "p", NS: "nwtest-" + id, Subnet: [2]byte{r[0], r[1]}}
	n.HostIP = netip.AddrFrom4([4]byte{10, r[0], r[1], 1})
	n.PeerIP = netip.AddrFrom4([4]byte{10, r[0], r[1], 2})
	IP(t, "netns", "add", n.NS)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", n.Host).Run()
		_ = exec.Command("ip", "netns", "del", n.NS).Run()
	})
	IP(t, "link", "add", n.Host, "type", "veth", "peer", "name", n.Peer, "netns", n.NS)
	IP(t, "addr", "add", n.HostIP.String()+"/30", "dev", n.Host)
	IP(t, "-n", n.NS, "addr", "add", n.PeerIP.String()+"/30", "dev", n.Peer)
	IP(t, "link", "set", n.Host, "up")
	IP(t, "-n", n.NS, "link", "set", n.Peer, "up")
	IP(t, "-n", n.NS, "link", "set", "lo", "up")
	return n
}

// InNS runs fn on an OS thread switched into the test namespace. Sockets
// created by fn stay in that namespace after the thread switches back.
func (n *Net) InNS(t testing.TB, fn func()) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- err
			return // the locked thread exits with the goroutine
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + n.NS)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.NS, err)
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns back: %w", err)
			return // thread stays in the wrong namespace: let it die
		}
		runtime.UnlockOSThread()
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// UDPEcho starts a UDP echo server in the namespace on peerIP:port.
func (n *Net) UDPEcho(t testing.TB, ip netip.Addr, port int) {
	t.Helper()
	var conn net.PacketConn
	var err error
	n.InNS(t, func() { conn, err = net.ListenPacket("udp4", netip.AddrPortFrom(ip, uint16(port)).String()) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			k, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			conn.WriteTo(buf[:k], from)
		}
	}()
}

// UDPExchange sends count datagrams of size bytes from the root namespace
// to dst:port, one at a time, waiting for each echo.
func UDPExchange(t testing.TB, dst netip.Addr, port, count, size int) (srcPort int) {
	t.Helper()
	c, err := net.Dial("udp4", netip.AddrPortFrom(dst, uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg, buf := make([]byte, size), make([]byte, size+1)
	for i := 0; i < count; i++ {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if k, err := c.Read(buf); err != nil || k != size {
			t.Fatalf("udp echo %d: %d bytes, %v", i, k, err)
		}
	}
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Ping sends count ICMP echo requests to dst and waits for each reply.
func Ping(t testing.TB, dst netip.Addr, count int) {
	t.Helper()
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id := os.Getpid() & 0xffff
	buf := make([]byte, 1500)
	for seq := 0; seq < count; seq++ {
		m := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq, Data: make([]byte, 56)}}
		b, _ := m.Marshal(nil)
		if _, err := c.WriteTo(b, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
			t.Fatal(err)
		}
		for {
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				t.Fatalf("ping %v seq %d: %v", dst, seq, err)
			}
			r, err := icmp.ParseMessage(1, buf[:k])
			if err != nil || from.String() != dst.String() || r.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := r.Body.(*icmp.Echo); ok && e.Seq == seq {
				break
			}
		}
	}
}

// TCPExchange sends size bytes over TCP to a server in the namespace, which
// reads them all and closes.
func (n *Net) TCPExchange(t testing.TB, port, size int) {
	t.Helper()
	var ln net.Listener
	var err error
	n.InNS(t, func() { ln, err = net.Listen("tcp4", netip.AddrPortFrom(n.PeerIP, uint16(port)).String()) })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		k, _ := io.Copy(io.Discard, c)
		c.Close()
		got <- k
	}()
	c, err := net.Dial("tcp4", netip.AddrPortFrom(n.PeerIP, uint16(port)).String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	if k := <-got; k != int64(size) {
		t.Fatalf("tcp server got %d bytes, want %d", k, size)
	}
	io.Copy(io.Discard, c) // wait for the server's FIN
	c.Close()
}
