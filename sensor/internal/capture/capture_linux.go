//go:build linux

package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	xbpf "golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/sensor/internal/bpf"
)

// Capture is an open capture: one AF_PACKET socket and TPACKET_V3 RX ring
// per worker, bound to one interface. github.com/mdlayher/packet is not used
// because its Listen binds at creation, and the filter must be attached
// before bind (see Open).
type Capture struct {
	cfg     Config
	ifindex int
	workers []*worker

	mu      sync.Mutex // guards the fields below
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
	closed  bool
}

type worker struct {
	id        int
	fd        int
	ring      []byte
	blockSize int
	numBlocks int
	cur       int // next block to read, only touched by the worker goroutine
	// loopback: the socket is bound to the loopback device, which hands
	// packet sockets every packet twice (see readBlock).
	loopback bool

	// kernel holds the accumulated PACKET_STATISTICS; statsMu serialises
	// the read-and-add (a read resets the kernel's counters) and Close.
	statsMu sync.Mutex
	kernel  WorkerStats
	statErr error

	// User-side counters, published once per block by the worker goroutine.
	frames, bytes, wire, blocks, skipped atomic.Uint64
}

// Offsets in the TPACKET_V3 ring (linux/if_packet.h). A block starts with
// struct tpacket_block_desc {u32 version; u32 offset_to_priv; struct
// tpacket_hdr_v1 hdr;}, and tpacket_hdr_v1 starts {u32 block_status; u32
// num_pkts; u32 offset_to_first_pkt; u32 blk_len; ...}.
const (
	blockStatusOff   = 8
	blockNumPktsOff  = 12
	blockFirstPktOff = 16
	blockHdrLen      = 48 // header fields read below end before this
)

// Each frame starts with struct tpacket3_hdr {u32 tp_next_offset; u32
// tp_sec; u32 tp_nsec; u32 tp_snaplen; u32 tp_len; u32 tp_status; u16
// tp_mac; u16 tp_net; struct tpacket_hdr_variant1 {u32 tp_rxhash; u32
// tp_vlan_tci; u16 tp_vlan_tpid; u16 tp_padding;} hv1; u8 tp_padding[8];}.
const (
	frameNextOff    = 0
	frameSecOff     = 4
	frameNsecOff    = 8
	frameSnaplenOff = 12
	frameLenOff     = 16
	frameStatusOff  = 20
	frameMacOff     = 24
	frameVLANTCIOff = 32
	frameHdrLen     = 48
)

// The kernel writes a struct sockaddr_ll {u16 sll_family; u16 sll_protocol;
// s32 sll_ifindex; u16 sll_hatype; u8 sll_pkttype; u8 sll_halen; u8
// sll_addr[8];} right after the tpacket3_hdr, at TPACKET_ALIGN(sizeof(struct
// tpacket3_hdr)) = 48 (tpacket_rcv), before the frame data (tp_mac is at
// least TPACKET3_HDRLEN = 48 + 20).
const (
	frameSllOff     = frameHdrLen
	framePkttypeOff = frameSllOff + 10
	frameSllHdrLen  = frameSllOff + 20 // TPACKET3_HDRLEN
)

var ne = binary.NativeEndian

// Open checks cfg, then opens and sets up one socket and ring per worker.
// It starts no goroutine. The order matters:
//
//  1. socket(AF_PACKET, SOCK_RAW, protocol 0): with protocol 0 the socket
//     receives nothing until bind names a protocol;
//  2. PACKET_VERSION = TPACKET_V3, then PACKET_RX_RING (tpacket_req3) and
//     mmap of the whole ring;
//  3. SO_ATTACH_FILTER with a drop-all program, then bind(ETH_P_ALL,
//     ifindex): from bind on, every packet goes through a filter, so none
//     unfiltered enters the ring;
//  4. join the PACKET_FANOUT group (the kernel only accepts bound sockets)
//     and add the PACKET_MR_PROMISC membership;
//  5. once every worker has joined, replace the drop-all program with the
//     real one on every socket. Until then a packet hashed to a socket is
//     dropped, so no packet is seen twice while the group forms (a bound
//     socket outside the group would get a copy of everything).
func Open(cfg Config) (*Capture, error) {
	c, err := open(cfg)
	var pe *PermissionError
	if errors.As(err, &pe) {
		// The CLI prints this message as it is and exits 2.
		return nil, pe
	}
	return c, err
}

// Preflight does what Open does before it creates anything: it checks cfg, looks
// the interface up, assembles the filter and makes sure the process may open
// packet sockets (a socket that is closed before it is bound, so it receives
// nothing). It returns the error Open would (--check uses it).
func Preflight(cfg Config) error {
	_, _, err := prepare(cfg)
	if err == nil {
		var fd int
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err == nil {
			unix.Close(fd)
		} else {
			err = fmt.Errorf("open capture on %s: %w", cfg.Interface, sysErr("socket", err))
		}
	}
	var pe *PermissionError
	if errors.As(err, &pe) {
		return pe
	}
	return err
}

// prepare is the part of open that creates nothing.
func prepare(cfg Config) (*net.Interface, []unix.SockFilter, error) {
	if err := cfg.Check(); err != nil {
		return nil, nil, err
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, nil, flagconfig.Fieldf("Interface", "%w %q (have: %s)", ErrNoInterface, cfg.Interface, interfaceNames())
	}
	var prog []unix.SockFilter
	if cfg.Filter != "" || cfg.Snaplen != 0 {
		raw, err := bpf.Assemble(cfg.Filter, uint32(cfg.Snaplen))
		if err != nil {
			return nil, nil, &flagconfig.FieldError{Field: "Filter", Err: err}
		}
		prog = toSockFilter(raw)
	}
	return ifi, prog, nil
}

func open(cfg Config) (*Capture, error) {
	ifi, prog, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	c := &Capture{cfg: cfg, ifindex: ifi.Index}
	for i := 0; i < cfg.Workers; i++ {
		w, err := openWorker(i, cfg, ifi.Index)
		if err != nil {
			c.closeWorkers()
			return nil, fmt.Errorf("open capture on %s: %w", cfg.Interface, err)
		}
		// IFF_LOOPBACK is set on the loopback device only (loopback_setup,
		// which also makes its type ARPHRD_LOOPBACK), whatever its name and
		// in whichever network namespace. libpcap decides the same way in
		// effect: it drops outgoing frames whose sll_ifindex is that of "lo".
		w.loopback = ifi.Flags&net.FlagLoopback != 0
		c.workers = append(c.workers, w)
	}
	if cfg.Workers > 1 {
		if err := c.joinFanout(); err != nil {
			c.closeWorkers()
			return nil, fmt.Errorf("open capture on %s: %w", cfg.Interface, err)
		}
	}
	for _, w := range c.workers {
		if cfg.Promisc {
			mreq := unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_PROMISC}
			if err := unix.SetsockoptPacketMreq(w.fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, &mreq); err != nil {
				c.closeWorkers()
				return nil, fmt.Errorf("open capture on %s: worker %d: set promiscuous (PACKET_ADD_MEMBERSHIP): %w", cfg.Interface, w.id, sysErr("setsockopt", err))
			}
		}
	}
	for _, w := range c.workers {
		if err := setFilter(w.fd, prog); err != nil {
			c.closeWorkers()
			return nil, fmt.Errorf("open capture on %s: worker %d: %w", cfg.Interface, w.id, err)
		}
	}
	return c, nil
}

func openWorker(id int, cfg Config, ifindex int) (w *worker, err error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("worker %d: %w", id, sysErr("socket", err))
	}
	w = &worker{id: id, fd: fd, blockSize: cfg.BlockSize, numBlocks: cfg.NumBlocks}
	defer func() {
		if err != nil {
			w.close()
			err = fmt.Errorf("worker %d: %w", id, err)
		}
	}()
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return nil, fmt.Errorf("set PACKET_VERSION to TPACKET_V3: %w", sysErr("setsockopt", err))
	}
	req := unix.TpacketReq3{
		Block_size: uint32(cfg.BlockSize),
		Block_nr:   uint32(cfg.NumBlocks),
		Frame_size: uint32(cfg.FrameSize),
		// The kernel requires tp_frame_nr == frames per block * blocks.
		Frame_nr:       uint32(cfg.BlockSize / cfg.FrameSize * cfg.NumBlocks),
		Retire_blk_tov: uint32(cfg.BlockTimeout / time.Millisecond),
	}
	if err := unix.SetsockoptTpacketReq3(fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return nil, fmt.Errorf("set PACKET_RX_RING (%d blocks of %d bytes): %w", cfg.NumBlocks, cfg.BlockSize, sysErr("setsockopt", err))
	}
	ring, err := unix.Mmap(fd, 0, cfg.BlockSize*cfg.NumBlocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap ring of %d bytes: %w", cfg.BlockSize*cfg.NumBlocks, sysErr("mmap", err))
	}
	w.ring = ring
	if err := setFilter(fd, dropAll); err != nil {
		return nil, err
	}
	sa := unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, &sa); err != nil {
		return nil, fmt.Errorf("bind to ifindex %d: %w", ifindex, sysErr("bind", err))
	}
	return w, nil
}

// dropAll is "ret #0": the kernel drops a packet when the filter returns 0.
var dropAll = []unix.SockFilter{{Code: 0x06, K: 0}} // BPF_RET|BPF_K

func setFilter(fd int, prog []unix.SockFilter) error {
	if prog == nil {
		// SO_DETACH_FILTER fails with ENOENT when no filter is attached;
		// here the drop-all one always is.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0); err != nil {
			return fmt.Errorf("detach BPF filter: %w", sysErr("setsockopt", err))
		}
		return nil
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
		return fmt.Errorf("attach BPF filter (%d instructions): %w", len(prog), sysErr("setsockopt", err))
	}
	return nil
}

// joinFanout puts every worker's socket in one PACKET_FANOUT group:
// PACKET_FANOUT_HASH sends all packets of a flow (the kernel's symmetric
// flow hash, skb_get_hash) to one socket. PACKET_FANOUT_FLAG_DEFRAG is left
// off on purpose: it would hand the workers reassembled datagrams, and Netwatch
// counts every fragment on the wire with its own IP length (exact packets and
// bytes). The kernel hashes IP fragments by addresses only (the flow dissector
// does not read ports of fragments), so all fragments of a datagram reach the
// same worker and its fragment table can attribute them. With FanoutGroup 0, the
// first socket asks for a fresh id (PACKET_FANOUT_FLAG_UNIQUEID, Linux 4.4+)
// and reads it back; the kernel clears that flag from the group's flags, so
// the others join without it. The option value is id | (mode|flags) << 16.
func (c *Capture) joinFanout() error {
	const mode = unix.PACKET_FANOUT_HASH
	id := int(c.cfg.FanoutGroup)
	for i, w := range c.workers {
		opt := id | mode<<16
		if i == 0 && id == 0 {
			opt = (mode | unix.PACKET_FANOUT_FLAG_UNIQUEID) << 16
		}
		if err := unix.SetsockoptInt(w.fd, unix.SOL_PACKET, unix.PACKET_FANOUT, opt); err != nil {
			return fmt.Errorf("worker %d: join fanout group %d: %w", w.id, id, sysErr("setsockopt", err))
		}
		if i == 0 && id == 0 {
			v, err := unix.GetsockoptInt(w.fd, unix.SOL_PACKET, unix.PACKET_FANOUT)
			if err != nil {
				return fmt.Errorf("worker 0: read fanout group id: %w", sysErr("getsockopt", err))
			}
			id = v & 0xffff
		}
	}
	return nil
}

// Run calls newHandler once per worker, then runs one goroutine per worker
// plus one that reads the kernel statistics every StatsInterval, until ctx
// ends, Close is called, or a worker fails. It returns nil when stopped by
// ctx or Close, else the first worker error. Run may be called only once.
func (c *Capture) Run(ctx context.Context, newHandler func(worker int) Handler) error {
	c.mu.Lock()
	if c.closed || c.running || c.done != nil {
		c.mu.Unlock()
		return fmt.Errorf("run capture on %s: already running or closed", c.cfg.Interface)
	}
	ctx, cancel := context.WithCancel(ctx)
	c.running, c.cancel, c.done = true, cancel, make(chan struct{})
	c.mu.Unlock()
	defer func() {
		cancel()
		c.mu.Lock()
		c.running = false
		close(c.done)
		c.mu.Unlock()
	}()

	handlers := make([]Handler, len(c.workers))
	for i := range c.workers {
		handlers[i] = newHandler(i)
	}
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for i, w := range c.workers {
		wg.Go(func() {
			if err := w.run(ctx, handlers[i], c.cfg.TickInterval); err != nil {
				errOnce.Do(func() {
					firstErr = fmt.Errorf("capture on %s: worker %d: %w", c.cfg.Interface, w.id, err)
					cancel()
				})
			}
		})
	}
	wg.Go(func() { c.pollKernelStats(ctx) })
	wg.Wait()
	return firstErr
}

// pollKernelStats reads every ring's PACKET_STATISTICS each StatsInterval until ctx
// ends, so Stats stays current while the workers run.
func (c *Capture) pollKernelStats(ctx context.Context) {
	t := time.NewTicker(c.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			for _, w := range c.workers {
				w.readKernelStats()
			}
		case <-ctx.Done():
			return
		}
	}
}

// run is the worker loop: read every block the kernel has handed over,
// else poll(2) the socket until one is ready or the next Tick is due.
func (w *worker) run(ctx context.Context, h Handler, tick time.Duration) error {
	done := ctx.Done()
	pfd := []unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}}
	last := time.Now()
	for {
		select {
		case <-done:
			return nil
		default:
		}
		if !w.readBlock(h) {
			wait := tick - time.Since(last)
			ms := int(wait / time.Millisecond)
			if ms < 1 {
				ms = 1
			}
			n, err := unix.Poll(pfd, ms)
			if err != nil && err != unix.EINTR {
				return fmt.Errorf("poll: %w", err)
			}
			if n > 0 && pfd[0].Revents&unix.POLLERR != 0 {
				if err := w.socketError(); err != nil {
					return err
				}
			}
		}
		if now := time.Now(); now.Sub(last) >= tick {
			h.Tick(now.UnixNano())
			last = now
		}
	}
}

// socketError reads (and so clears) the socket's pending error. The kernel
// sets ENETDOWN on a bound packet socket when its interface goes down
// (packet_notifier, NETDEV_DOWN) and re-hooks the socket when it comes back
// up, so ENETDOWN is not fatal, unless the interface was deleted
// (NETDEV_UNREGISTER), in which case the socket will never receive again.
func (w *worker) socketError() error {
	v, err := unix.GetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return fmt.Errorf("read socket error: %w", err)
	}
	switch e := unix.Errno(v); e {
	case 0:
		return nil
	case unix.ENETDOWN:
		var sa unix.Sockaddr
		if sa, err = unix.Getsockname(w.fd); err == nil {
			if ll, ok := sa.(*unix.SockaddrLinklayer); ok {
				if _, err := net.InterfaceByIndex(ll.Ifindex); err != nil {
					return fmt.Errorf("interface index %d is gone: %w", ll.Ifindex, e)
				}
			}
		}
		return nil
	default:
		return fmt.Errorf("socket error: %w", e)
	}
}

// readBlock hands every frame of the current block to h, then gives the
// block back to the kernel. It returns false if the block still belongs to
// the kernel.
//
// Ownership is the block_status word: the kernel fills a block while its
// status is TP_STATUS_KERNEL (0), then sets TP_STATUS_USER when the block is
// full or the retire timer (tp_retire_blk_tov) fires. User space may then
// read every frame of the block, and must write TP_STATUS_KERNEL only after
// the last one is consumed: the kernel may refill the block right away.
// Blocks are handed over in ring order, so the reader only ever looks at
// the next one. The status is read and written atomically (the kernel pairs
// it with smp_wmb/smp_rmb).
//
// What is counted: every frame the kernel puts in the ring (after the BPF
// filter) is handed to h exactly once, whatever its sll_pkttype: frames to
// this host (PACKET_HOST), broadcast and multicast, frames to other MACs
// (PACKET_OTHERHOST: with Promisc, or wherever the device does not filter by
// MAC, as veth does not) and frames this host sends (PACKET_OUTGOING: each
// is seen once, on the way out, so a span port's or a host's both directions
// count). The one exception is the loopback device: the kernel hands packet
// sockets each packet twice there, as PACKET_OUTGOING when it is sent
// (dev_queue_xmit_nit) and again as PACKET_HOST when loopback_xmit feeds it
// back in. Like libpcap (linux_check_direction), the outgoing copy is
// skipped, counted in Stats.Skipped, so lo counts what tcpdump -i lo counts.
// The check is one predictable branch on a flag; only on lo does it read
// the pkttype byte from the frame's sockaddr_ll.
func (w *worker) readBlock(h Handler) bool {
	blk := w.ring[w.cur*w.blockSize : (w.cur+1)*w.blockSize]
	status := (*uint32)(unsafe.Pointer(&blk[blockStatusOff]))
	if atomic.LoadUint32(status)&unix.TP_STATUS_USER == 0 {
		return false
	}
	num := ne.Uint32(blk[blockNumPktsOff:])
	off := int(ne.Uint32(blk[blockFirstPktOff:]))
	var frames, bytes, wire, skipped uint64
	loopback := w.loopback // in a register for the loop
	for i := uint32(0); i < num; i++ {
		if off < blockHdrLen || off+frameSllHdrLen > len(blk) {
			break // corrupt offset: cannot happen with a sane kernel
		}
		hdr := blk[off : off+frameSllHdrLen]
		next := int(ne.Uint32(hdr[frameNextOff:]))
		if loopback && hdr[framePkttypeOff] == unix.PACKET_OUTGOING {
			skipped++
			if next == 0 {
				break
			}
			off += next
			continue
		}
		snap := int(ne.Uint32(hdr[frameSnaplenOff:]))
		start := off + int(ne.Uint16(hdr[frameMacOff:]))
		end := start + snap
		if end > len(blk) {
			break
		}
		wireLen := ne.Uint32(hdr[frameLenOff:])
		ts := int64(ne.Uint32(hdr[frameSecOff:]))*1e9 + int64(ne.Uint32(hdr[frameNsecOff:]))
		// With TPACKET_V3 the kernel always fills hv1 (prb_fill_vlan_info):
		// if the skb carries a VLAN tag in its metadata
		// (skb_vlan_tag_present), it sets TP_STATUS_VLAN_VALID and copies the
		// TCI to tp_vlan_tci. Such a tag is NOT in the frame bytes: the
		// receive path moves the outer 802.1Q tag out of the packet before
		// packet sockets see it (skb_vlan_untag), and VLAN-offloading drivers
		// never put it there. The VLAN id is the TCI's low 12 bits.
		var vlan uint16
		valid := ne.Uint32(hdr[frameStatusOff:])&unix.TP_STATUS_VLAN_VALID != 0
		if valid {
			vlan = uint16(ne.Uint32(hdr[frameVLANTCIOff:]) & 0x0fff)
		}
		h.Frame(blk[start:end:end], int(wireLen), ts, vlan, valid)
		frames++
		bytes += uint64(snap)
		wire += uint64(wireLen)
		if next == 0 {
			break // the last frame of a block has tp_next_offset 0
		}
		off += next
	}
	atomic.StoreUint32(status, unix.TP_STATUS_KERNEL)
	w.cur++
	if w.cur == w.numBlocks {
		w.cur = 0
	}
	w.frames.Add(frames)
	w.bytes.Add(bytes)
	w.wire.Add(wire)
	w.blocks.Add(1)
	if skipped != 0 {
		w.skipped.Add(skipped)
	}
	return true
}

// readKernelStats adds the kernel's PACKET_STATISTICS to w.kernel. Reading
// them RESETS the kernel's counters (packet_getsockopt zeroes po->stats and
// tp_drops), so they must be accumulated here, and read from one place at a
// time. For TPACKET_V3 the kernel reports tp_packets = received + dropped.
func (w *worker) readKernelStats() {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	if w.fd < 0 {
		return
	}
	st, err := unix.GetsockoptTpacketStatsV3(w.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		w.statErr = fmt.Errorf("worker %d: read PACKET_STATISTICS: %w", w.id, err)
		return
	}
	w.kernel.Packets += uint64(st.Packets)
	w.kernel.Drops += uint64(st.Drops)
	w.kernel.FreezeQueue += uint64(st.Freeze_q_cnt)
}

func (w *worker) stats() WorkerStats {
	w.readKernelStats()
	w.statsMu.Lock()
	s := w.kernel
	w.statsMu.Unlock()
	s.Frames = w.frames.Load()
	s.Bytes = w.bytes.Load()
	s.WireBytes = w.wire.Load()
	s.Blocks = w.blocks.Load()
	s.Skipped = w.skipped.Load()
	return s
}

// Stats reads the kernel counters now (so they are current, not up to
// StatsInterval old) and the interface flags, and returns the totals and
// each worker's counters. It is safe to call from any goroutine, also after
// Close (the counters then stay as they were).
func (c *Capture) Stats() Stats {
	s := Stats{Interface: c.cfg.Interface, Workers: make([]WorkerStats, len(c.workers))}
	for i, w := range c.workers {
		s.Workers[i] = w.stats()
		s.WorkerStats.add(s.Workers[i])
	}
	ifi, err := net.InterfaceByIndex(c.ifindex)
	switch {
	case err != nil:
		s.InterfaceErr = fmt.Errorf("interface %s (index %d): %w", c.cfg.Interface, c.ifindex, err)
	case ifi.Name != c.cfg.Interface:
		s.InterfaceErr = fmt.Errorf("interface index %d is now %q, not %q", c.ifindex, ifi.Name, c.cfg.Interface)
	default:
		s.Up = ifi.Flags&net.FlagUp != 0
		s.Running = ifi.Flags&net.FlagRunning != 0
	}
	return s
}

// Close stops Run if it is running, waits for it to return, then unmaps the
// rings and closes the sockets (which also drops the promiscuous
// membership and leaves the fanout group). Closing twice is a no-op.
func (c *Capture) Close() error {
	c.mu.Lock()
	already := c.closed
	c.closed = true
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if already {
		return nil
	}
	if cancel != nil {
		cancel()
		<-done
	}
	return c.closeWorkers()
}

func (c *Capture) closeWorkers() error {
	var errs []error
	for _, w := range c.workers {
		errs = append(errs, w.close())
	}
	return errors.Join(errs...)
}

func (w *worker) close() error {
	w.statsMu.Lock()
	defer w.statsMu.Unlock()
	var errs []error
	if w.ring != nil {
		if err := unix.Munmap(w.ring); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: munmap ring: %w", w.id, err))
		}
		w.ring = nil
	}
	if w.fd >= 0 {
		if err := unix.Close(w.fd); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: close socket: %w", w.id, err))
		}
		w.fd = -1
	}
	return errors.Join(errs...)
}

// sysErr wraps a syscall error; EPERM and EACCES become a
// *PermissionError (errors.Is(err, ErrPermission)).
func sysErr(op string, err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return &PermissionError{Op: op, Err: err}
	}
	return fmt.Errorf("%s: %w", op, err)
}

func interfaceNames() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "unknown: " + err.Error()
	}
	names := make([]string, len(ifs))
	for i, ifi := range ifs {
		names[i] = ifi.Name
	}
	return strings.Join(names, ", ")
}

func toSockFilter(raw []xbpf.RawInstruction) []unix.SockFilter {
	out := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		out[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return out
}

// htons converts to network byte order, as sockaddr_ll.sll_protocol wants.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return ne.Uint16(b[:])
}
