//go:build linux

package capture

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// ---- test network: a veth pair, one end in a fresh network namespace ----

func requireRoot(t *testing.T) {
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

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

type testNet struct {
	host, peer, ns string     // host end (root namespace), peer end (in ns)
	hostIP, peerIP netip.Addr // a /30 in 10.0.0.0/8
	subnet         [2]byte
}

// newTestNet creates a namespace and a veth pair with unique names, and
// removes them when the test ends, whatever its outcome.
func newTestNet(t *testing.T) *testNet {
	t.Helper()
	requireRoot(t)
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(r[:])
	n := &testNet{host: "nw" + id + "h", peer: "nw" + id + "p", ns: "nwtest-" + id, subnet: [2]byte{r[0], r[1]}}
	n.hostIP = netip.AddrFrom4([4]byte{10, r[0], r[1], 1})
	n.peerIP = netip.AddrFrom4([4]byte{10, r[0], r[1], 2})
	ipCmd(t, "netns", "add", n.ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", n.host).Run()
		_ = exec.Command("ip", "netns", "del", n.ns).Run()
	})
	ipCmd(t, "link", "add", n.host, "type", "veth", "peer", "name", n.peer, "netns", n.ns)
	ipCmd(t, "addr", "add", n.hostIP.String()+"/30", "dev", n.host)
	ipCmd(t, "-n", n.ns, "addr", "add", n.peerIP.String()+"/30", "dev", n.peer)
	ipCmd(t, "link", "set", n.host, "up")
	ipCmd(t, "-n", n.ns, "link", "set", n.peer, "up")
	ipCmd(t, "-n", n.ns, "link", "set", "lo", "up")
	return n
}

// inNS runs fn on an OS thread switched into the test namespace. Sockets
// created by fn stay in that namespace after the thread switches back.
func (n *testNet) inNS(t *testing.T, fn func()) {
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
		target, err := os.Open("/var/run/netns/" + n.ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.ns, err)
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

// udpEcho starts a UDP echo server in the namespace on peerIP:port.
func (n *testNet) udpEcho(t *testing.T, ip netip.Addr, port int) {
	t.Helper()
	var conn net.PacketConn
	var err error
	n.inNS(t, func() { conn, err = net.ListenPacket("udp4", netip.AddrPortFrom(ip, uint16(port)).String()) })
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

// udpExchange sends count datagrams of size bytes from the root namespace
// to dst:port, one at a time, waiting for each echo.
func udpExchange(t *testing.T, dst netip.Addr, port, count, size int) (srcPort int) {
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

// ping sends count ICMP echo requests to dst and waits for each reply.
func ping(t *testing.T, dst netip.Addr, count int) {
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

// tcpExchange sends size bytes over TCP to a server in the namespace, which
// reads them all and closes.
func (n *testNet) tcpExchange(t *testing.T, port, size int) {
	t.Helper()
	var ln net.Listener
	var err error
	n.inNS(t, func() { ln, err = net.Listen("tcp4", netip.AddrPortFrom(n.peerIP, uint16(port)).String()) })
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
	c, err := net.Dial("tcp4", netip.AddrPortFrom(n.peerIP, uint16(port)).String())
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

// ---- a recording handler ----

// pkt is what the test keeps of a frame (parsed minimally).
type pkt struct {
	worker        int
	wireLen, capt int
	ts            int64
	vlan          uint16
	vlanValid     bool
	etherType     uint16
	proto         uint8
	src, dst      netip.Addr
	sport, dport  uint16
	tcpPayload    int
}

type recorder struct {
	mu      sync.Mutex
	pkts    []pkt
	ticks   map[int]int
	stall   chan struct{} // if set, the first Frame blocks until it is closed
	stalled bool
}

func newRecorder() *recorder { return &recorder{ticks: map[int]int{}} }

type recHandler struct {
	r      *recorder
	worker int
}

func (r *recorder) newHandler(worker int) Handler { return &recHandler{r, worker} }

func (h *recHandler) Frame(data []byte, wireLen int, ts int64, vlan uint16, vlanValid bool) {
	if h.r.stall != nil && !h.r.stalled {
		h.r.stalled = true
		<-h.r.stall
	}
	p := pkt{worker: h.worker, wireLen: wireLen, capt: len(data), ts: ts, vlan: vlan, vlanValid: vlanValid}
	if len(data) >= 14 {
		p.etherType = binary.BigEndian.Uint16(data[12:])
	}
	if p.etherType == 0x0800 && len(data) >= 34 {
		ip := data[14:]
		ihl := int(ip[0]&0xf) * 4
		p.proto = ip[9]
		p.src = netip.AddrFrom4([4]byte(ip[12:16]))
		p.dst = netip.AddrFrom4([4]byte(ip[16:20]))
		totLen := int(binary.BigEndian.Uint16(ip[2:]))
		if (p.proto == 6 || p.proto == 17) && len(ip) >= ihl+20 {
			p.sport = binary.BigEndian.Uint16(ip[ihl:])
			p.dport = binary.BigEndian.Uint16(ip[ihl+2:])
			if p.proto == 6 {
				p.tcpPayload = totLen - ihl - int(ip[ihl+12]>>4)*4
			}
		}
	}
	h.r.mu.Lock()
	h.r.pkts = append(h.r.pkts, p)
	h.r.mu.Unlock()
}

func (h *recHandler) Tick(int64) {
	h.r.mu.Lock()
	h.r.ticks[h.worker]++
	h.r.mu.Unlock()
}

func (r *recorder) count(f func(p pkt) bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.pkts {
		if f(p) {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or 5 s pass (frames reach user space at
// the latest BlockTimeout after they were captured).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// start opens a capture and runs it until the test ends.
func start(t *testing.T, cfg Config, r *recorder) *Capture {
	t.Helper()
	c, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background(), r.newHandler) }()
	t.Cleanup(func() {
		begin := time.Now()
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if d := time.Since(begin); d > cfg.TickInterval+200*time.Millisecond {
			t.Errorf("Close took %v, want about TickInterval (%v) at most", d, cfg.TickInterval)
		}
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return c
}

func testConfig(iface string) Config {
	c := DefaultConfig(iface)
	c.BlockSize, c.NumBlocks = 256<<10, 8 // fits 64 KiB GSO frames
	c.TickInterval = 50 * time.Millisecond
	return c
}

// ---- tests ----

func TestLiveCountsTimestampsStats(t *testing.T) {
	n := newTestNet(t)
	r := newRecorder()
	before := time.Now().UnixNano()
	c := start(t, testConfig(n.host), r)

	const udpCount, udpSize = 40, 100
	n.udpEcho(t, n.peerIP, 9000)
	sport := udpExchange(t, n.peerIP, 9000, udpCount, udpSize)
	const pings = 10
	ping(t, n.peerIP, pings)
	const tcpBytes = 300_000
	n.tcpExchange(t, 9001, tcpBytes)

	isUDP := func(p pkt) bool {
		return p.proto == 17 && (p.sport == uint16(sport) && p.dport == 9000 || p.sport == 9000 && p.dport == uint16(sport))
	}
	isICMP := func(p pkt) bool { return p.proto == 1 }
	tcpSent := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		sum := 0
		for _, p := range r.pkts {
			if p.proto == 6 && p.dport == 9001 && p.dst == n.peerIP {
				sum += p.tcpPayload
			}
		}
		return sum
	}
	waitFor(t, "all UDP, ICMP and TCP frames", func() bool {
		return r.count(isUDP) >= 2*udpCount && r.count(isICMP) >= 2*pings && tcpSent() >= tcpBytes
	})
	time.Sleep(100 * time.Millisecond) // let duplicates, if any, arrive
	if got := r.count(isUDP); got != 2*udpCount {
		t.Errorf("UDP frames: got %d, want %d (request + echo each)", got, 2*udpCount)
	}
	wantLen := 14 + 20 + 8 + udpSize
	if got := r.count(func(p pkt) bool { return isUDP(p) && p.wireLen == wantLen && p.capt == wantLen }); got != 2*udpCount {
		t.Errorf("UDP frames of %d bytes (wire and captured): got %d, want %d", wantLen, got, 2*udpCount)
	}
	if got := r.count(isICMP); got != 2*pings {
		t.Errorf("ICMP frames: got %d, want %d", got, 2*pings)
	}
	if got := tcpSent(); got != tcpBytes {
		t.Errorf("TCP payload towards the server: got %d bytes, want %d", got, tcpBytes)
	}
	after := time.Now().UnixNano()
	r.mu.Lock()
	var frames, wire uint64
	for i, p := range r.pkts {
		if p.ts < before || p.ts > after {
			t.Errorf("frame %d: timestamp %v not within the test [%v, %v]", i, time.Unix(0, p.ts), time.Unix(0, before), time.Unix(0, after))
			break
		}
		if p.capt != p.wireLen {
			t.Errorf("frame %d: captured %d of %d bytes, want all (no snaplen)", i, p.capt, p.wireLen)
		}
		frames++
		wire += uint64(p.wireLen)
	}
	r.mu.Unlock()

	s1 := c.Stats()
	if s1.Frames != frames || s1.WireBytes != wire || s1.Bytes != wire {
		t.Errorf("Stats: frames %d, bytes %d, wire bytes %d; handler saw %d frames, %d bytes", s1.Frames, s1.Bytes, s1.WireBytes, frames, wire)
	}
	if s1.Packets < frames || s1.Drops != 0 {
		t.Errorf("Stats: kernel packets %d drops %d, want packets >= %d and no drops", s1.Packets, s1.Drops, frames)
	}
	if !s1.Up || !s1.Running || s1.InterfaceErr != nil || len(s1.Workers) != 1 {
		t.Errorf("Stats: up %v running %v err %v workers %d, want up, running, 1 worker", s1.Up, s1.Running, s1.InterfaceErr, len(s1.Workers))
	}
	// The kernel resets its counters on each read: they must accumulate.
	ping(t, n.peerIP, 5)
	waitFor(t, "5 more pings", func() bool { return r.count(isICMP) >= 2*pings+10 })
	s2 := c.Stats()
	if s2.Packets < s1.Packets+10 {
		t.Errorf("Stats.Packets went from %d to %d after 10 more frames: not accumulated", s1.Packets, s2.Packets)
	}
	r.mu.Lock()
	ticks := r.ticks[0]
	r.mu.Unlock()
	if ticks < 2 {
		t.Errorf("Tick was called %d times, want it every 50 ms", ticks)
	}

	// Interface state: down, then up again.
	ipCmd(t, "link", "set", n.host, "down")
	if s := c.Stats(); s.Up || s.Running {
		t.Errorf("after link down: Up %v Running %v, want both false", s.Up, s.Running)
	}
	ipCmd(t, "link", "set", n.host, "up")
	waitFor(t, "interface up", func() bool { s := c.Stats(); return s.Up && s.Running })
	// The worker survives the ENETDOWN the kernel reports, and captures again.
	ping(t, n.peerIP, 1)
	waitFor(t, "ping after link up", func() bool { return r.count(isICMP) >= 2*pings+12 })
}

func TestLiveTicksWhenIdle(t *testing.T) {
	n := newTestNet(t)
	r := newRecorder()
	cfg := testConfig(n.host)
	cfg.Filter = "udp port 1" // nothing
	start(t, cfg, r)
	time.Sleep(400 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ticks[0] < 5 {
		t.Errorf("idle for 400 ms with TickInterval 50 ms: %d ticks, want >= 5", r.ticks[0])
	}
}

func TestLiveFilterUDP(t *testing.T) {
	n := newTestNet(t)
	r := newRecorder()
	cfg := testConfig(n.host)
	cfg.Filter = "udp"
	c := start(t, cfg, r)
	n.udpEcho(t, n.peerIP, 9000)
	ping(t, n.peerIP, 5)
	udpExchange(t, n.peerIP, 9000, 10, 64)
	ping(t, n.peerIP, 5)
	waitFor(t, "20 UDP frames", func() bool { return r.count(func(p pkt) bool { return p.proto == 17 }) >= 20 })
	time.Sleep(100 * time.Millisecond)
	if got := r.count(func(p pkt) bool { return p.proto != 17 }); got != 0 {
		t.Errorf("filter udp: %d non-UDP frames (ICMP, ARP...) reached the handler", got)
	}
	if s := c.Stats(); s.Packets != uint64(r.count(func(pkt) bool { return true })) {
		t.Errorf("filter udp: kernel counted %d packets, handler got %d: filtered packets must not be counted", s.Packets, r.count(func(pkt) bool { return true }))
	}
}

func TestLiveSnaplen(t *testing.T) {
	n := newTestNet(t)
	r := newRecorder()
	cfg := testConfig(n.host)
	cfg.Snaplen = 64
	start(t, cfg, r)
	n.udpEcho(t, n.peerIP, 9000)
	udpExchange(t, n.peerIP, 9000, 5, 500)
	isUDP := func(p pkt) bool { return p.proto == 17 }
	waitFor(t, "10 UDP frames", func() bool { return r.count(isUDP) >= 10 })
	if got := r.count(func(p pkt) bool { return isUDP(p) && p.capt == 64 && p.wireLen == 14+20+8+500 }); got != 10 {
		t.Errorf("snaplen 64: %d of 10 UDP frames captured 64 bytes with wire length %d", got, 14+20+8+500)
	}
}

func TestLiveFanout(t *testing.T) {
	n := newTestNet(t)
	r := newRecorder()
	cfg := testConfig(n.host)
	cfg.Workers = 2
	cfg.Filter = "udp"
	c := start(t, cfg, r)
	n.udpEcho(t, n.peerIP, 9000)
	const flows, perFlow = 32, 3
	ports := map[uint16]bool{}
	for i := 0; i < flows; i++ {
		ports[uint16(udpExchange(t, n.peerIP, 9000, perFlow, 32))] = true
	}
	waitFor(t, "all UDP frames", func() bool { return r.count(func(pkt) bool { return true }) >= flows*perFlow*2 })
	time.Sleep(100 * time.Millisecond)
	r.mu.Lock()
	perPort := map[uint16]int{}
	workerOf := map[uint16]map[int]bool{}
	perWorker := map[int]int{}
	for _, p := range r.pkts {
		port := p.sport
		if port == 9000 {
			port = p.dport
		}
		perPort[port]++
		if workerOf[port] == nil {
			workerOf[port] = map[int]bool{}
		}
		workerOf[port][p.worker] = true
		perWorker[p.worker]++
	}
	r.mu.Unlock()
	for port := range ports {
		if perPort[port] != 2*perFlow {
			t.Errorf("flow from port %d: seen %d times across workers, want exactly %d", port, perPort[port], 2*perFlow)
		}
		if len(workerOf[port]) != 1 {
			t.Errorf("flow from port %d: seen by workers %v, want one (PACKET_FANOUT_HASH)", port, workerOf[port])
		}
	}
	if len(perWorker) != 2 {
		t.Errorf("frames per worker %v: want both workers to get flows", perWorker)
	}
	s := c.Stats()
	if len(s.Workers) != 2 || s.Frames != s.Workers[0].Frames+s.Workers[1].Frames || s.Frames != uint64(2*flows*perFlow) {
		t.Errorf("Stats: total %d frames, workers %+v, want %d summed over 2 workers", s.Frames, s.Workers, 2*flows*perFlow)
	}
}

func TestLiveDrops(t *testing.T) {
	n := newTestNet(t)
	r := newRecorder()
	r.stall = make(chan struct{})
	cfg := testConfig(n.host)
	cfg.BlockSize, cfg.NumBlocks, cfg.FrameSize = 4096, 2, 2048 // 8 KiB ring
	cfg.Filter = "udp"
	c := start(t, cfg, r)
	n.udpEcho(t, n.peerIP, 9000)
	udpExchange(t, n.peerIP, 9000, 1, 32) // resolves ARP; its frames fill the first block
	conn, err := net.Dial("udp4", netip.AddrPortFrom(n.peerIP, 9000).String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const flood = 2000
	msg := make([]byte, 200)
	for i := 0; i < flood; i++ {
		conn.Write(msg)
	}
	s := c.Stats() // the handler still stalls: the ring is full
	close(r.stall)
	if s.Drops == 0 {
		t.Errorf("a stalled handler and %d datagrams into an 8 KiB ring: Stats.Drops = 0, want > 0 (stats %+v)", flood, s.WorkerStats)
	}
	if s.FreezeQueue == 0 {
		t.Errorf("Stats.FreezeQueue = 0, want > 0 when the ring was full")
	}
	if s.Packets < flood {
		t.Errorf("Stats.Packets = %d, want >= %d (tp_packets includes drops)", s.Packets, flood)
	}
	d := s.Drops
	waitFor(t, "handler to drain", func() bool { return c.Stats().Frames > 0 })
	if s2 := c.Stats(); s2.Drops < d {
		t.Errorf("Stats.Drops went down from %d to %d: not accumulated", d, s2.Drops)
	}
}

// TestLiveVLAN sends 802.1Q-tagged frames (VLAN 42, in the frame bytes)
// from the namespace end through a packet socket. On receive the kernel
// moves the tag into skb metadata (skb_vlan_untag in
// __netif_receive_skb_core), so the capture must report VLAN 42 from the ring
// header and hand over an untagged frame. This needs no 8021q module.
func TestLiveVLAN(t *testing.T) {
	n := newTestNet(t)
	r42, r43 := newRecorder(), newRecorder()
	cfg := testConfig(n.host)
	cfg.Filter = "vlan 42 and udp" // checks the kernel-only VLAN extensions too
	start(t, cfg, r42)
	cfg.Filter = "vlan 43"
	start(t, cfg, r43)

	hostIf, err := net.InterfaceByName(n.host)
	if err != nil {
		t.Fatal(err)
	}
	var fd, peerIndex int
	n.inNS(t, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(n.peer); err != nil {
			return
		}
		peerIndex = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	const payload = 80
	frame := make([]byte, 18+20+8+payload)
	copy(frame[0:6], hostIf.HardwareAddr)
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 0x42})
	binary.BigEndian.PutUint16(frame[12:], 0x8100)
	binary.BigEndian.PutUint16(frame[14:], 42) // PCP 0, DEI 0, VID 42
	binary.BigEndian.PutUint16(frame[16:], 0x0800)
	ip := frame[18:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
	copy(ip[12:16], []byte{10, n.subnet[0], n.subnet[1], 6})
	copy(ip[16:20], []byte{10, n.subnet[0], n.subnet[1], 5})
	binary.BigEndian.PutUint16(ip[20:], 4242)
	binary.BigEndian.PutUint16(ip[22:], 4243)
	binary.BigEndian.PutUint16(ip[24:], 8+payload)
	sa := unix.SockaddrLinklayer{Ifindex: peerIndex, Halen: 6}
	copy(sa.Addr[:], hostIf.HardwareAddr)
	const count = 10
	for i := 0; i < count; i++ {
		if err := unix.Sendto(fd, frame, 0, &sa); err != nil {
			t.Fatalf("send tagged frame: %v", err)
		}
	}
	waitFor(t, "tagged frames", func() bool { return r42.count(func(pkt) bool { return true }) >= count })
	time.Sleep(50 * time.Millisecond)
	if got := r42.count(func(p pkt) bool {
		return p.vlanValid && p.vlan == 42 && p.etherType == 0x0800 && p.proto == 17 && p.sport == 4242 && p.wireLen == 14+20+8+payload
	}); got != count {
		t.Errorf("%d of %d frames had VLAN 42 from the ring header and an untagged IPv4/UDP frame of %d bytes", got, count, 14+20+8+payload)
	}
	if got := r43.count(func(pkt) bool { return true }); got != 0 {
		t.Errorf("filter vlan 43 let %d frames of VLAN 42 through", got)
	}
}

// TestLiveVLANSubinterface sends traffic over real VLAN interfaces on both
// ends of the veth pair. veth offloads the tag (NETIF_F_HW_VLAN_CTAG_TX), so
// it travels in skb metadata both ways.
func TestLiveVLANSubinterface(t *testing.T) {
	n := newTestNet(t)
	hv, pv := n.host+".42", n.peer+".42"
	out, err := exec.Command("ip", "link", "add", "link", n.host, "name", hv, "type", "vlan", "id", "42").CombinedOutput()
	if err != nil && strings.Contains(string(out), "Unknown device type") {
		t.Skipf("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q); TestLiveVLAN covers the ring's VLAN path: %s", out)
	} else if err != nil {
		t.Fatalf("ip link add %s: %v: %s", hv, err, out)
	}
	ipCmd(t, "-n", n.ns, "link", "add", "link", n.peer, "name", pv, "type", "vlan", "id", "42")
	hostIP := netip.AddrFrom4([4]byte{10, n.subnet[0], n.subnet[1], 5})
	peerIP := netip.AddrFrom4([4]byte{10, n.subnet[0], n.subnet[1], 6})
	ipCmd(t, "addr", "add", hostIP.String()+"/30", "dev", hv)
	ipCmd(t, "-n", n.ns, "addr", "add", peerIP.String()+"/30", "dev", pv)
	ipCmd(t, "link", "set", hv, "up")
	ipCmd(t, "-n", n.ns, "link", "set", pv, "up")

	r := newRecorder()
	cfg := testConfig(n.host)
	cfg.Filter = "vlan 42 and udp"
	start(t, cfg, r)
	n.udpEcho(t, peerIP, 9042)
	udpExchange(t, peerIP, 9042, 5, 80)
	waitFor(t, "10 tagged UDP frames", func() bool { return r.count(func(pkt) bool { return true }) >= 10 })
	if got := r.count(func(p pkt) bool {
		return p.vlanValid && p.vlan == 42 && p.etherType == 0x0800 && p.proto == 17 && p.wireLen == 14+20+8+80
	}); got != 10 {
		t.Errorf("%d of 10 frames had VLAN 42 from the ring header and an untagged IPv4/UDP frame", got)
	}
}

func TestLiveOpenErrors(t *testing.T) {
	requireRoot(t)
	_, err := Open(DefaultConfig("nwnosuchif0"))
	if !errors.Is(err, ErrNoInterface) || !strings.Contains(err.Error(), "lo") || !strings.Contains(err.Error(), "nwnosuchif0") {
		t.Errorf("unknown interface: got %v, want ErrNoInterface naming it and listing lo", err)
	}

	// Drop CAP_NET_RAW from this thread only (capabilities are per thread
	// in Linux); the locked thread is discarded when the goroutine ends.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_RAW
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		_, err := Open(DefaultConfig("lo"))
		errc <- err
	}()
	err = <-errc
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("without CAP_NET_RAW: got %v, want ErrPermission", err)
	}
	if !errors.Is(err, unix.EPERM) {
		t.Errorf("without CAP_NET_RAW: %v does not keep the errno", err)
	}
	const want = "netwatch-sensor needs CAP_NET_RAW (run as root or setcap cap_net_raw,cap_net_admin+ep bin/netwatch-sensor)"
	if err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

type countHandler struct{ frames, bytes int }

func (h *countHandler) Frame(data []byte, wireLen int, ts int64, vlan uint16, vlanValid bool) {
	h.frames++
	h.bytes += len(data)
}
func (h *countHandler) Tick(int64) {}

// BenchmarkReadBlock walks a synthetic TPACKET_V3 block of 64-byte frames
// laid out as the kernel does, to measure the per-frame cost of the block
// walk and prove it allocates nothing.
func BenchmarkReadBlock(b *testing.B) {
	const blockSize, frameLen = 1 << 20, 64
	ring := make([]byte, blockSize)
	w := &worker{ring: ring, blockSize: blockSize, numBlocks: 1}
	off, num := blockHdrLen, 0
	first := off
	for {
		rec := (frameHdrLen + 20 + frameLen + 15) &^ 15 // header, sockaddr_ll gap, frame, aligned
		if off+2*rec > blockSize {
			break
		}
		h := ring[off:]
		ne.PutUint32(h[frameNextOff:], uint32(rec))
		ne.PutUint32(h[frameSnaplenOff:], frameLen)
		ne.PutUint32(h[frameLenOff:], frameLen)
		ne.PutUint16(h[frameMacOff:], frameHdrLen+20)
		off += rec
		num++
	}
	ne.PutUint32(ring[blockNumPktsOff:], uint32(num))
	ne.PutUint32(ring[blockFirstPktOff:], uint32(first))
	h := &countHandler{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ne.PutUint32(ring[blockStatusOff:], unix.TP_STATUS_USER)
		if !w.readBlock(h) {
			b.Fatal("block not ready")
		}
	}
	b.ReportMetric(float64(b.N*num)/b.Elapsed().Seconds(), "frames/s")
}
