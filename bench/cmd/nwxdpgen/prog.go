//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Frame layout (no VLAN, no IP options): Ethernet 0..13, IPv4 14..33, UDP 34..41.
const (
	offIPCsum   = 14 + 10
	offIPSrc    = 14 + 12
	offUDPSport = 34
	offUDPCsum  = 34 + 6
	hdrLen      = 42

	// portBits: a flow index i becomes source port sportBase + (i & (1<<portBits-1))
	// and source address srcIP + (i >> portBits), so 100k flows use 7 addresses.
	portBits = 14
	portMask = 1<<portBits - 1
)

type frameSpec struct {
	srcMAC, dstMAC net.HardwareAddr
	srcIP, dstIP   net.IP // IPv4
	sport, dport   uint16
	size           int // Ethernet frame length without FCS
}

// template builds the frame handed to BPF_PROG_RUN. The program overwrites the
// source address, source port and both checksums of every frame it sends.
func (s frameSpec) template() []byte {
	f := make([]byte, s.size)
	copy(f[0:6], s.dstMAC)
	copy(f[6:12], s.srcMAC)
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_IP)
	ip := f[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(s.size-14))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	ip[9] = unix.IPPROTO_UDP
	copy(ip[12:16], s.srcIP.To4())
	copy(ip[16:20], s.dstIP.To4())
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:2], s.sport)
	binary.BigEndian.PutUint16(udp[2:4], s.dport)
	binary.BigEndian.PutUint16(udp[4:6], uint16(s.size-34))
	// udp[6:8] = 0: "no checksum", valid for UDP over IPv4.
	return f
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// partialSum is the one's-complement sum (unfolded) of the IPv4 header words
// other than the checksum and the source address: the program adds the
// source address it writes and folds, so it never depends on what the page
// held before (live-frame pages are recycled without being rewritten).
func (s frameSpec) partialSum() uint32 {
	h := make([]byte, 20)
	copy(h, s.template()[14:34])
	h[10], h[11] = 0, 0
	copy(h[12:16], []byte{0, 0, 0, 0})
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	return sum
}

// flowOf returns the source address and port the program writes for flow index i.
// The test and the docs use it; the BPF program computes the same thing.
func (s frameSpec) flowOf(i uint64) (net.IP, uint16) {
	base := binary.BigEndian.Uint32(s.srcIP.To4())
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, base+uint32(i>>portBits))
	return ip, s.sport + uint16(i&portMask)
}

type genProg struct {
	prog    *ebpf.Program
	counter *ebpf.Map // ARRAY[1] u64: number of frames the program has emitted
	ctx     xdpMD     // lives in the heap-allocated genProg, passed by address to bpf(2)
}

func (g *genProg) Close() {
	if g.prog != nil {
		g.prog.Close()
	}
	if g.counter != nil {
		g.counter.Close()
	}
}

// sent reads the program's frame counter.
func (g *genProg) sent() (uint64, error) {
	var v [2]uint64
	err := g.counter.Lookup(uint32(0), &v)
	return v[0], err
}

// loadGenProg builds the XDP program: take n = counter++, flow = n % flows,
// write source port/address of that flow, recompute the IPv4 checksum from
// scratch, zero the UDP checksum, then XDP_TX (or bpf_redirect(ifindex)).
//
// limit > 0: frames past the limit-th are dropped (XDP_DROP, not counted), so
// a -count run sends exactly that many however often the program runs.
// rate > 0: a pacer in the program (next send time in ns<<8, kept in the map
// next to the counter) drops the runs that come too early, so frames leave
// at most `rate` per second with a catch-up burst of at most 32 frames.
func loadGenProg(s frameSpec, flows uint32, action string, redirectIfindex int, limit uint64, rate float64) (*genProg, error) {
	if flows == 0 || flows > 1<<31-1 {
		return nil, fmt.Errorf("flows must be in 1..%d", 1<<31-1)
	}
	if uint64(s.sport)+uint64(min(flows, portMask+1))-1 > 0xffff {
		return nil, fmt.Errorf("source port base %d too high for %d flows (ports up to %d are used)", s.sport, flows, uint64(s.sport)+portMask)
	}
	counter, err := ebpf.NewMap(&ebpf.MapSpec{
		Name: "nwxdpgen_cnt", Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("creating counter map: %w", err)
	}
	g := &genProg{counter: counter}
	base := int64(binary.BigEndian.Uint32(s.srcIP.To4()))
	if base > 1<<31-1 {
		// asm immediates are 32-bit signed; the 32-bit add wraps the same.
		base -= 1 << 32
	}

	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // r6 = ctx
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, counter.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Reg(asm.R9, asm.R0),               // r9 = &value (callee-saved)
		asm.LoadMem(asm.R8, asm.R9, 0, asm.DWord), // r8 = n
	}
	if limit > 0 {
		insns = append(insns,
			asm.LoadImm(asm.R1, int64(limit), asm.DWord),
			asm.JGE.Reg(asm.R8, asm.R1, "drop"),
		)
	}
	if rate > 0 {
		intervalFP := int64(1e9 * 256 / rate)
		if intervalFP < 1 {
			intervalFP = 1
		}
		insns = append(insns,
			asm.FnKtimeGetNs.Call(),
			asm.LSh.Imm(asm.R0, 8), // now, ns<<8
			asm.LoadMem(asm.R1, asm.R9, 8, asm.DWord),
			asm.JNE.Imm(asm.R1, 0, "havenext"),
			asm.Mov.Reg(asm.R1, asm.R0),
			asm.JGT.Reg(asm.R1, asm.R0, "drop").WithSymbol("havenext"), // too early
			asm.LoadImm(asm.R2, intervalFP, asm.DWord),
			asm.Add.Reg(asm.R1, asm.R2),
			asm.LoadImm(asm.R2, 32*intervalFP, asm.DWord),
			asm.Add.Reg(asm.R2, asm.R1),
			asm.JGE.Reg(asm.R2, asm.R0, "storenext"),
			asm.Mov.Reg(asm.R1, asm.R0), // far behind (e.g. between calls): no big burst
			asm.StoreMem(asm.R9, 8, asm.R1, asm.DWord).WithSymbol("storenext"),
		)
	}
	insns = append(insns,
		asm.Mov.Reg(asm.R7, asm.R8),
		asm.Add.Imm(asm.R7, 1),
		asm.StoreMem(asm.R9, 0, asm.R7, asm.DWord), // counter = n+1 (one runner per map)
		asm.Mod.Imm(asm.R8, int32(flows)),          // r8 = flow index

		asm.LoadMem(asm.R2, asm.R6, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R6, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, hdrLen),
		asm.JGT.Reg(asm.R4, asm.R3, "drop"),

		// source port
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.And.Imm(asm.R4, portMask),
		asm.Add.Imm(asm.R4, int32(s.sport)),
		asm.HostTo(asm.BE, asm.R4, asm.Half),
		asm.StoreMem(asm.R2, offUDPSport, asm.R4, asm.Half),
		asm.StoreImm(asm.R2, offUDPCsum, 0, asm.Half),

		// source address (host order in r5)
		asm.Mov.Reg(asm.R5, asm.R8),
		asm.RSh.Imm(asm.R5, portBits),
		asm.Add.Imm32(asm.R5, int32(base)), // 32-bit add, wraps like an address would

		// IPv4 checksum = ~fold(partial + src.hi + src.lo)
		asm.Mov.Reg(asm.R1, asm.R5),
		asm.RSh.Imm(asm.R1, 16),
		asm.Mov.Reg(asm.R0, asm.R5),
		asm.And.Imm(asm.R0, 0xffff),
		asm.Add.Reg(asm.R1, asm.R0),
		asm.Add.Imm(asm.R1, int32(s.partialSum())),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.RSh.Imm(asm.R0, 16),
		asm.And.Imm(asm.R1, 0xffff),
		asm.Add.Reg(asm.R1, asm.R0),
		asm.Mov.Reg(asm.R0, asm.R1),
		asm.RSh.Imm(asm.R0, 16),
		asm.And.Imm(asm.R1, 0xffff),
		asm.Add.Reg(asm.R1, asm.R0),
		asm.Xor.Imm(asm.R1, 0xffff),
		asm.HostTo(asm.BE, asm.R1, asm.Half),
		asm.StoreMem(asm.R2, offIPCsum, asm.R1, asm.Half),

		asm.HostTo(asm.BE, asm.R5, asm.Word),
		asm.StoreMem(asm.R2, offIPSrc, asm.R5, asm.Word),
	)
	switch action {
	case "tx":
		insns = append(insns,
			asm.Mov.Imm(asm.R0, 3), // XDP_TX
			asm.Return(),
		)
	case "redirect":
		insns = append(insns,
			asm.Mov.Imm(asm.R1, int32(redirectIfindex)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		)
	default:
		counter.Close()
		return nil, fmt.Errorf("unknown -action %q (tx or redirect)", action)
	}
	insns = append(insns,
		asm.Mov.Imm(asm.R0, 1).WithSymbol("drop"), // XDP_DROP
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "nwxdpgen", Type: ebpf.XDP, License: "GPL", Instructions: insns,
	})
	if err != nil {
		counter.Close()
		return nil, fmt.Errorf("loading XDP program: %w", err)
	}
	g.prog = prog
	return g, nil
}

// attachPass attaches an XDP_PASS program (native mode) to ifindex in the
// namespace nsPath: on a veth that enables the NAPI instance XDP frames need.
// Closing the link detaches it.
func attachPass(nsPath string, ifindex int) (link.Link, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "nwxdpgen_pass", Type: ebpf.XDP, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 2), asm.Return()}, // XDP_PASS
	})
	if err != nil {
		return nil, fmt.Errorf("loading XDP_PASS program: %w", err)
	}
	defer prog.Close() // the link holds its own reference
	var l link.Link
	err = inNetns(nsPath, func() (err error) {
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attaching XDP_PASS to the peer (ifindex %d): %w", ifindex, err)
	}
	return l, nil
}

// xdpMD mirrors struct xdp_md.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// progTestRunAttr mirrors the BPF_PROG_TEST_RUN member of union bpf_attr.
type progTestRunAttr struct {
	ProgFD      uint32
	Retval      uint32
	DataSizeIn  uint32
	DataSizeOut uint32
	DataIn      uint64
	DataOut     uint64
	Repeat      uint32
	Duration    uint32
	CtxSizeIn   uint32
	CtxSizeOut  uint32
	CtxIn       uint64
	CtxOut      uint64
	Flags       uint32
	CPU         uint32
	BatchSize   uint32
	_           uint32
}

// runLive runs the program `repeat` times in live-frame mode on ifindex. It
// issues the bpf(2) call itself instead of ebpf.Program.Run because Run
// restarts an interrupted call with the full repeat count, which would send
// more frames than asked; callers here re-run with what the counter says is left.
func (g *genProg) runLive(frame []byte, ifindex int, repeat, batch uint32) error {
	g.ctx = xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
	ctx := &g.ctx
	attr := progTestRunAttr{
		ProgFD:     uint32(g.prog.FD()),
		DataSizeIn: uint32(len(frame)),
		DataIn:     uint64(uintptr(unsafe.Pointer(&frame[0]))),
		Repeat:     repeat,
		CtxSizeIn:  uint32(unsafe.Sizeof(*ctx)),
		CtxIn:      uint64(uintptr(unsafe.Pointer(ctx))),
		Flags:      unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		BatchSize:  batch,
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_TEST_RUN, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(frame)
	runtime.KeepAlive(g)
	if errno != 0 {
		return errno
	}
	return nil
}

// explainRunErr turns the kernel's refusals into something actionable.
func explainRunErr(err error, batch uint32) error {
	switch {
	case errors.Is(err, unix.EINVAL):
		return fmt.Errorf("BPF_PROG_RUN refused the live-frame run (EINVAL): the kernel lacks BPF_F_TEST_XDP_LIVE_FRAMES (needs Linux >= 5.18), or the frame/context was rejected: %w", err)
	case errors.Is(err, unix.E2BIG):
		return fmt.Errorf("BPF_PROG_RUN refused batch size %d (max 256): %w", batch, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("BPF_PROG_RUN not permitted (run as root / CAP_BPF+CAP_NET_ADMIN): %w", err)
	case errors.Is(err, unix.ENODEV):
		return fmt.Errorf("BPF_PROG_RUN: ingress interface not found in this network namespace: %w", err)
	}
	return fmt.Errorf("BPF_PROG_RUN (live frames): %w", err)
}
