//go:build linux

package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"netwatch.dev/sensor/internal/testnet"
)

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
		// A liveness bound, not a speed one: Close wakes the workers within a
		// TickInterval; 10 s means it hung.
		if d := time.Since(begin); d > 10*time.Second {
			t.Errorf("Close took %v: the workers did not wake (TickInterval %v)", d, cfg.TickInterval)
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
	n := testnet.New(t)
	r := newRecorder()
	before := time.Now().UnixNano()
	c := start(t, testConfig(n.Host), r)

	const udpCount, udpSize = 40, 100
	n.UDPEcho(t, n.PeerIP, 9000)
	sport := testnet.UDPExchange(t, n.PeerIP, 9000, udpCount, udpSize)
	const pings = 10
	testnet.Ping(t, n.PeerIP, pings)
	const tcpBytes = 300_000
	n.TCPExchange(t, 9001, tcpBytes)

	isUDP := func(p pkt) bool {
		return p.proto == 17 && (p.sport == uint16(sport) && p.dport == 9000 || p.sport == 9000 && p.dport == uint16(sport))
	}
	isICMP := func(p pkt) bool { return p.proto == 1 }
	tcpSent := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		sum := 0
		for _, p := range r.pkts {
			if p.proto == 6 && p.dport == 9001 && p.dst == n.PeerIP {
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
	testnet.Ping(t, n.PeerIP, 5)
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
	testnet.IP(t, "link", "set", n.Host, "down")
	if s := c.Stats(); s.Up || s.Running {
		t.Errorf("after link down: Up %v Running %v, want both false", s.Up, s.Running)
	}
	testnet.IP(t, "link", "set", n.Host, "up")
	waitFor(t, "interface up", func() bool { s := c.Stats(); return s.Up && s.Running })
	// The worker survives the ENETDOWN the kernel reports, and captures again.
	testnet.Ping(t, n.PeerIP, 1)
	waitFor(t, "ping after link up", func() bool { return r.count(isICMP) >= 2*pings+12 })
}

// TestLiveInterfaceDeleted: a worker whose interface is deleted under it ends Run
// with an error naming that (its socket will never receive again), and Close
// still works.
func TestLiveInterfaceDeleted(t *testing.T) {
	n := testnet.New(t)
	r := newRecorder()
	cfg := testConfig(n.Host)
	cfg.TickInterval = time.Second // the longest: a worker that missed the error would wait on, tick after tick
	c, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer c.Close()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background(), r.newHandler) }()
	testnet.Ping(t, n.PeerIP, 2)
	waitFor(t, "2 pings", func() bool { return r.count(func(p pkt) bool { return p.proto == 1 }) >= 4 })
	testnet.IP(t, "link", "del", n.Host)
	select {
	case err := <-runErr:
		if err == nil || !strings.Contains(err.Error(), "is gone") {
			t.Fatalf("Run after the interface was deleted: %v, want an error saying it is gone", err)
		}
		t.Logf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("Run still waiting 5 s after its interface was deleted")
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestLiveTicksWhenIdle(t *testing.T) {
	n := testnet.New(t)
	r := newRecorder()
	cfg := testConfig(n.Host)
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
	n := testnet.New(t)
	r := newRecorder()
	cfg := testConfig(n.Host)
	cfg.Filter = "udp"
	c := start(t, cfg, r)
	n.UDPEcho(t, n.PeerIP, 9000)
	testnet.Ping(t, n.PeerIP, 5)
	testnet.UDPExchange(t, n.PeerIP, 9000, 10, 64)
	testnet.Ping(t, n.PeerIP, 5)
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
	n := testnet.New(t)
	r := newRecorder()
	cfg := testConfig(n.Host)
	cfg.Snaplen = 64
	start(t, cfg, r)
	n.UDPEcho(t, n.PeerIP, 9000)
	testnet.UDPExchange(t, n.PeerIP, 9000, 5, 500)
	isUDP := func(p pkt) bool { return p.proto == 17 }
	waitFor(t, "10 UDP frames", func() bool { return r.count(isUDP) >= 10 })
	if got := r.count(func(p pkt) bool { return isUDP(p) && p.capt == 64 && p.wireLen == 14+20+8+500 }); got != 10 {
		t.Errorf("snaplen 64: %d of 10 UDP frames captured 64 bytes with wire length %d", got, 14+20+8+500)
	}
}

func TestLiveFanout(t *testing.T) {
	n := testnet.New(t)
	r := newRecorder()
	cfg := testConfig(n.Host)
	cfg.Workers = 2
	cfg.Filter = "udp"
	c := start(t, cfg, r)
	n.UDPEcho(t, n.PeerIP, 9000)
	const flows, perFlow = 32, 3
	ports := map[uint16]bool{}
	for i := 0; i < flows; i++ {
		ports[uint16(testnet.UDPExchange(t, n.PeerIP, 9000, perFlow, 32))] = true
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
	n := testnet.New(t)
	r := newRecorder()
	r.stall = make(chan struct{})
	cfg := testConfig(n.Host)
	cfg.BlockSize, cfg.NumBlocks, cfg.FrameSize = 4096, 2, 2048 // 8 KiB ring
	cfg.Filter = "udp"
	c := start(t, cfg, r)
	n.UDPEcho(t, n.PeerIP, 9000)
	testnet.UDPExchange(t, n.PeerIP, 9000, 1, 32) // resolves ARP; its frames fill the first block
	conn, err := net.Dial("udp4", netip.AddrPortFrom(n.PeerIP, 9000).String())
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
	n := testnet.New(t)
	r42, r43 := newRecorder(), newRecorder()
	cfg := testConfig(n.Host)
	cfg.Filter = "vlan 42 and udp" // checks the kernel-only VLAN extensions too
	start(t, cfg, r42)
	cfg.Filter = "vlan 43"
	start(t, cfg, r43)

	hostIf, err := net.InterfaceByName(n.Host)
	if err != nil {
		t.Fatal(err)
	}
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
	copy(ip[12:16], []byte{10, n.Subnet[0], n.Subnet[1], 6})
	copy(ip[16:20], []byte{10, n.Subnet[0], n.Subnet[1], 5})
	binary.BigEndian.PutUint16(ip[20:], 4242)
	binary.BigEndian.PutUint16(ip[22:], 4243)
	binary.BigEndian.PutUint16(ip[24:], 8+payload)
	const count = 10
	sendFromPeer(t, n, frame, count)
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
	n := testnet.New(t)
	hv, pv := n.Host+".42", n.Peer+".42"
	out, err := exec.Command("ip", "link", "add", "link", n.Host, "name", hv, "type", "vlan", "id", "42").CombinedOutput()
	if err != nil && strings.Contains(string(out), "Unknown device type") {
		t.Skipf("this kernel has no 802.1Q support (CONFIG_VLAN_8021Q); TestLiveVLAN covers the ring's VLAN path: %s", out)
	} else if err != nil {
		t.Fatalf("ip link add %s: %v: %s", hv, err, out)
	}
	testnet.IP(t, "-n", n.NS, "link", "add", "link", n.Peer, "name", pv, "type", "vlan", "id", "42")
	hostIP := netip.AddrFrom4([4]byte{10, n.Subnet[0], n.Subnet[1], 5})
	peerIP := netip.AddrFrom4([4]byte{10, n.Subnet[0], n.Subnet[1], 6})
	testnet.IP(t, "addr", "add", hostIP.String()+"/30", "dev", hv)
	testnet.IP(t, "-n", n.NS, "addr", "add", peerIP.String()+"/30", "dev", pv)
	testnet.IP(t, "link", "set", hv, "up")
	testnet.IP(t, "-n", n.NS, "link", "set", pv, "up")

	r := newRecorder()
	cfg := testConfig(n.Host)
	cfg.Filter = "vlan 42 and udp"
	start(t, cfg, r)
	n.UDPEcho(t, peerIP, 9042)
	testnet.UDPExchange(t, peerIP, 9042, 5, 80)
	waitFor(t, "10 tagged UDP frames", func() bool { return r.count(func(pkt) bool { return true }) >= 10 })
	if got := r.count(func(p pkt) bool {
		return p.vlanValid && p.vlan == 42 && p.etherType == 0x0800 && p.proto == 17 && p.wireLen == 14+20+8+80
	}); got != 10 {
		t.Errorf("%d of 10 frames had VLAN 42 from the ring header and an untagged IPv4/UDP frame", got)
	}
}

func TestLiveOpenErrors(t *testing.T) {
	testnet.RequireRoot(t)
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

// fillBlock lays out a TPACKET_V3 block in ring as the kernel does: block
// header, then frames of frameLen bytes, each after its tpacket3_hdr and
// sockaddr_ll, 16-byte aligned. Frame i gets sll_pkttype pkttypes[i %
// len(pkttypes)] and its first data byte is byte(i). It fills at most max
// frames (all that fit if max is 0), marks the block TP_STATUS_USER, and
// returns the number of frames.
func fillBlock(ring []byte, frameLen, max int, pkttypes ...uint8) int {
	clear(ring)
	rec := (frameSllHdrLen + frameLen + 15) &^ 15
	off, num := blockHdrLen, 0
	for off+rec <= len(ring) && (max == 0 || num < max) {
		h := ring[off:]
		ne.PutUint32(h[frameNextOff:], uint32(rec))
		ne.PutUint32(h[frameSnaplenOff:], uint32(frameLen))
		ne.PutUint32(h[frameLenOff:], uint32(frameLen))
		ne.PutUint16(h[frameMacOff:], frameSllHdrLen)
		h[framePkttypeOff] = pkttypes[num%len(pkttypes)]
		h[frameSllHdrLen] = byte(num)
		off += rec
		num++
	}
	ne.PutUint32(ring[off-rec+frameNextOff:], 0) // the last frame
	ne.PutUint32(ring[blockNumPktsOff:], uint32(num))
	ne.PutUint32(ring[blockFirstPktOff:], blockHdrLen)
	ne.PutUint32(ring[blockStatusOff:], unix.TP_STATUS_USER)
	return num
}

// firstBytes records the first data byte of every frame handed over.
type firstBytes []byte

func (f *firstBytes) Frame(data []byte, wireLen int, ts int64, vlan uint16, vlanValid bool) {
	*f = append(*f, data[0])
}
func (f *firstBytes) Tick(int64) {}

// TestReadBlockPacketTypes: every packet type is handed over once, except the
// outgoing copy on a loopback socket, which is skipped and counted as such,
// wherever it falls in the block (first, middle, last frame).
func TestReadBlockPacketTypes(t *testing.T) {
	types := []uint8{unix.PACKET_OUTGOING, unix.PACKET_HOST, unix.PACKET_BROADCAST,
		unix.PACKET_MULTICAST, unix.PACKET_OTHERHOST, unix.PACKET_OUTGOING}
	for _, loopback := range []bool{false, true} {
		ring := make([]byte, 4096)
		w := &worker{ring: ring, blockSize: len(ring), numBlocks: 1, loopback: loopback}
		if n := fillBlock(ring, 60, len(types), types...); n != len(types) {
			t.Fatalf("fillBlock: %d frames, want %d", n, len(types))
		}
		var got firstBytes
		if !w.readBlock(&got) {
			t.Fatal("readBlock: block not ready")
		}
		want, skipped := []byte{0, 1, 2, 3, 4, 5}, uint64(0)
		if loopback {
			want, skipped = []byte{1, 2, 3, 4}, 2
		}
		if string(got) != string(want) {
			t.Errorf("loopback %v: frames %v handed over, want %v", loopback, []byte(got), want)
		}
		if s := w.stats(); s.Frames != uint64(len(want)) || s.WireBytes != 60*uint64(len(want)) || s.Skipped != skipped || s.Blocks != 1 {
			t.Errorf("loopback %v: stats %+v, want %d frames of 60 bytes, %d skipped, 1 block", loopback, s, len(want), skipped)
		}
		if st := ne.Uint32(ring[blockStatusOff:]); st != unix.TP_STATUS_KERNEL {
			t.Errorf("loopback %v: block status %d after reading, want TP_STATUS_KERNEL", loopback, st)
		}
	}
}

// BenchmarkReadBlock walks a synthetic TPACKET_V3 block of 64-byte frames
// laid out as the kernel does, to measure the per-frame cost of the block
// walk and prove it allocates nothing. The Loopback variant is a socket on lo
// with every other frame the outgoing copy the walk skips.
func BenchmarkReadBlock(b *testing.B) {
	benchReadBlock(b, false, unix.PACKET_HOST)
}

func BenchmarkReadBlockLoopback(b *testing.B) {
	benchReadBlock(b, true, unix.PACKET_OUTGOING, unix.PACKET_HOST)
}

func benchReadBlock(b *testing.B, loopback bool, pkttypes ...uint8) {
	const blockSize, frameLen = 1 << 20, 64
	ring := make([]byte, blockSize)
	w := &worker{ring: ring, blockSize: blockSize, numBlocks: 1, loopback: loopback}
	num := fillBlock(ring, frameLen, 0, pkttypes...)
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

// ---- what is counted, per packet type ----

// udpFrame is an Ethernet/IPv4/UDP frame with payload zero bytes, with a
// valid IP header checksum (br_netfilter drops frames without one) and no UDP
// checksum.
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, payload int) []byte {
	f := make([]byte, 14+20+8+payload)
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+payload))
	copy(ip[12:16], src.AsSlice())
	copy(ip[16:20], dst.AsSlice())
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], uint16(8+payload))
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	sum = sum&0xffff + sum>>16
	sum += sum >> 16
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	return f
}

// sendFromPeer sends count copies of frame out of the namespace end of the
// veth pair through a packet socket, as they are (any destination MAC).
func sendFromPeer(t *testing.T, n *testnet.Net, frame []byte, count int) {
	t.Helper()
	var fd, peerIndex int
	var err error
	n.InNS(t, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(n.Peer); err != nil {
			return
		}
		peerIndex = ifi.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sa := unix.SockaddrLinklayer{Ifindex: peerIndex, Halen: 6}
	copy(sa.Addr[:], frame[0:6])
	for i := 0; i < count; i++ {
		if err := unix.Sendto(fd, frame, 0, &sa); err != nil {
			t.Fatalf("send frame from %s: %v", n.Peer, err)
		}
	}
}

// promiscuous reads IFF_PROMISC (0x100) from /sys/class/net/IF/flags.
func promiscuous(t *testing.T, iface string) bool {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + iface + "/flags")
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 32)
	if err != nil {
		t.Fatalf("flags of %s: %v", iface, err)
	}
	return v&unix.IFF_PROMISC != 0
}

var (
	otherMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x99} // no interface has it
	peerMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x42} // source of the frames sendFromPeer sends
)

// TestLiveLoopbackCountedOnce: the loopback device gives packet sockets every
// packet twice (outgoing, then incoming). 50 datagrams over 127.0.0.1 in a
// fresh namespace must be 50 frames, as tcpdump -i lo counts them, with the
// 50 outgoing copies skipped.
func TestLiveLoopbackCountedOnce(t *testing.T) {
	n := testnet.New(t) // its namespace has lo up and nothing else talking on it
	const port, count, size = 9555, 50, 100
	r := newRecorder()
	cfg := testConfig("lo")
	cfg.Filter = fmt.Sprintf("udp port %d", port)
	var c *Capture
	var err error
	n.InNS(t, func() { c, err = Open(cfg) })
	if err != nil {
		t.Fatalf("Open lo in %s: %v", n.NS, err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(context.Background(), r.newHandler) }()
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if err := <-runErr; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	dump := n.StartTcpdump(t, true, "lo", true, cfg.Filter)

	var recv net.PacketConn
	var send net.Conn
	n.InNS(t, func() {
		if recv, err = net.ListenPacket("udp4", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			return
		}
		send, err = net.Dial("udp4", fmt.Sprintf("127.0.0.1:%d", port))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	defer send.Close()
	buf := make([]byte, size+1)
	for i := 0; i < count; i++ {
		if _, err := send.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
		recv.SetReadDeadline(time.Now().Add(2 * time.Second))
		if k, _, err := recv.ReadFrom(buf); err != nil || k != size {
			t.Fatalf("datagram %d over lo: %d bytes, %v", i, k, err)
		}
	}
	all := func(pkt) bool { return true }
	waitFor(t, "the datagrams' frames", func() bool { return r.count(all) >= count })
	tcpdump := dump.Stop(t, count)
	if got := r.count(all); got != count || tcpdump != count {
		t.Errorf("%d datagrams sent over lo: capture counted %d frames, tcpdump %d; want %d each", count, got, tcpdump, count)
	}
	wantLen := 14 + 20 + 8 + size
	if got := r.count(func(p pkt) bool { return p.proto == 17 && p.dport == port && p.wireLen == wantLen }); got != count {
		t.Errorf("%d of %d frames were the UDP datagrams of %d bytes", got, count, wantLen)
	}
	s := c.Stats()
	if s.Frames != count || s.Skipped != count {
		t.Errorf("Stats: %d frames, %d skipped; want %d handed over and the %d outgoing copies skipped", s.Frames, s.Skipped, count, count)
	}
	if s.Packets != 2*count || s.Drops != 0 {
		t.Errorf("Stats: kernel packets %d, drops %d; want %d (both copies) and none", s.Packets, s.Drops, 2*count)
	}
}

// TestLivePacketTypes checks what a capture on a veth end counts, with and
// without promiscuous mode, against tcpdump on the same interface: frames it
// sends (PACKET_OUTGOING) and receives (PACKET_HOST) once each, broadcasts,
// and frames to another MAC (PACKET_OTHERHOST), which veth delivers whatever
// the mode: it does not filter by destination MAC. Nothing is skipped.
func TestLivePacketTypes(t *testing.T) {
	testnet.RequireRoot(t)
	for _, promisc := range []bool{true, false} {
		t.Run(fmt.Sprintf("promisc=%v", promisc), func(t *testing.T) {
			n := testnet.New(t)
			r := newRecorder()
			cfg := testConfig(n.Host)
			cfg.Filter, cfg.Promisc = "udp", promisc
			c := start(t, cfg, r)
			if got := promiscuous(t, n.Host); got != promisc {
				t.Fatalf("%s promiscuous %v while the capture is open, want %v", n.Host, got, promisc)
			}
			dump := n.StartTcpdump(t, false, n.Host, promisc, cfg.Filter)

			const exchanges, others, broadcasts = 20, 7, 5
			n.UDPEcho(t, n.PeerIP, 9000)
			sport := testnet.UDPExchange(t, n.PeerIP, 9000, exchanges, 64)
			sendFromPeer(t, n, udpFrame(otherMAC, peerMAC, n.PeerIP, n.HostIP, 4001, 4002, 50), others)
			bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
			sendFromPeer(t, n, udpFrame(bcast, peerMAC, n.PeerIP, netip.AddrFrom4([4]byte{255, 255, 255, 255}), 4003, 4004, 50), broadcasts)

			const want = 2*exchanges + others + broadcasts
			all := func(pkt) bool { return true }
			waitFor(t, "all frames", func() bool { return r.count(all) >= want })
			tcpdump := dump.Stop(t, want)
			time.Sleep(100 * time.Millisecond)
			out := r.count(func(p pkt) bool { return p.src == n.HostIP && p.sport == uint16(sport) })
			in := r.count(func(p pkt) bool { return p.src == n.PeerIP && p.dport == uint16(sport) })
			other := r.count(func(p pkt) bool { return p.sport == 4001 })
			bc := r.count(func(p pkt) bool { return p.sport == 4003 })
			if out != exchanges || in != exchanges || other != others || bc != broadcasts {
				t.Errorf("counted %d sent, %d received, %d to another MAC, %d broadcast; want %d, %d, %d, %d",
					out, in, other, bc, exchanges, exchanges, others, broadcasts)
			}
			if got := r.count(all); got != want || tcpdump != want {
				t.Errorf("capture counted %d frames, tcpdump %d; want %d each", got, tcpdump, want)
			}
			if s := c.Stats(); s.Skipped != 0 || s.Frames != want {
				t.Errorf("Stats: %d frames, %d skipped; want %d and none skipped off loopback", s.Frames, s.Skipped, want)
			}
		})
	}
}

// TestLivePromiscOnBridge: a bridge does filter by MAC. It passes a unicast
// frame for an unknown MAC up to its own device (where the capture listens)
// only when that device is promiscuous (br_handle_frame_finish), so such
// frames are counted with Promisc and not without; broadcasts are counted
// either way. The capture is checked alone first (tcpdump without -p would
// make the bridge promiscuous itself), then against tcpdump, or tcpdump -p,
// on a second round of the same frames.
func TestLivePromiscOnBridge(t *testing.T) {
	n := testnet.New(t)
	br := strings.TrimSuffix(n.Host, "h") + "b"
	out, err := exec.Command("ip", "link", "add", br, "type", "bridge").CombinedOutput()
	if err != nil && strings.Contains(string(out), "Unknown device type") {
		t.Skipf("this kernel has no bridge support (CONFIG_BRIDGE); TestLivePacketTypes covers other-host frames on veth: %s", out)
	} else if err != nil {
		t.Fatalf("ip link add %s type bridge: %v: %s", br, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", br).Run() })
	testnet.IP(t, "link", "set", n.Host, "master", br)
	testnet.IP(t, "link", "set", br, "up")
	const others, broadcasts = 7, 5
	bcast := net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	for _, promisc := range []bool{true, false} {
		t.Run(fmt.Sprintf("promisc=%v", promisc), func(t *testing.T) {
			r := newRecorder()
			cfg := testConfig(br)
			cfg.Filter, cfg.Promisc = "udp", promisc
			start(t, cfg, r)
			if got := promiscuous(t, br); got != promisc {
				t.Fatalf("%s promiscuous %v while the capture is open, want %v", br, got, promisc)
			}
			wantOther := 0
			if promisc {
				wantOther = others
			}
			// round sends the frames from source ports base (to another MAC)
			// and base+2 (broadcast), and returns how many of each the
			// capture counted.
			round := func(base uint16) (other, bc int) {
				sendFromPeer(t, n, udpFrame(otherMAC, peerMAC, n.PeerIP, n.HostIP, base, 4000, 50), others)
				sendFromPeer(t, n, udpFrame(bcast, peerMAC, n.PeerIP, netip.AddrFrom4([4]byte{255, 255, 255, 255}), base+2, 4000, 50), broadcasts)
				isOther := func(p pkt) bool { return p.sport == base }
				isBC := func(p pkt) bool { return p.sport == base+2 }
				waitFor(t, "the frames", func() bool { return r.count(isOther) >= wantOther && r.count(isBC) >= broadcasts })
				time.Sleep(100 * time.Millisecond) // let frames that should not come, if any, arrive
				return r.count(isOther), r.count(isBC)
			}
			if other, bc := round(4001); other != wantOther || bc != broadcasts {
				t.Errorf("capture alone counted %d frames to another MAC, %d broadcasts; want %d, %d", other, bc, wantOther, broadcasts)
			}
			dump := n.StartTcpdump(t, false, br, promisc, cfg.Filter+" and src port (4011 or 4013)")
			other, bc := round(4011)
			if tcpdump := dump.Stop(t, wantOther+broadcasts); other+bc != tcpdump || other != wantOther || bc != broadcasts {
				t.Errorf("with tcpdump running: capture counted %d frames to another MAC and %d broadcasts, tcpdump %d frames; want %d, %d, %d",
					other, bc, tcpdump, wantOther, broadcasts, wantOther+broadcasts)
			}
		})
	}
}
