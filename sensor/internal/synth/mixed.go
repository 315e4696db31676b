package synth

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
)

// pcapWriter writes a classic little-endian nanosecond pcap (LINKTYPE_ETHERNET)
// record by record.
type pcapWriter struct {
	bw *bufio.Writer
	rh [16]byte
}

func newPcapWriter(w io.Writer) (*pcapWriter, error) {
	bw := bufio.NewWriterSize(w, 1<<20)
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], 0xa1b23c4d)
	binary.LittleEndian.PutUint16(hdr[4:], 2)
	binary.LittleEndian.PutUint16(hdr[6:], 4)
	binary.LittleEndian.PutUint32(hdr[16:], 262144)
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	if _, err := bw.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &pcapWriter{bw: bw}, nil
}

func (p *pcapWriter) record(ts int64, frame []byte) error {
	binary.LittleEndian.PutUint32(p.rh[0:], uint32(ts/1e9))
	binary.LittleEndian.PutUint32(p.rh[4:], uint32(ts%1e9))
	binary.LittleEndian.PutUint32(p.rh[8:], uint32(len(frame)))
	binary.LittleEndian.PutUint32(p.rh[12:], uint32(len(frame)))
	if _, err := p.bw.Write(p.rh[:]); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	if _, err := p.bw.Write(frame); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	return nil
}

func (p *pcapWriter) flush() error {
	if err := p.bw.Flush(); err != nil {
		return fmt.Errorf("write pcap: %w", err)
	}
	return nil
}

// WriteUniformPcap writes the stream Generate(cfg) describes straight to w,
// frame by frame, without holding it in memory: the output equals
// WritePcap(w, Generate(cfg), 1) byte for byte.
func WriteUniformPcap(w io.Writer, cfg Config) error {
	if err := cfg.normalize(); err != nil {
		return err
	}
	pw, err := newPcapWriter(w)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	f := make([]byte, cfg.FrameLen)
	for i := range cfg.Frames {
		clear(f)
		j := rng.IntN(cfg.Flows)
		writeFrame(f, j, rng.IntN(2) == 1, i)
		if err := pw.record(cfg.StartNS+int64(i)*cfg.StepNS, f); err != nil {
			return err
		}
	}
	return pw.flush()
}

// MixedConfig describes a realistic-looking stream: flows of Zipf-distributed
// sizes, IPv4 and IPv6, TCP (with handshakes and FINs), UDP and ICMP, frames of
// IMIX-like sizes.
type MixedConfig struct {
	Frames int    // total frames, >= Flows
	Flows  int    // distinct bidirectional flows, in [1, 2^24)
	Seed   uint64 // same seed, same stream
	// Concurrent is how many flows are in progress at once (their packets
	// interleave); 0 means 10000.
	Concurrent int
	// ZipfS is the Zipf exponent of flow sizes (packets per flow); 0 means 2.1.
	ZipfS float64
	// StepNS is the time between consecutive frames; 0 means 1000 (1 µs).
	StepNS int64
	// StartNS is the first frame's timestamp; 0 means 2026-01-01T00:00:00Z.
	StartNS int64
}

// MixedStats summarises what WriteMixedPcap wrote.
type MixedStats struct {
	Frames, Flows                    int
	TCPFlows, UDPFlows, ICMPFlows    int
	IPv6Flows                        int
	CompleteTCP                      int // TCP flows with handshake and both FINs
	Bytes                            int64
	LargestFlow                      int
	FramesBySize                     map[string]int // "small" (<= 100 B), "medium", "large" (>= 1000 B)
	SinglePacketFlows                int
	IPBytes                          int64 // IP-layer bytes (IPv4 total length, IPv6 payload + 40)
	MinFrameLen, MaxFrameLen, AvgLen int
}

// Flow mix: flows of 6 packets or more are 85 % TCP (handshake, data, FIN both
// ways), 13 % UDP, 2 % ICMP echo; shorter flows 45 % TCP (incomplete: SYN, SYN +
// SYN-ACK...), 48 % UDP, 7 % ICMP; 30 % of flows are IPv6.
// Data frames: IMIX-like 7:4:1 of 64 / 576 / 1500-byte IP packets (Ethernet
// frames 14 bytes longer, at least the headers); handshake, pure ACK and FIN
// frames are as small as their headers allow.

type mflow struct {
	id       uint32
	size     uint32 // packets in total
	sent     uint32
	proto    uint8 // 6, 17, 1
	v6       bool
	sport    uint16
	dport    uint16
	cseq     uint32
	sseq     uint32
	finState uint8
}

// flowSizes draws Zipf sizes (>= 1, P(size=m) ∝ m^-s) for n flows and nudges
// them to sum to total: too few, one packet at a time to random flows; too many,
// by capping the largest flows. With
// s = 2.1 the mean is about 5 packets, so 5M frames over 1M flows needs few nudges.
func flowSizes(rng *rand.Rand, n, total int, s float64) ([]uint32, error) {
	if total < n {
		return nil, fmt.Errorf("synth: Frames (%d) must be >= Flows (%d)", total, n)
	}
	z := rand.NewZipf(rng, s, 1, uint64(total/10))
	sizes := make([]uint32, n)
	sum := 0
	for i := range sizes {
		sizes[i] = 1 + uint32(z.Uint64())
		sum += int(sizes[i])
	}
	if sum > 2*total || 2*sum < total {
		return nil, fmt.Errorf("synth: Zipf exponent %g gives %d packets over %d flows, far from %d: choose another", s, sum, n, total)
	}
	for sum < total {
		i := rng.IntN(n)
		if sizes[i] > 1 || rng.IntN(8) == 0 { // favour flows that already have more than one packet
			sizes[i]++
			sum++
		}
	}
	if sum > total {
		// Too many: cap the largest flows (the Zipf head stays as drawn).
		lo, hi := uint32(1), uint32(total)
		for lo < hi { // the smallest cap c with sum(min(size, c)) >= total
			c := lo + (hi-lo)/2
			t := 0
			for _, v := range sizes {
				t += int(min(v, c))
			}
			if t >= total {
				hi = c
			} else {
				lo = c + 1
			}
		}
		sum = 0
		for i, v := range sizes {
			sizes[i] = min(v, lo)
			sum += int(sizes[i])
		}
		for i := 0; sum > total; i++ {
			if sizes[i] == lo {
				sizes[i]--
				sum--
			}
		}
	}
	return sizes, nil
}

// WriteMixedPcap writes a mixed stream as a classic pcap, generating it on the
// fly (memory: a few bytes per flow). Flows start in order of their id and up to
// Concurrent of them interleave; each frame is the next packet of a flow drawn
// uniformly from those in progress.
func WriteMixedPcap(w io.Writer, cfg MixedConfig) (MixedStats, error) {
	st := MixedStats{FramesBySize: map[string]int{}, MinFrameLen: 1 << 30}
	if cfg.Concurrent == 0 {
		cfg.Concurrent = 10000
	}
	if cfg.ZipfS == 0 {
		cfg.ZipfS = 2.1
	}
	defaultTimes(&cfg.StartNS, &cfg.StepNS)
	if cfg.Flows < 1 || cfg.Flows >= 1<<24 {
		return st, fmt.Errorf("synth: Flows must be in [1, 2^24), got %d", cfg.Flows)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x313c))
	sizes, err := flowSizes(rng, cfg.Flows, cfg.Frames, cfg.ZipfS)
	if err != nil {
		return st, err
	}
	pw, err := newPcapWriter(w)
	if err != nil {
		return st, err
	}
	newFlow := func(id int) *mflow {
		f := &mflow{id: uint32(id), size: sizes[id]}
		// Long flows are mostly TCP, short ones mostly UDP (DNS, NTP) or TCP
		// that never completes (a SYN, a SYN and its SYN-ACK...).
		tcp, udp := 45, 93
		if f.size >= 6 {
			tcp, udp = 85, 98
		}
		switch r := rng.IntN(100); {
		case r < tcp:
			f.proto = 6
			f.dport = []uint16{443, 443, 443, 80, 22, 8080}[rng.IntN(6)]
		case r < udp:
			f.proto = 17
			f.dport = []uint16{53, 53, 123, 443, 5353}[rng.IntN(5)]
		default:
			f.proto = 1
		}
		f.v6 = rng.IntN(10) < 3
		f.sport = uint16(1024 + rng.IntN(64000))
		f.cseq, f.sseq = rng.Uint32(), rng.Uint32()
		st.Flows++
		switch f.proto {
		case 6:
			st.TCPFlows++
			if f.size >= 6 {
				st.CompleteTCP++
			}
		case 17:
			st.UDPFlows++
		default:
			st.ICMPFlows++
		}
		if f.v6 {
			st.IPv6Flows++
		}
		if f.size == 1 {
			st.SinglePacketFlows++
		}
		st.LargestFlow = max(st.LargestFlow, int(f.size))
		return f
	}
	active := make([]*mflow, 0, cfg.Concurrent)
	next := 0
	for next < cfg.Flows && len(active) < cfg.Concurrent {
		active = append(active, newFlow(next))
		next++
	}
	buf := make([]byte, 1514)
	for i := 0; len(active) > 0; i++ {
		k := rng.IntN(len(active))
		f := active[k]
		frame := f.nextFrame(rng, buf)
		if err := pw.record(cfg.StartNS+int64(i)*cfg.StepNS, frame); err != nil {
			return st, err
		}
		st.Frames++
		st.Bytes += int64(len(frame))
		st.IPBytes += int64(len(frame) - 14)
		st.MinFrameLen = min(st.MinFrameLen, len(frame))
		st.MaxFrameLen = max(st.MaxFrameLen, len(frame))
		switch {
		case len(frame) <= 100:
			st.FramesBySize["small"]++
		case len(frame) >= 1000:
			st.FramesBySize["large"]++
		default:
			st.FramesBySize["medium"]++
		}
		if f.sent == f.size {
			if next < cfg.Flows {
				active[k] = newFlow(next)
				next++
			} else {
				active[k] = active[len(active)-1]
				active = active[:len(active)-1]
			}
		}
	}
	if st.Frames > 0 {
		st.AvgLen = int(st.Bytes / int64(st.Frames))
	}
	return st, pw.flush()
}

// imixIPLen draws an IP packet length 7:4:1 from 64, 576 and 1500 bytes.
func imixIPLen(rng *rand.Rand) int {
	switch r := rng.IntN(12); {
	case r < 7:
		return 64
	case r < 11:
		return 576
	default:
		return 1500
	}
}

// nextFrame writes the flow's next packet into buf and returns the frame.
func (f *mflow) nextFrame(rng *rand.Rand, buf []byte) []byte {
	n := f.sent
	f.sent++
	last := f.size - 1
	reverse := false
	var flags uint8
	ipLen := 0
	switch f.proto {
	case 6:
		const fin, syn, psh, ack = 0x01, 0x02, 0x08, 0x10
		complete := f.size >= 6
		switch {
		case n == 0:
			flags = syn
		case n == 1 && f.size >= 2:
			flags, reverse = syn|ack, true
		case n == 2:
			flags = ack
		case complete && n == last-2:
			flags = fin | ack
		case complete && n == last-1:
			flags, reverse = fin|ack, true
		case complete && n == last:
			flags = ack
		default:
			flags = psh | ack
			reverse = rng.IntN(3) != 0 // servers send more
			ipLen = imixIPLen(rng)
		}
	case 17:
		reverse = n%2 == 1 && rng.IntN(4) != 0
		ipLen = imixIPLen(rng)
	default:
		reverse = n%2 == 1 // echo request, reply
		ipLen = 84         // ping's default 56 data bytes: an 84-byte IPv4 packet
	}
	hdr := 20
	if f.v6 {
		hdr = 40
	}
	l4min := 8
	if f.proto == 6 {
		l4min = 20
	}
	ipLen = max(ipLen, hdr+l4min)
	if f.v6 && f.proto == 1 {
		ipLen = 104 // 56 data bytes over IPv6 + ICMPv6
	}
	frame := buf[:14+ipLen]
	clear(frame)
	copy(frame[0:6], []byte{0x02, 0, 0, 0, 0, 0x02})
	copy(frame[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	id := f.id
	var l4 []byte
	proto := f.proto
	if f.v6 && proto == 1 {
		proto = 58
	}
	if !f.v6 {
		binary.BigEndian.PutUint16(frame[12:14], 0x0800)
		ip := frame[14:]
		client := [4]byte{10, byte(id >> 16), byte(id >> 8), byte(id)}
		server := [4]byte{198, 18 + byte(id>>20&1), byte(id >> 8), byte(id)}
		src, dst := client, server
		if reverse {
			src, dst = server, client
		}
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:4], uint16(ipLen))
		binary.BigEndian.PutUint16(ip[4:6], uint16(n))
		binary.BigEndian.PutUint16(ip[6:8], 0x4000)
		ip[8] = 64
		ip[9] = proto
		copy(ip[12:16], src[:])
		copy(ip[16:20], dst[:])
		binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip[:20]))
		l4 = ip[20:ipLen]
	} else {
		binary.BigEndian.PutUint16(frame[12:14], 0x86dd)
		ip := frame[14:]
		client := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, byte(id >> 16), byte(id >> 8), byte(id)}
		server := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 2, 0, 0, 0, 0, 0, 0, 0, byte(id >> 16), byte(id >> 8), byte(id)}
		src, dst := client, server
		if reverse {
			src, dst = server, client
		}
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:6], uint16(ipLen-40))
		ip[6] = proto
		ip[7] = 64
		copy(ip[8:24], src[:])
		copy(ip[24:40], dst[:])
		l4 = ip[40:ipLen]
	}
	sp, dp := f.sport, f.dport
	if reverse {
		sp, dp = dp, sp
	}
	switch f.proto {
	case 6:
		binary.BigEndian.PutUint16(l4[0:2], sp)
		binary.BigEndian.PutUint16(l4[2:4], dp)
		seq, ackn := f.cseq, f.sseq
		if reverse {
			seq, ackn = ackn, seq
		}
		binary.BigEndian.PutUint32(l4[4:8], seq)
		if flags&0x10 != 0 {
			binary.BigEndian.PutUint32(l4[8:12], ackn)
		}
		l4[12] = 5 << 4
		l4[13] = flags
		binary.BigEndian.PutUint16(l4[14:16], 65535)
		adv := uint32(len(l4) - 20)
		if flags&0x03 != 0 {
			adv = 1
		}
		if reverse {
			f.sseq += adv
		} else {
			f.cseq += adv
		}
	case 17:
		binary.BigEndian.PutUint16(l4[0:2], sp)
		binary.BigEndian.PutUint16(l4[2:4], dp)
		binary.BigEndian.PutUint16(l4[4:6], uint16(len(l4)))
	default:
		typ := uint8(8) // echo request
		if reverse {
			typ = 0
		}
		if f.v6 {
			typ = 128
			if reverse {
				typ = 129
			}
		}
		l4[0] = typ
		binary.BigEndian.PutUint16(l4[4:6], f.sport) // identifier
		binary.BigEndian.PutUint16(l4[6:8], uint16(n/2))
	}
	return frame
}
