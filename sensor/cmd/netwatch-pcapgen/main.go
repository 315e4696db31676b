// Command netwatch-pcapgen writes a seeded, deterministic classic pcap for
// benchmarks, generated frame by frame (memory does not grow with the file).
//
// Profile "uniform" (the default): fixed-size Ethernet/IPv4 TCP and UDP frames,
// each on a flow drawn uniformly from -flows:
//
//	netwatch-pcapgen -frames 10000000 -flows 100000 -len 64 -o bench.pcap
//
// Profile "mixed": Zipf flow sizes over -flows flows, IPv4 and IPv6, TCP with
// SYN/SYN-ACK/ACK handshakes and FINs, UDP, ICMP echo, IMIX-like frame sizes
// (7:4:1 of 64/576/1500-byte IP packets); a summary goes to stderr as JSON:
//
//	netwatch-pcapgen -profile mixed -frames 5000000 -flows 1000000 -o mixed.pcap
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"netwatch.dev/sensor/internal/synth"
)

func main() {
	var cfg synth.Config
	out := flag.String("o", "", "output file (required)")
	profile := flag.String("profile", "uniform", "uniform or mixed")
	flag.IntVar(&cfg.Frames, "frames", 1_000_000, "frames in the stream")
	flag.IntVar(&cfg.Flows, "flows", 100_000, "distinct bidirectional flows")
	flag.IntVar(&cfg.FrameLen, "len", 64, "bytes per frame (>= 54; uniform only)")
	seed := flag.Uint64("seed", 1, "random seed: same seed, same file")
	repeat := flag.Int("repeat", 1, "write the stream this many times, timestamps increasing (uniform only; holds the stream in memory)")
	concurrent := flag.Int("concurrent", 10000, "flows in progress at once (mixed only)")
	zipf := flag.Float64("zipf", 2.1, "Zipf exponent of the flow sizes, > 1; about 2.1 gives 5 packets per flow (mixed only)")
	flag.Parse()
	cfg.Seed = *seed
	if *out == "" {
		fail(2, fmt.Errorf("-o FILE is required"))
	}
	f, err := os.Create(*out)
	if err != nil {
		fail(1, err)
	}
	switch *profile {
	case "uniform":
		if *repeat > 1 {
			var s *synth.Stream
			if s, err = synth.Generate(cfg); err == nil {
				err = synth.WritePcap(f, s, *repeat)
			}
		} else {
			err = synth.WriteUniformPcap(f, cfg)
		}
	case "mixed":
		var st synth.MixedStats
		st, err = synth.WriteMixedPcap(f, synth.MixedConfig{Frames: cfg.Frames, Flows: cfg.Flows, Seed: cfg.Seed, Concurrent: *concurrent, ZipfS: *zipf})
		if err == nil {
			b, _ := json.Marshal(st)
			fmt.Fprintln(os.Stderr, string(b))
		}
	default:
		err = fmt.Errorf("-profile %q: want uniform or mixed", *profile)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(*out)
		fail(1, err)
	}
}

func fail(code int, err error) {
	fmt.Fprintln(os.Stderr, "netwatch-pcapgen:", err)
	os.Exit(code)
}
