// Command netwatch-pcapgen writes a seeded, deterministic classic pcap of small
// Ethernet/IPv4 TCP and UDP frames spread over many flows, for benchmarks.
//
//	netwatch-pcapgen -frames 10000000 -flows 100000 -len 64 -o bench.pcap
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"netwatch.dev/sensor/internal/synth"
)

func main() {
	var cfg synth.Config
	out := flag.String("o", "", "output file (required)")
	flag.IntVar(&cfg.Frames, "frames", 1_000_000, "frames in the stream")
	flag.IntVar(&cfg.Flows, "flows", 100_000, "distinct bidirectional flows")
	flag.IntVar(&cfg.FrameLen, "len", 64, "bytes per frame (>= 54)")
	seed := flag.Uint64("seed", 1, "random seed: same seed, same file")
	repeat := flag.Int("repeat", 1, "write the stream this many times (timestamps keep increasing)")
	flag.Parse()
	cfg.Seed = *seed
	if *out == "" {
		fmt.Fprintln(os.Stderr, "netwatch-pcapgen: -o FILE is required")
		os.Exit(2)
	}
	s, err := synth.Generate(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netwatch-pcapgen:", err)
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netwatch-pcapgen:", err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := synth.WritePcap(w, s, *repeat); err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netwatch-pcapgen:", err)
		os.Exit(1)
	}
}
