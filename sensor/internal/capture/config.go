// Package capture is the first stage of the sensor pipeline: it receives
// frames from a network interface through Linux AF_PACKET sockets with a
// TPACKET_V3 memory-mapped RX ring, and hands each frame, without copying,
// to a per-worker Handler.
//
// Lifecycle: Open validates the Config and sets up sockets and rings (this
// needs CAP_NET_RAW) but starts no goroutine; Run starts one goroutine per
// worker plus a statistics poller and blocks until its context ends; Close
// stops Run if needed, waits for it, and releases rings and sockets.
package capture

import (
	"errors"
	"fmt"
	"os"
	"time"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/sensor/internal/bpf"
)

// Handler receives the frames of one worker. Each worker has its own
// Handler and calls it from a single goroutine, so a Handler can own state
// (a flow-table shard) without locks.
type Handler interface {
	// Frame is called for each captured frame. data is the captured part of
	// the frame, starting at the Ethernet header; it points into the
	// kernel's ring and is only valid until Frame returns (copy what must be
	// kept). wireLen is the frame's length on the wire (tp_len), which can
	// exceed len(data) (snaplen) and, on GSO/GRO links such as veth, the MTU.
	// tsNanos is the kernel's receive timestamp in Unix nanoseconds. When
	// vlanValid is set the outer 802.1Q tag was removed from data by the
	// kernel and vlan is its VLAN id (see readBlock).
	Frame(data []byte, wireLen int, tsNanos int64, vlan uint16, vlanValid bool)
	// Tick is called from the worker goroutine at least every
	// Config.TickInterval, also when no traffic arrives, so the owner can age
	// and export flows without locks. nowNanos is Unix nanoseconds.
	Tick(nowNanos int64)
}

// Config configures a capture. Start from DefaultConfig: zero values are
// not defaults (Promisc false means "not promiscuous").
type Config struct {
	// Interface to capture on, e.g. "eth0". Required.
	Interface string
	// BlockSize is the size in bytes of one ring block: a power of two and
	// a multiple of the page size. A frame larger than a block (minus its
	// header) is truncated. Default 1 MiB.
	BlockSize int
	// NumBlocks is the number of blocks in each worker's ring, at least 2 so
	// the kernel can fill one while the worker reads another. Ring memory
	// per worker is BlockSize*NumBlocks; total is that times Workers.
	// Default 16 (16 MiB, NETWATCH_RING_BUFFER_SIZE's default, ~130 ms of a
	// saturated 1 Gbps link).
	NumBlocks int
	// FrameSize in bytes: a multiple of TPACKET_ALIGNMENT (16) between
	// MinFrameSize and BlockSize. TPACKET_V3 packs frames of any size into a
	// block, so this only sets tp_frame_nr (BlockSize/FrameSize*NumBlocks),
	// which the kernel checks. Default 2048.
	FrameSize int
	// BlockTimeout is how long the kernel waits before handing a partly
	// filled block to user space (tp_retire_blk_tov, whole milliseconds,
	// 1 ms to 60 s). It bounds the capture latency on a quiet link.
	// Default 10 ms.
	BlockTimeout time.Duration
	// Promisc puts the interface in promiscuous mode for as long as the
	// capture is open (PACKET_MR_PROMISC membership, dropped by the kernel
	// when the sockets close). Default true.
	Promisc bool
	// Filter is a tcpdump-style expression (see package netwatch.dev/sensor/internal/bpf for
	// the supported subset) compiled to classic BPF and run in the kernel.
	// Empty captures everything.
	Filter string
	// Snaplen is how many bytes of each frame to capture, 0 for the whole
	// frame (up to what fits in a block). Otherwise 64 to 262144. It is
	// applied by the kernel through the BPF program's return value.
	Snaplen int
	// Workers is the number of capture sockets, rings and goroutines. With
	// more than one the sockets form a PACKET_FANOUT group in
	// PACKET_FANOUT_HASH mode (without DEFRAG: fragments are counted as seen), so each flow
	// lands on one worker. 1 to 256. Default 1.
	Workers int
	// FanoutGroup is the fanout group id (per network namespace). 0 lets the
	// kernel choose an unused id (PACKET_FANOUT_FLAG_UNIQUEID), which is what
	// a single sensor wants; set it only to share a group on purpose.
	FanoutGroup uint16
	// TickInterval is the longest time between two Handler.Tick calls, and
	// the poll timeout, so it also bounds how long Close waits for the
	// workers. 1 ms to 1 s. Default 100 ms.
	TickInterval time.Duration
	// StatsInterval is how often Run reads the kernel's PACKET_STATISTICS.
	// 10 ms to 1 h. Default 1 s.
	StatsInterval time.Duration
}

// DefaultConfig returns the defaults documented on Config, sized for a
// 1 Gbps link, for the given interface.
func DefaultConfig(iface string) Config {
	return Config{
		Interface:     iface,
		BlockSize:     1 << 20,
		NumBlocks:     16,
		FrameSize:     2048,
		BlockTimeout:  10 * time.Millisecond,
		Promisc:       true,
		Workers:       1,
		TickInterval:  100 * time.Millisecond,
		StatsInterval: time.Second,
	}
}

const (
	// tpacketAlignment is TPACKET_ALIGNMENT from linux/if_packet.h.
	tpacketAlignment = 16
	// MinFrameSize is TPACKET3_HDRLEN rounded up to TPACKET_ALIGNMENT:
	// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)) + sizeof(struct
	// sockaddr_ll) = 48 + 20, the kernel's minimum tp_frame_size.
	MinFrameSize = 80
	maxBlockSize = 1 << 30
	maxRingBytes = 1 << 34
	maxWorkers   = 256
)

// ErrConfig is wrapped by every error Check returns.
var ErrConfig = errors.New("bad capture configuration")

type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }
func (e *configError) Unwrap() error { return ErrConfig }

// Check says what is wrong with c, naming the field (a *flagconfig.FieldError),
// or returns nil. It also compiles Filter.
func (c Config) Check() error {
	bad := func(field, format string, args ...any) error {
		return &flagconfig.FieldError{Field: field, Err: &configError{fmt.Sprintf(format, args...)}}
	}
	page := os.Getpagesize()
	switch {
	case c.Interface == "":
		return bad("Interface", "interface name is empty")
	case len(c.Interface) > 15:
		return bad("Interface", "interface name %q is longer than 15 bytes (IFNAMSIZ)", c.Interface)
	case c.BlockSize <= 0:
		return bad("BlockSize", "block size must be positive, got %d", c.BlockSize)
	case c.BlockSize%page != 0:
		return bad("BlockSize", "block size must be a multiple of the page size (%d), got %d", page, c.BlockSize)
	case c.BlockSize&(c.BlockSize-1) != 0:
		return bad("BlockSize", "block size must be a power of two, got %d", c.BlockSize)
	case c.BlockSize > maxBlockSize:
		return bad("BlockSize", "block size must be at most %d (1 GiB), got %d", maxBlockSize, c.BlockSize)
	case c.NumBlocks < 2:
		return bad("NumBlocks", "need at least 2 blocks so the kernel can fill one while another is read, got %d", c.NumBlocks)
	case int64(c.NumBlocks)*int64(c.BlockSize) > maxRingBytes:
		return bad("NumBlocks", "ring of %d blocks of %d bytes exceeds 16 GiB", c.NumBlocks, c.BlockSize)
	case c.FrameSize < MinFrameSize:
		return bad("FrameSize", "frame size must be at least %d (TPACKET3_HDRLEN, aligned), got %d", MinFrameSize, c.FrameSize)
	case c.FrameSize%tpacketAlignment != 0:
		return bad("FrameSize", "frame size must be a multiple of TPACKET_ALIGNMENT (%d), got %d", tpacketAlignment, c.FrameSize)
	case c.FrameSize > c.BlockSize:
		return bad("FrameSize", "frame size %d is larger than the block size %d", c.FrameSize, c.BlockSize)
	case c.BlockTimeout < time.Millisecond || c.BlockTimeout > time.Minute:
		return bad("BlockTimeout", "block timeout must be between 1ms and 1m, got %v", c.BlockTimeout)
	case c.BlockTimeout%time.Millisecond != 0:
		return bad("BlockTimeout", "block timeout must be whole milliseconds (the kernel's unit), got %v", c.BlockTimeout)
	case c.Snaplen != 0 && (c.Snaplen < 64 || c.Snaplen > bpf.MaxSnaplen):
		return bad("Snaplen", "snaplen must be 0 (whole frame) or between 64 and %d, got %d", bpf.MaxSnaplen, c.Snaplen)
	case c.Workers < 1 || c.Workers > maxWorkers:
		return bad("Workers", "workers must be between 1 and %d, got %d", maxWorkers, c.Workers)
	case c.TickInterval < time.Millisecond || c.TickInterval > time.Second:
		return bad("TickInterval", "tick interval must be between 1ms and 1s, got %v", c.TickInterval)
	case c.StatsInterval < 10*time.Millisecond || c.StatsInterval > time.Hour:
		return bad("StatsInterval", "stats interval must be between 10ms and 1h, got %v", c.StatsInterval)
	}
	if _, err := bpf.Compile(c.Filter, uint32(c.Snaplen)); err != nil {
		return bad("Filter", "%s", err)
	}
	return nil
}

// Stats are the counters of a capture since Open. Kernel counters come from
// PACKET_STATISTICS, accumulated (the kernel resets them on every read).
type Stats struct {
	Interface string
	// Up and Running are the interface's IFF_UP and IFF_RUNNING flags
	// (administratively up; carrier/operational), read when Stats is called.
	Up, Running bool
	// InterfaceErr is set when the interface flags could not be read (e.g.
	// the interface was deleted); Up and Running are then false.
	InterfaceErr error
	WorkerStats
	Workers []WorkerStats
}

// WorkerStats are one worker's counters (or their sum in Stats).
type WorkerStats struct {
	// Packets is tp_packets: frames that passed the filter and were offered
	// to the ring, including the dropped ones (the kernel adds tp_drops to
	// tp_packets when reporting). On the loopback device the kernel offers
	// every packet twice (see Skipped), so Packets and Drops count both
	// copies there.
	Packets uint64
	// Drops is tp_drops: frames lost because the ring was full.
	Drops uint64
	// FreezeQueue is tp_freeze_q_cnt: how many times the ring was found
	// full (the kernel "froze" the block queue until user space freed a
	// block).
	FreezeQueue uint64
	// Frames, Bytes and WireBytes count what was handed to the Handler:
	// frames, captured bytes (len(data)) and wire bytes (wireLen). They are
	// published once per block, not per frame.
	Frames, Bytes, WireBytes uint64
	// Blocks is the number of ring blocks read.
	Blocks uint64
	// Skipped counts frames read from the ring but not handed to the
	// Handler: on the loopback device, the outgoing copy of each packet
	// (the kernel delivers it again as incoming; libpcap skips the same
	// copy). It is 0 on every other interface.
	Skipped uint64
}

func (s *WorkerStats) add(o WorkerStats) {
	s.Packets += o.Packets
	s.Drops += o.Drops
	s.FreezeQueue += o.FreezeQueue
	s.Frames += o.Frames
	s.Bytes += o.Bytes
	s.WireBytes += o.WireBytes
	s.Blocks += o.Blocks
	s.Skipped += o.Skipped
}

// ErrPermission is matched (errors.Is) by the error Open returns when the
// process may not open packet sockets. Its message is what the CLI prints
// before exiting with status 2.
var ErrPermission = errors.New("netwatch-sensor needs CAP_NET_RAW (run as root or setcap cap_net_raw,cap_net_admin+ep bin/netwatch-sensor)")

// PermissionError is returned for EPERM/EACCES from the kernel. Its message
// is ErrPermission's; errors.Is(err, ErrPermission) and errors.Is(err,
// unix.EPERM) both hold.
type PermissionError struct {
	Op  string // what was being done, e.g. "socket"
	Err error  // the errno
}

func (e *PermissionError) Error() string        { return ErrPermission.Error() }
func (e *PermissionError) Is(target error) bool { return target == ErrPermission }
func (e *PermissionError) Unwrap() error        { return e.Err }

// ErrNoInterface is wrapped by the error Open returns for an unknown
// interface; that error's message lists the interfaces that exist.
var ErrNoInterface = errors.New("no such network interface")

// ErrUnsupported is returned by Open on systems other than Linux.
var ErrUnsupported = errors.New("live capture is not supported")
