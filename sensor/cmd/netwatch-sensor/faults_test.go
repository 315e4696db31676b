package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/syncbuf"
	"netwatch.dev/common/testproc"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/pcapfile"
	"netwatch.dev/sensor/internal/testcollector"
)

// The fault tests: what the sensor does when its input, its process, its capture
// interface or its link to the collector breaks. Real processes and namespaces where
// the fault is a kernel's or another process's doing.

// buildSensor compiles netwatch-sensor into dir (tests that need it as a process of
// its own, to SIGKILL it or read its RSS).
func buildSensor(t testing.TB, dir string) string {
	t.Helper()
	bin, err := testproc.Build(dir, "netwatch.dev/sensor/cmd/netwatch-sensor")
	require.NoError(t, err)
	return bin
}

// captured is what a capture file holds up to where it can be read.
type captured struct {
	ipPackets int   // frames the decoder takes for IP (the sensor counts exactly these into flows)
	frames    int   // frames read
	readErr   error // nil at a clean end of file
	first     int64 // timestamp of the first frame
	ts        []int64
}

// readCapture reads path as the sensor does, frame by frame, until the end or the
// first error.
func readCapture(t testing.TB, path string) captured {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var c captured
	r, err := pcapfile.NewReader(f)
	if err != nil {
		c.readErr = err
		return c
	}
	var rec pcapfile.Record
	var dec decode.Decoder
	var p decode.Packet
	for {
		if err := r.Next(&rec); err != nil {
			if !errors.Is(err, io.EOF) {
				c.readErr = err
			}
			return c
		}
		if c.frames == 0 {
			c.first = rec.Timestamp
		}
		c.frames++
		if dec.Decode(rec.LinkType, rec.Data, &p).IsIP() {
			c.ipPackets++
			c.ts = append(c.ts, rec.Timestamp)
		}
	}
}

// ipPacketsUntil counts the IP packets stamped at or before ts.
func (c captured) ipPacketsUntil(ts int64) (n uint64) {
	for _, v := range c.ts {
		if v <= ts {
			n++
		}
	}
	return n
}

// recordOffsets are the byte offsets of the record headers of a classic
// little-endian pcap file (24-byte file header, 16-byte record headers).
func recordOffsets(t testing.TB, b []byte) []int {
	t.Helper()
	require.Equal(t, []byte{0xd4, 0xc3, 0xb2, 0xa1}, b[:4], "a little-endian microsecond pcap")
	var offs []int
	for off := 24; off+16 <= len(b); {
		offs = append(offs, off)
		off += 16 + int(binary.LittleEndian.Uint32(b[off+8:]))
	}
	return offs
}

// TestReadCorruptCaptures: captures cut short, with a corrupt record header, with
// flipped payload bytes, or no capture at all. The sensor never panics; where the
// file breaks it exits 1 saying which packet at which byte offset (the reader's own
// words) and that the flows before it were kept; its flows count every IP packet
// before the break exactly once (nothing lost, nothing doubled), and none is larger
// than the same flow in the whole capture.
func TestReadCorruptCaptures(t *testing.T) {
	const name = "pcapplusplus-example2"
	full, err := os.ReadFile(filepath.Join(pcapDir, name+".pcap"))
	require.NoError(t, err)
	want, _, err := oracle.Load(pcapDir, name)
	require.NoError(t, err)
	offs := recordOffsets(t, full)
	ng, err := os.ReadFile(filepath.Join(pcapDir, "ndpi-alexa-app.pcapng"))
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(7, 7))

	flipPayload := func(n int) []byte {
		b := bytes.Clone(full)
		for range n {
			k := 1 + rng.IntN(len(offs)-1)
			start, end := offs[k]+16, len(b)
			if k+1 < len(offs) {
				end = offs[k+1]
			}
			if end > start {
				b[start+rng.IntN(end-start)] ^= byte(1 + rng.IntN(255))
			}
		}
		return b
	}
	withCaplen := func(k int, v uint32) []byte {
		b := bytes.Clone(full)
		binary.LittleEndian.PutUint32(b[offs[k]+8:], v)
		return b
	}
	garbage := make([]byte, 4096)
	for i := range garbage {
		garbage[i] = byte(rng.IntN(256))
	}
	mid := len(offs) / 2
	for _, tc := range []struct {
		name     string
		data     []byte
		subset   bool // the flows are a part of the whole capture's (header-level damage only)
		wantExit int  // 0; 1 when the file breaks; 2 when it is no capture at all (a bad --read)
	}{
		{"empty", nil, true, exitUsage},
		{"cut-in-file-header", full[:10], true, exitUsage},
		{"garbage", garbage, true, exitUsage},
		{"cut-in-first-record-header", full[:24+7], true, exitFailure},
		{"cut-in-record-header", full[:offs[mid]+9], true, exitFailure},
		{"cut-in-record-data", full[:offs[mid]+16+3], true, exitFailure},
		{"cut-in-last-record", full[:offs[len(offs)-1]+16+10], true, exitFailure},
		{"cut-at-record-boundary", full[:offs[mid]], true, exitOK}, // a shorter capture, not a broken one
		{"caplen-huge", withCaplen(mid, 0xfffffff0), true, exitFailure},
		{"caplen-past-end", withCaplen(len(offs)-1, 1<<20), true, exitFailure},
		{"caplen-zero", withCaplen(mid, 0), false, -1}, // the next header is read from the frame's data: wherever that leads
		{"payload-flips", flipPayload(300), false, exitOK},
		{"pcapng-cut", ng[:len(ng)*2/3], true, exitFailure},
		{"pcapng-block-length", func() []byte {
			b := bytes.Clone(ng)
			binary.LittleEndian.PutUint32(b[len(b)/2-(len(b)/2)%4:], 0xdeadbeef) // somewhere in a block: length, type or data
			return b
		}(), false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext := ".pcap"
			if strings.HasPrefix(tc.name, "pcapng") {
				ext = ".pcapng"
			}
			path := filepath.Join(t.TempDir(), tc.name+ext)
			require.NoError(t, os.WriteFile(path, tc.data, 0o644))
			exp := readCapture(t, path)

			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"--read", path, "--output", "jsonl", "--sensor-id", "corrupt"}, &stdout, &stderr)
			if exp.readErr == nil {
				require.Equal(t, exitOK, code, "the reader reads it to the end; stderr: %s", stderr.String())
			} else {
				want := exitFailure
				if tc.wantExit == exitUsage {
					want = exitUsage // the file header is unreadable: --read names no capture
				}
				require.Equal(t, want, code, "the reader stops at %v; stderr: %s", exp.readErr, stderr.String())
				assert.Contains(t, stderr.String(), exp.readErr.Error(), "says where it broke")
				if exp.frames > 0 {
					assert.Contains(t, stderr.String(), "were kept")
				}
			}
			if tc.wantExit >= 0 {
				assert.Equal(t, tc.wantExit, code, "stderr: %s", stderr.String())
			}
			recs := parseLines(t, stdout.String())
			var packets uint64
			for _, r := range recs {
				packets += r.SrcPackets + r.DstPackets
			}
			assert.Equal(t, uint64(exp.ipPackets), packets, "every IP packet before the break, once: %d frames read", exp.frames)
			if tc.subset && strings.HasPrefix(tc.name, "pcapng") == false {
				for _, g := range oracle.Fold(want, recs) {
					w, ok := findFlow(want, g)
					require.True(t, ok, "a flow the whole capture does not have: %+v", g)
					assert.True(t, g.FwdPackets <= w.FwdPackets && g.RevPackets <= w.RevPackets && g.FwdBytes <= w.FwdBytes && g.RevBytes <= w.RevBytes,
						"flow %s is larger than in the whole capture:\n got %+v\nwant %+v", g.Key(), g, w)
				}
			}
			t.Logf("exit %d, %d frames, %d IP packets in %d flow records; %v", code, exp.frames, packets, len(recs), exp.readErr)
		})
	}
}

func findFlow(want []oracle.Flow, g oracle.Flow) (oracle.Flow, bool) {
	for _, w := range want {
		if w.Key() == g.Key() {
			return w, true
		}
	}
	return oracle.Flow{}, false
}

// TestSensorKilledMidReplay: the sensor binary replays a capture at 20x to the real
// collector and is SIGKILLed after 3 s. What the collector holds is bounded on both
// sides by the replay position at the kill: at least every IP packet read up to 1 s
// before it (the unacknowledged batches of the last export intervals are all that
// may be lost), at most what was read by then (nothing invented or doubled), no flow
// larger than the oracle's. The collector reports the sensor disconnected and stale,
// with its last batch just before the kill: the incomplete window is visible.
func TestSensorKilledMidReplay(t *testing.T) {
	const (
		id        = "killed-sensor"
		speed     = 20.0
		killAfter = 3 * time.Second
		slack     = time.Second // export interval (200 ms), hand-over, commit and ack
	)
	path := filepath.Join(pcapDir, killCapture)
	want, _, err := oracle.Load(pcapDir, oracle.Name(path))
	require.NoError(t, err)
	capt := readCapture(t, path)
	require.NoError(t, capt.readErr)
	bin := buildSensor(t, t.TempDir())

	c := testcollector.New(t, collectorBin)
	c.Start()
	var stderr syncbuf.Buffer
	cmd := exec.Command(bin, "--read", path, "--collector", c.Addr(), "--sensor-id", id, "--speed", "20x",
		"--export-interval", "200ms", "--metrics-listen", "")
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	require.NoError(t, cmd.Start())
	started := time.Now()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sensor log:\n%s", stderr.String())
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "connected to collector") },
		5*time.Second, 10*time.Millisecond, "the sensor connects")
	time.Sleep(killAfter - time.Since(started))
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	killedAt := time.Since(started)
	killWall := time.Now()
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, "signal: killed", exit.Error())

	// The collector notices at once: the kernel closed the sensor's connection.
	var reg *netwatchv1.Sensor
	require.Eventually(t, func() bool {
		reg = c.Sensor(id)
		return reg != nil && !reg.GetConnected() && reg.GetStale()
	}, 5*time.Second, 50*time.Millisecond, "the collector reports the killed sensor disconnected and stale")
	noticed := time.Now()
	// The collector stamps a batch when it applies it: one the sensor wrote just before
	// the kill can be applied just after it, but not after the disconnect was seen.
	last := reg.GetLastBatchAt().AsTime()
	assert.WithinRange(t, last, killWall.Add(-slack), noticed, "last batch just before the kill")
	assert.Eventually(t, func() bool { return strings.Contains(c.Log(), "sensor disconnected") },
		2*time.Second, 20*time.Millisecond, "the collector logs the disconnect")

	_, packets, _ := c.Totals(id)
	// Pacing: frame i is sent first + (ts_i - ts_0)/speed after the start (the start
	// is a little after cmd.Start, so these bounds are conservative).
	readBy := func(d time.Duration) int64 { return capt.first + int64(float64(d)*speed) }
	minKept := capt.ipPacketsUntil(readBy(killedAt - slack))
	maxRead := capt.ipPacketsUntil(readBy(killedAt))
	require.Less(t, maxRead, uint64(capt.ipPackets), "killed mid-replay")
	assert.GreaterOrEqual(t, packets, minKept, "lost more than the last %v of the replay", slack)
	assert.LessOrEqual(t, packets, maxRead, "stored more than the sensor had read")
	recs := storedRecords(t, c, id)
	for _, g := range oracle.Fold(want, recs) {
		w, ok := findFlow(want, g)
		require.True(t, ok, "a flow the capture does not have: %+v", g)
		assert.True(t, g.FwdPackets <= w.FwdPackets && g.RevPackets <= w.RevPackets && g.FwdBytes <= w.FwdBytes && g.RevBytes <= w.RevBytes,
			"flow %s is larger than the oracle's (doubled?):\n got %+v\nwant %+v", g.Key(), g, w)
	}
	t.Logf("killed at %v: collector holds %d IP packets; read by then ≤ %d, by 1 s before ≥ %d; lost at most %d of %d; last batch %v before the kill",
		killedAt.Round(time.Millisecond), packets, maxRead, minKept, maxRead-packets, capt.ipPackets, killWall.Sub(last).Round(time.Millisecond))
}
