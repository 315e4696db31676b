//go:build linux

// Command nwxdpgen is a packet generator for the live capture benchmarks: it
// pushes Ethernet/IPv4/UDP frames into a veth (or any device with
// ndo_xdp_xmit) at millions of packets per second, without skb allocation,
// qdisc or veth_xmit on the sending side.
//
// It uses the technique of xdp-tools' xdp-trafficgen: BPF_PROG_RUN of an XDP
// program with BPF_F_TEST_XDP_LIVE_FRAMES (Linux >= 5.18). The kernel runs the
// program `repeat` times on copies of a template frame, in batches of up to
// 256; the program returns XDP_TX (or bpf_redirect to -dev), which the kernel
// turns into ndo_xdp_xmit on -dev. For a veth that queues the frames on the
// peer's XDP ring, and the peer's NAPI poll turns them into skbs that
// AF_PACKET sockets on the peer see. The peer must have NAPI enabled: GRO on
// (`ethtool -K PEER gro on`, Linux >= 5.13) or an XDP program attached to it.
//
// Every frame gets flow n % -flows, n being the program's frame counter:
// source port -sport + (flow & 16383), source address -src + (flow >> 14). The
// IPv4 checksum is recomputed, the UDP checksum is 0 ("none", valid for IPv4).
// The destination MAC defaults to a unicast address that is not the peer's,
// so the peer's stack drops the frames as PACKET_OTHERHOST right after the
// taps instead of running IP/UDP/ICMP on them.
//
// At exit it prints one line:
//
//	generated=N sent=N seconds=S pps=P gen_pps=P dev_tx=N dev_tx_dropped=N peer_rx=N peer_rx_dropped=N lost_before_peer=N
//
// generated counts the frames the program emitted; sent the frames that
// reached the peer (its rx_packets delta, or -dev's tx_packets delta when the
// peer's counters are out of reach); pps = sent/seconds.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	dev, peer, peerNetns string
	count                uint64
	duration             time.Duration
	flows                uint
	size                 int
	srcMAC, dstMAC       string
	srcIP, dstIP         string
	sport, dport         uint
	batch                uint
	chunk                uint
	action               string
	cpu                  int
	quiet                bool
	peerXDPPass          bool
	durationSet          bool
	rate                 float64
}

type result struct {
	generated, sent       uint64
	seconds               float64
	devTx, devTxDropped   uint64
	peerRx, peerRxDropped uint64
	peerKnown             bool
	lostBeforePeer        int64
	peerName              string
}

func (r result) line() string {
	pps := 0.0
	genPPS := 0.0
	if r.seconds > 0 {
		pps = float64(r.sent) / r.seconds
		genPPS = float64(r.generated) / r.seconds
	}
	s := fmt.Sprintf("generated=%d sent=%d seconds=%.3f pps=%.0f gen_pps=%.0f dev_tx=%d dev_tx_dropped=%d",
		r.generated, r.sent, r.seconds, pps, genPPS, r.devTx, r.devTxDropped)
	if r.peerKnown {
		s += fmt.Sprintf(" peer_rx=%d peer_rx_dropped=%d", r.peerRx, r.peerRxDropped)
	} else {
		s += " peer_rx=unknown peer_rx_dropped=unknown"
	}
	s += fmt.Sprintf(" lost_before_peer=%d", r.lostBeforePeer)
	return s
}

// errNothingDelivered: the program ran but no frame reached the peer.
var errNothingDelivered = errors.New("nothing delivered")

func main() {
	var c config
	flag.StringVar(&c.dev, "dev", "", "interface to transmit from (a veth: its peer receives) [required]")
	flag.StringVar(&c.peer, "peer", "", "name of -dev's peer, for its counters (default: found through IFLA_LINK)")
	flag.StringVar(&c.peerNetns, "peer-netns", "", "network namespace of the peer (name under /run/netns or a path), when it is not ours")
	flag.Uint64Var(&c.count, "count", 0, "frames to send (0: run for -duration)")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "how long to send (with -count: only a limit when given)")
	flag.Float64Var(&c.rate, "rate", 0, "pace to at most this many frames/s (0: as fast as possible); the pacer drops early runs inside the program")
	flag.UintVar(&c.flows, "flows", 100000, "distinct 5-tuples, cycled round robin")
	flag.IntVar(&c.size, "size", 64, "frame length without FCS (60..1514)")
	flag.StringVar(&c.srcMAC, "src-mac", "", "source MAC (default: -dev's)")
	flag.StringVar(&c.dstMAC, "dst-mac", "02:4e:57:00:00:02", "destination MAC (default is not the peer's: the peer's stack drops the frames after the taps)")
	flag.StringVar(&c.srcIP, "src", "10.200.0.1", "first source IPv4 address (flow>>14 is added)")
	flag.StringVar(&c.dstIP, "dst", "10.201.0.1", "destination IPv4 address")
	flag.UintVar(&c.sport, "sport", 1024, "first source port (flow&16383 is added)")
	flag.UintVar(&c.dport, "dport", 9, "destination port")
	flag.UintVar(&c.batch, "batch", 64, "frames per kernel batch (1..256); above 64 the veth peer's 256-frame XDP ring overflows now and then")
	flag.UintVar(&c.chunk, "chunk", 0, "frames per BPF_PROG_RUN call (0: auto, as few calls as the duration allows: every call ends with an RCU grace period of a few ms)")
	flag.StringVar(&c.action, "action", "tx", "XDP verdict: tx (XDP_TX) or redirect (bpf_redirect to -dev)")
	flag.IntVar(&c.cpu, "cpu", -1, "pin the sending thread to this CPU (the peer's NAPI poll runs there too)")
	flag.BoolVar(&c.peerXDPPass, "peer-xdp-pass", false, "attach an XDP_PASS program to the peer for the run (gives it NAPI without GRO)")
	flag.BoolVar(&c.quiet, "q", false, "no progress messages on stderr")
	flag.Parse()
	flag.Visit(func(f *flag.Flag) { c.durationSet = c.durationSet || f.Name == "duration" })
	if c.dev == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: nwxdpgen -dev IFACE [-peer-netns NS] [-count N | -duration D] [flags]")
		flag.PrintDefaults()
		os.Exit(2)
	}
	r, err := run(c)
	if err != nil && !errors.Is(err, errNothingDelivered) {
		fmt.Fprintln(os.Stderr, "nwxdpgen:", err)
		os.Exit(1)
	}
	fmt.Println(r.line())
	if err != nil {
		fmt.Fprintln(os.Stderr, "nwxdpgen: no frame reached the peer:", peerHint(r.peerName))
		os.Exit(3)
	}
	if r.lostBeforePeer > 0 {
		fmt.Fprintf(os.Stderr, "nwxdpgen: warning: %d of %d frames were dropped before the peer (veth XDP ring full: ethtool -S %s shows peer_tq_xdp_xmit_err)\n",
			r.lostBeforePeer, r.generated, c.dev)
	}
}

func peerHint(peer string) string {
	if peer == "" {
		peer = "PEER"
	}
	return fmt.Sprintf("the veth peer needs NAPI for XDP frames: `ethtool -K %s gro on` (Linux >= 5.13) or attach an XDP program (e.g. XDP_PASS) to %s; the peer must be up", peer, peer)
}

func (c config) frameSpec() (frameSpec, *net.Interface, error) {
	var s frameSpec
	ifc, err := net.InterfaceByName(c.dev)
	if err != nil {
		return s, nil, fmt.Errorf("-dev %s: %w", c.dev, err)
	}
	if c.size < 60 || c.size > 1514 {
		return s, nil, fmt.Errorf("-size %d: want 60..1514", c.size)
	}
	s.size = c.size
	s.srcMAC = ifc.HardwareAddr
	if c.srcMAC != "" {
		if s.srcMAC, err = net.ParseMAC(c.srcMAC); err != nil {
			return s, nil, fmt.Errorf("-src-mac: %w", err)
		}
	}
	if len(s.srcMAC) != 6 {
		return s, nil, fmt.Errorf("-dev %s has no Ethernet address; give -src-mac", c.dev)
	}
	if s.dstMAC, err = net.ParseMAC(c.dstMAC); err != nil || len(s.dstMAC) != 6 {
		return s, nil, fmt.Errorf("-dst-mac %q: not an Ethernet address", c.dstMAC)
	}
	if s.srcIP = net.ParseIP(c.srcIP).To4(); s.srcIP == nil {
		return s, nil, fmt.Errorf("-src %q: not an IPv4 address", c.srcIP)
	}
	if s.dstIP = net.ParseIP(c.dstIP).To4(); s.dstIP == nil {
		return s, nil, fmt.Errorf("-dst %q: not an IPv4 address", c.dstIP)
	}
	if c.sport > 0xffff || c.dport > 0xffff {
		return s, nil, fmt.Errorf("ports must be < 65536")
	}
	s.sport, s.dport = uint16(c.sport), uint16(c.dport)
	return s, ifc, nil
}

// counters reads -dev's and the peer's link counters.
type counters struct {
	local, peerNL *rtnl
	peerIndex     int
	peerName      string
	dev           string
}

func (k *counters) read() (dev linkStats, peer linkStats, peerOK bool, err error) {
	li, err := k.local.getLink(k.dev, 0)
	if err != nil {
		return dev, peer, false, err
	}
	dev = li.Stats
	if k.peerNL == nil {
		return dev, peer, false, nil
	}
	pi, err := k.peerNL.getLink(k.peerName, k.peerIndex)
	if err != nil {
		return dev, peer, false, fmt.Errorf("peer counters: %w", err)
	}
	return dev, pi.Stats, true, nil
}

func openCounters(c config) (*counters, error) {
	local, err := openRtnl("")
	if err != nil {
		return nil, err
	}
	k := &counters{local: local, dev: c.dev}
	li, err := local.getLink(c.dev, 0)
	if err != nil {
		return nil, err
	}
	switch {
	case c.peerNetns != "":
		if k.peerNL, err = openRtnl(c.peerNetns); err != nil {
			return nil, err
		}
		if c.peer != "" {
			k.peerName = c.peer
		} else if li.Link != 0 {
			k.peerIndex = li.Link
		} else {
			return nil, fmt.Errorf("%s has no peer link (not a veth?); give -peer", c.dev)
		}
	case c.peer != "":
		k.peerNL, k.peerName = local, c.peer
	case li.Link != 0 && li.Link != li.Index && !li.HasNSID:
		k.peerNL, k.peerIndex = local, li.Link
	default:
		// The peer is in another namespace we cannot name: only -dev's
		// counters (a veth's tx_packets include what its peer's XDP ring took).
	}
	if k.peerNL != nil {
		pi, err := k.peerNL.getLink(k.peerName, k.peerIndex)
		if err != nil {
			return nil, fmt.Errorf("finding the peer of %s: %w", c.dev, err)
		}
		k.peerName, k.peerIndex = pi.Name, pi.Index
	}
	return k, nil
}

func run(c config) (result, error) {
	var r result
	if c.batch < 1 || c.batch > 256 {
		return r, fmt.Errorf("-batch %d: want 1..256", c.batch)
	}
	if c.chunk > 1<<31 {
		return r, fmt.Errorf("-chunk %d: want 0..2^31", c.chunk)
	}
	if c.rate < 0 {
		return r, fmt.Errorf("-rate must be >= 0")
	}
	if c.count == 0 && c.duration <= 0 {
		return r, fmt.Errorf("give -count or a positive -duration")
	}
	spec, ifc, err := c.frameSpec()
	if err != nil {
		return r, err
	}
	k, err := openCounters(c)
	if err != nil {
		return r, err
	}
	r.peerName = k.peerName
	if k.peerNL == nil && !c.quiet {
		fmt.Fprintf(os.Stderr, "nwxdpgen: the peer of %s is in another namespace: counting its tx side only (give -peer-netns for the peer's rx counters)\n", c.dev)
	}
	if c.peerXDPPass {
		if k.peerNL == nil {
			return r, fmt.Errorf("-peer-xdp-pass: the peer is in another namespace; give -peer-netns")
		}
		l, err := attachPass(c.peerNetns, k.peerIndex)
		if err != nil {
			return r, err
		}
		defer l.Close()
	}
	g, err := loadGenProg(spec, uint32(c.flows), c.action, ifc.Index, c.count, c.rate)
	if err != nil {
		return r, err
	}
	defer g.Close()
	frame := spec.template()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if c.cpu >= 0 {
		var set unix.CPUSet
		set.Set(c.cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return r, fmt.Errorf("-cpu %d: %w", c.cpu, err)
		}
	}

	dev0, peer0, peerOK, err := k.read()
	if err != nil {
		return r, err
	}
	r.peerKnown = peerOK
	delivered := func() (linkStats, linkStats, uint64, error) {
		d, p, _, err := k.read()
		if err != nil {
			return d, p, 0, err
		}
		if peerOK {
			return d, p, p.RxPackets - peer0.RxPackets, nil
		}
		return d, p, d.TxPackets - dev0.TxPackets, nil
	}

	start := time.Now()
	deadline := start.Add(c.duration)
	if c.count > 0 && !c.durationSet {
		deadline = time.Time{}
	}
	var sent, probeSent, runs uint64
	probed := false
	for {
		if c.count > 0 && sent >= c.count {
			break
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			break
		}
		// How many times to run the program in this call. With a -count
		// limit or a -rate pacer some runs are drops, so estimate from the
		// runs per sent frame seen so far; the program never sends more
		// than -count, so overshooting the runs only costs time.
		n := uint64(1 << 31)
		runRate := 1e6 // program runs/s, a guess until measured
		perFrame := 1.0
		if el := time.Since(start).Seconds(); runs > 0 && el > 0 {
			runRate = float64(runs) / el
		}
		if sent > probeSent && runs > 0 {
			perFrame = float64(runs) / float64(sent-probeSent)
		}
		if c.chunk > 0 {
			n = uint64(c.chunk)
		} else if !deadline.IsZero() {
			// Auto: aim the call at the time left (every call ends with
			// an RCU grace period, a few ms of nothing sent).
			left := time.Until(deadline)
			if left < time.Millisecond {
				break
			}
			n = min(max(uint64(runRate*left.Seconds()), uint64(c.batch)), 1<<31)
		}
		if c.count > 0 {
			need := c.count - sent
			if c.rate > 0 || perFrame > 1.0001 {
				need = uint64(float64(need)*perFrame) + uint64(c.batch)
			}
			n = min(n, need, 1<<31)
		}
		if !probed {
			n = min(n, uint64(c.batch)) // one batch first, to see whether frames get through
		}
		err := g.runLive(frame, ifc.Index, uint32(n), uint32(c.batch))
		if err != nil && !errors.Is(err, unix.EINTR) {
			return r, explainRunErr(err, uint32(c.batch))
		}
		if probed {
			runs += n
		}
		if sent, err = g.sent(); err != nil {
			return r, fmt.Errorf("reading the frame counter: %w", err)
		}
		if !probed {
			probed = true
			time.Sleep(20 * time.Millisecond) // threaded NAPI may lag
			// The probe and the pause are not counted in the rate's time base
			// (the probe's frames are in generated/sent).
			probeSent = sent
			start = time.Now()
			if !deadline.IsZero() {
				deadline = start.Add(c.duration)
			}
			if _, _, got, err := delivered(); err != nil {
				return r, err
			} else if got == 0 && sent > 0 {
				r.generated, r.seconds = sent, time.Since(start).Seconds()
				r.lostBeforePeer = int64(sent)
				return r, errNothingDelivered
			}
		}
	}
	r.seconds = time.Since(start).Seconds()
	r.generated = sent
	time.Sleep(100 * time.Millisecond) // let a threaded/remote NAPI drain the ring
	d1, p1, got, err := delivered()
	if err != nil {
		return r, err
	}
	r.sent = got
	r.devTx = d1.TxPackets - dev0.TxPackets
	r.devTxDropped = d1.TxDropped - dev0.TxDropped
	if peerOK {
		r.peerRx = p1.RxPackets - peer0.RxPackets
		r.peerRxDropped = p1.RxDropped - peer0.RxDropped
	}
	r.lostBeforePeer = int64(r.generated) - int64(got)
	if got == 0 && r.generated > 0 {
		return r, errNothingDelivered
	}
	return r, nil
}
