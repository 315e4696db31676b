package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/oracle"
)

var pcapDir = oracle.Dir()

// jsonLine is the part of a --output jsonl line the tests compare.
type jsonLine struct {
	SrcIP, DstIP         string
	SrcPort, DstPort     uint16
	Protocol             uint8
	Packets, Bytes       uint64
	SrcPackets, SrcBytes uint64
	DstPackets, DstBytes uint64
	FirstSeen, LastSeen  time.Time
	Status, EndReason    string
}

func parseLines(t *testing.T, out string) []oracle.Record {
	t.Helper()
	var recs []oracle.Record
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var l jsonLine
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		require.Equal(t, l.SrcPackets+l.DstPackets, l.Packets, "packets = srcPackets + dstPackets: %s", sc.Text())
		require.Equal(t, l.SrcBytes+l.DstBytes, l.Bytes, "bytes = srcBytes + dstBytes: %s", sc.Text())
		require.NotEmpty(t, l.EndReason, "every record says why it ended: %s", sc.Text())
		recs = append(recs, oracle.Record{
			Proto: l.Protocol, Src: l.SrcIP, SrcPort: l.SrcPort, Dst: l.DstIP, DstPort: l.DstPort,
			SrcPackets: l.SrcPackets, SrcBytes: l.SrcBytes, DstPackets: l.DstPackets, DstBytes: l.DstBytes,
			FirstSeen: l.FirstSeen.UnixNano(), LastSeen: l.LastSeen.UnixNano(),
		})
	}
	require.NoError(t, sc.Err())
	return recs
}

// TestReadMatchesOracle runs `netwatch-sensor --read FILE --output jsonl` (the
// default timeouts: flows may be cut into several records) on every shared capture
// and compares the records, summed per 5-tuple, with the oracle's flows.
func TestReadMatchesOracle(t *testing.T) {
	paths, err := oracle.Captures(pcapDir)
	require.NoError(t, err)
	require.Len(t, paths, 30)
	for _, path := range paths {
		name := oracle.Name(path)
		t.Run(name, func(t *testing.T) {
			want, _, err := oracle.Load(pcapDir, name)
			require.NoError(t, err)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"--read", path, "--output", "jsonl", "--sensor-id", "oracle-test"}, &stdout, &stderr)
			require.Equal(t, 0, code, "stderr: %s", stderr.String())
			if err := oracle.Compare(want, oracle.Fold(want, parseLines(t, stdout.String()))); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		})
	}
}

// TestReadTruncatedFileKeepsWhatItDecoded cuts a capture in the middle of a packet:
// the sensor says where the file broke, exits 1, and still writes the flows of
// every packet before the break.
func TestReadTruncatedFileKeepsWhatItDecoded(t *testing.T) {
	full, err := os.ReadFile(filepath.Join(pcapDir, "pcapplusplus-example2.pcap"))
	require.NoError(t, err)
	cut := filepath.Join(t.TempDir(), "cut.pcap")
	require.NoError(t, os.WriteFile(cut, full[:len(full)/2+7], 0o644))

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--read", cut, "--output", "jsonl"}, &stdout, &stderr)
	assert.Equal(t, exitFailure, code)
	assert.Regexp(t, `packet \d+ at byte offset \d+`, stderr.String())
	assert.Contains(t, stderr.String(), "were kept")
	recs := parseLines(t, stdout.String())
	assert.Greater(t, len(recs), 50, "flows before the break are written")
}

// TestBadFlagsNameTheField: configuration errors exit 2 naming what is wrong.
func TestBadFlagsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--output", "jsonl"}, "--interface"},
		{[]string{"--read", "x.pcap"}, "--collector"},
		{[]string{"--read", "x.pcap", "--output", "xml"}, "--output=xml"},
		{[]string{"--read", "x.pcap", "--output", "jsonl", "--speed", "fast"}, "--speed=fast"},
		{[]string{"--read", "x.pcap", "--output", "jsonl", "--idle-timeout", "0s"}, "--idle-timeout=0s"},
		{[]string{"--interface", "lo", "--output", "jsonl", "--ring-block-size", "3000"}, "--ring-block-size=3000"},
		{[]string{"--interface", "lo", "--output", "jsonl", "--fanout", "0"}, "--fanout=0"},
		{[]string{"--interface", "lo", "--output", "jsonl", "--bpf", "tcp and and"}, `--bpf="tcp and and"`},
		{[]string{"--read", "x.pcap", "--collector", "collector.example:9090"}, "--ca (not set)"},
		{[]string{"--read", "x.pcap", "--output", "jsonl", "--max-flows", "lots"}, "--max-flows=lots"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, &stdout, &stderr)
		assert.Equal(t, exitUsage, code, "%v", tc.args)
		assert.Contains(t, stderr.String(), tc.want, "%v", tc.args)
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitOK, run(context.Background(), []string{"--version"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "netwatch-sensor")
}
