// Package synth generates deterministic synthetic traffic for benchmarks and
// tests: fixed-size Ethernet/IPv4 TCP and UDP frames spread over many flows,
// in memory or as a classic pcap file.
package synth

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
)

// Config describes a stream.
type Config struct {
	Frames   int    // number of frames, >= 1
	Flows    int    // number of distinct bidirectional flows, >= 1 and < 2^24
	FrameLen int    // bytes per frame, >= 54 (Ethernet+IPv4+TCP); 0 means 64
	Seed     uint64 // same seed, same stream
	// StepNS is the time between consecutive frames; 0 means 1000 (1 µs).
	StepNS int64
	// StartNS is the first frame's timestamp; 0 means 2026-01-01T00:00:00Z.
	StartNS int64
}

// Stream is a generated stream: frame i is Data[i*FrameLen:(i+1)*FrameLen],
// captured at StartNS + i*StepNS.
type Stream struct {
	Data     []byte
	FrameLen int
	N        int
	StartNS  int64
	StepNS   int64
}

// Frame returns frame i (aliasing Data).
func (s *Stream) Frame(i int) []byte {
	o := i * s.FrameLen
	return s.Data[o : o+s.FrameLen : o+s.FrameLen]
}

// Timestamp returns frame i's capture time in unix nanoseconds.
func (s *Stream) Timestamp(i int) int64 { return s.StartNS + int64(i)*s.StepNS }

// defaultTimes fills in the documented defaults of a StartNS and StepNS left 0:
// 2026-01-01T00:00:00Z, and 1 µs between frames.
func defaultTimes(startNS, stepNS *int64) {
	if *stepNS == 0 {
		*stepNS = 1000
	}
	if *startNS == 0 {
		*startNS = 1767225600 * 1e9
	}
}

// normalize fills in the defaults documented on Config and checks the rest.
func (cfg *Config) normalize() error {
	if cfg.FrameLen == 0 {
		cfg.FrameLen = 64
	}
	defaultTimes(&cfg.StartNS, &cfg.StepNS)
	switch {
	case cfg.Frames < 1:
		return fmt.Errorf("synth: Frames must be >= 1, got %d", cfg.Frames)
	case cfg.Flows < 1 || cfg.Flows >= 1<<24:
		return fmt.Errorf("synth: Flows must be in [1, 2^24), got %d", cfg.Flows)
	case cfg.FrameLen < 54 || cfg.FrameLen > 1514:
		return fmt.Errorf("synth: FrameLen must be in [54, 1514], got %d", cfg.FrameLen)
	}
	return nil
}

// Generate builds a stream. Flow j is TCP (even j) or UDP (odd j) between
// client 10.x.y.z:(1024 + j mod 60000) and server 172.16.x.y:(80 or 53); each
// frame picks a flow uniformly at random and goes either way with equal
// probability. IPv4 Total Length is FrameLen - 14.
func Generate(cfg Config) (*Stream, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	s := &Stream{Data: make([]byte, cfg.Frames*cfg.FrameLen), FrameLen: cfg.FrameLen, N: cfg.Frames, StartNS: cfg.StartNS, StepNS: cfg.StepNS}
	for i := range cfg.Frames {
		j := rng.IntN(cfg.Flows)
		writeFrame(s.Frame(i), j, rng.IntN(2) == 1, i)
	}
	return s, nil
}

func writeFrame(f []byte, j int, reverse bool, seq int) {
	client := [4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)}
	server := [4]byte{172, 16, byte(j >> 8 & 0x0f), byte(j)}
	cport := uint16(1024 + j%60000)
	tcp := j%2 == 0
	sport := uint16(80)
	if !tcp {
		sport = 53
	}
	src, dst, sp, dp := client, server, cport, sport
	if reverse {
		src, dst, sp, dp = server, client, sport, cport
	}
	// Ethernet: locally administered MACs, ethertype IPv4.
	copy(f[0:6], []byte{0x02, 0, 0, 0, 0, 0x02})
	copy(f[6:12], []byte{0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(f[12:14], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:4], uint16(len(f)-14))
	binary.BigEndian.PutUint16(ip[4:6], uint16(seq))
	binary.BigEndian.PutUint16(ip[6:8], 0x4000) // DF
	ip[8] = 64
	copy(ip[12:16], src[:])
	copy(ip[16:20], dst[:])
	l4 := ip[20:]
	binary.BigEndian.PutUint16(l4[0:2], sp)
	binary.BigEndian.PutUint16(l4[2:4], dp)
	if tcp {
		ip[9] = 6
		binary.BigEndian.PutUint32(l4[4:8], uint32(seq))
		l4[12] = 5 << 4
		l4[13] = 0x18 // PSH|ACK
		binary.BigEndian.PutUint16(l4[14:16], 65535)
	} else {
		ip[9] = 17
		binary.BigEndian.PutUint16(l4[4:6], uint16(len(l4)))
	}
	binary.BigEndian.PutUint16(ip[10:12], ipChecksum(ip[:20]))
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// WritePcap writes the stream as a classic little-endian nanosecond pcap
// (LINKTYPE_ETHERNET), repeating it `repeat` times (>= 1) with timestamps
// continuing, so a large file needs only one stream in memory.
func WritePcap(w io.Writer, s *Stream, repeat int) error {
	pw, err := newPcapWriter(w)
	if err != nil {
		return err
	}
	for r := range max(repeat, 1) {
		for i := range s.N {
			if err := pw.record(s.Timestamp(r*s.N+i), s.Frame(i)); err != nil {
				return fmt.Errorf("frame %d: %w", i, err)
			}
		}
	}
	return pw.flush()
}
