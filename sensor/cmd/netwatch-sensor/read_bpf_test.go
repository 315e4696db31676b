package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/oracle"
)

// readSummary runs --read FILE --output jsonl with extra flags and returns the
// records and the summary's counters.
func readSummary(t *testing.T, file string, extra ...string) (recs []oracle.Record, summary map[string]uint64) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args := append([]string{"--read", filepath.Join(pcapDir, file), "--output", "jsonl", "--metrics-listen", ""}, extra...)
	code := run(context.Background(), args, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	summary = map[string]uint64{}
	for _, m := range regexp.MustCompile(`\b(packets|filtered|flows_written)=(\d+)`).FindAllStringSubmatch(stderr.String(), -1) {
		n, err := strconv.ParseUint(m[2], 10, 64)
		require.NoError(t, err)
		summary[m[1]] = n
	}
	return parseLines(t, stdout.String()), summary
}

// TestReadBPF: --read with --bpf writes exactly the flows of the unfiltered run
// that the filter matches (computed from the unfiltered output), on Ethernet, Linux
// cooked and raw IP captures, and the summary says how many frames it dropped.
func TestReadBPF(t *testing.T) {
	for _, tc := range []struct {
		file, expr string
		match      func(f oracle.Flow) bool
	}{
		{"pcapplusplus-example2.pcap", "tcp port 443", func(f oracle.Flow) bool { return f.Proto == 6 && (f.SrcPort == 443 || f.DstPort == 443) }},
		{"pcapplusplus-example2.pcap", "udp and not port 53", func(f oracle.Flow) bool { return f.Proto == 17 && f.SrcPort != 53 && f.DstPort != 53 }},
		{"pcapplusplus-sll.pcap", "udp", func(f oracle.Flow) bool { return f.Proto == 17 }},
		{"pcapplusplus-raw_ip.pcap", "ip6 and tcp", func(f oracle.Flow) bool { return f.Proto == 6 && !isV4(f.Src) }},
	} {
		t.Run(tc.file+"/"+tc.expr, func(t *testing.T) {
			all, sumAll := readSummary(t, tc.file)
			var want []oracle.Flow
			var wantPackets uint64
			for _, f := range oracle.Fold(nil, all) {
				if tc.match(f) {
					want = append(want, f)
					wantPackets += f.FwdPackets + f.RevPackets
				}
			}
			require.NotEmpty(t, want, "the filter must keep some flows")
			require.Less(t, len(want), len(oracle.Fold(nil, all)), "the filter must drop some flows")
			_, ok := sumAll["filtered"]
			assert.False(t, ok, "no filtered= without --bpf")

			got, sum := readSummary(t, tc.file, "--bpf", tc.expr)
			if err := oracle.Compare(want, oracle.Fold(want, got)); err != nil {
				t.Fatal(err)
			}
			assert.Equal(t, sumAll["packets"], sum["packets"], "packets counts every frame read")
			assert.Equal(t, sumAll["packets"]-wantPackets, sum["filtered"], "filtered= counts the frames the filter dropped")
		})
	}
}

func isV4(addr string) bool { return bytes.IndexByte([]byte(addr), ':') < 0 }

// TestReadBPFBadExpression: a bad --bpf with --read is a usage error naming the flag,
// before the file is opened.
func TestReadBPFBadExpression(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--read", "does-not-exist.pcap", "--output", "jsonl", "--bpf", "tcp and and"}, &stdout, &stderr)
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, stderr.String(), `--bpf="tcp and and" (command line): filter "tcp and and": expected a primitive, got "and" at offset 8`)
}
