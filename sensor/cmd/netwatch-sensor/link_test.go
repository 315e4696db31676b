package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/syncbuf"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/pcapfile"
	"netwatch.dev/sensor/internal/testcollector"
)

// The link tests run the whole sensor in-process (run) against the real collector
// binary, built once from the workspace, over loopback gRPC: a kill -9 of the
// collector is a real one.

var collectorBin string

func TestMain(m *testing.M) { os.Exit(testcollector.Main(m, &collectorBin)) }

// storedRecords reads every flow record the collector holds for sensor, as oracle
// records.
func storedRecords(t *testing.T, c *testcollector.Proc, sensor string) []oracle.Record {
	t.Helper()
	var recs []oracle.Record
	for _, f := range c.Flows(sensor) {
		require.Equal(t, f.GetSrcPackets()+f.GetDstPackets(), f.GetPackets(), "%v", f)
		require.Equal(t, f.GetSrcBytes()+f.GetDstBytes(), f.GetBytes(), "%v", f)
		recs = append(recs, testcollector.Record(f))
	}
	return recs
}

func oracleTotals(want []oracle.Flow) (packets, bytes uint64) {
	for _, w := range want {
		packets += w.FwdPackets + w.RevPackets
		bytes += w.FwdBytes + w.RevBytes
	}
	return packets, bytes
}

// killCapture spans about 146 s of capture time (334 flows): at 40x the replay
// takes about 3.6 s, so a kill 1.5 s in lands in the middle of it. It is also the
// capture of TestSensorKilledMidReplay.
const killCapture = "pcapplusplus-tls2.pcap"

// derivedDir holds captures cut from pcapDir's, with their own oracle output.
var derivedDir = oracle.DerivedDir()

type killCase struct {
	dir, capture, speed string
	killAfter, downFor  time.Duration
	torn                bool
}

// TestCollectorKilledMidReadLosesNothing: `--read` of a capture to a collector that
// is killed with SIGKILL in the middle of it and started again on the same data
// directory a little later. The sensor spools and resends what was not acknowledged;
// the collector restores what it had acknowledged from its log and applies each batch
// once: the stored flows equal the oracle's exactly. In the torn-tail variant the
// newest log segment also ends in a record cut short (a write the kill interrupted);
// the collector reports it, truncates it and starts. The 1x variant replays in real
// time, as the sensor meets live traffic: the first 20 s of a capture with 39 flows,
// the collector killed 8 s in and down for 2 s.
func TestCollectorKilledMidReadLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		kc   killCase
	}{
		{"kill9", killCase{pcapDir, killCapture, "40x", 1500 * time.Millisecond, 1500 * time.Millisecond, false}},
		{"kill9-torn-tail", killCase{pcapDir, killCapture, "40x", 1500 * time.Millisecond, 1500 * time.Millisecond, true}},
		{"kill9-1x", killCase{derivedDir, "ndpi-alexa-app-first20s.pcapng", "1x", 8 * time.Second, 2 * time.Second, false}},
	} {
		t.Run(tc.name, func(t *testing.T) { killMidRead(t, tc.kc) })
	}
}

func killMidRead(t *testing.T, kc killCase) {
	path := filepath.Join(kc.dir, kc.capture)
	want, _, err := oracle.Load(kc.dir, oracle.Name(path))
	require.NoError(t, err)
	wantPackets, wantBytes := oracleTotals(want)

	c := testcollector.New(t, collectorBin)
	c.Start()
	const id = "kill-test"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr syncbuf.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sensor log:\n%s", stderr.String())
		}
	})
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		done <- run(ctx, []string{"--read", path, "--collector", c.Addr(), "--sensor-id", id,
			"--speed", kc.speed, "--export-interval", "200ms"}, io.Discard, &stderr)
	}()

	time.Sleep(kc.killAfter)
	_, durablePackets, _ := c.Totals(id)
	c.Kill()
	killedAt := time.Since(start)
	select {
	case code := <-done:
		t.Fatalf("the sensor finished (exit %d) before the collector was killed", code)
	default:
	}
	// Mid-read: part of the capture was acknowledged (and is durable), not all of it.
	require.Positive(t, durablePackets, "nothing reached the collector before the kill")
	require.Less(t, durablePackets, wantPackets, "the whole capture reached the collector before the kill")

	var tornSeg string
	var intact int64
	if kc.torn {
		tornSeg, intact, err = testcollector.TearLogTail(c.DataDir())
		require.NoError(t, err)
	}
	time.Sleep(kc.downFor)
	mark := c.LogLen()
	c.Start()
	restartedAt := time.Since(start)

	var code int
	select {
	case code = <-done:
	case <-time.After(25 * time.Second):
		t.Fatal("the sensor did not finish within 25 s of the restart")
	}
	require.Equal(t, exitOK, code, "the sensor exits 0 once every batch is acknowledged")
	finished := time.Since(start)

	restartLog := c.Log()[mark:]
	replayed := testcollector.Line(restartLog, "durable log replayed")
	require.NotEmpty(t, replayed, "restart log:\n%s", restartLog)
	batches, _ := strconv.Atoi(testcollector.Field(replayed, "batches"))
	assert.Positive(t, batches, "the acknowledged batches were replayed from the log: %s", replayed)
	if kc.torn {
		line := testcollector.Line(restartLog, "torn tail record truncated")
		require.NotEmpty(t, line, "the torn record is reported; restart log:\n%s", restartLog)
		assert.Equal(t, tornSeg, testcollector.Field(line, "segment"), line)
		assert.Equal(t, strconv.FormatInt(intact, 10), testcollector.Field(line, "offset"), line)
		fi, err := os.Stat(tornSeg)
		require.NoError(t, err)
		assert.Equal(t, intact, fi.Size(), "the torn tail is cut off the segment")
	}

	// The sensor noticed the link go down, spooled and reconnected (state changes are
	// logged once each, not per retry).
	sensorLog := stderr.String()
	assert.Equal(t, 1, strings.Count(sensorLog, "collector link down"), sensorLog)
	assert.GreaterOrEqual(t, strings.Count(sensorLog, "connected to collector"), 2, sensorLog)

	recs := storedRecords(t, c, id)
	if err := oracle.Compare(want, oracle.Fold(want, recs)); err != nil {
		t.Fatalf("after kill -9 and restart: %v", err)
	}
	flows, packets, bytes := c.Totals(id)
	assert.Equal(t, []uint64{wantPackets, wantBytes}, []uint64{packets, bytes}, "packets, bytes: nothing lost, nothing doubled")

	s := c.Sensor(id)
	require.NotNil(t, s)
	assert.Equal(t, "file:"+kc.capture, s.GetInterface())
	assert.Zero(t, s.GetLostFlows()+s.GetLostPackets()+s.GetLostBytes(), "no spool loss")
	t.Logf("killed at %v (%d of %d packets durable), restarted at %v, sensor done at %v; %d batches replayed; %d records = %d oracle flows exactly",
		killedAt.Round(time.Millisecond), durablePackets, wantPackets, restartedAt.Round(time.Millisecond),
		finished.Round(time.Millisecond), batches, flows, len(want))
}

// TestFiftySensorsStreamToOneCollector: 50 sensors in one process, each replaying
// one of the shared captures (they cycle) under its own --sensor-id, stream to one
// collector at once; each replay is paced to last about fleetPace (captures too short
// or too sparse for that are read at full speed), so most streams are open together.
// Every sensor's stored flows equal the oracle's for its capture, and its registry
// entry is its own: interface, hostname, boot, batches (each applied once), no loss,
// disconnected once it has stopped.
func TestFiftySensorsStreamToOneCollector(t *testing.T) {
	const sensors = 50
	all, err := oracle.Captures(pcapDir)
	require.NoError(t, err)
	type capture struct {
		path, speed string
		want        []oracle.Flow
	}
	var caps []capture
	for _, p := range all {
		want, sum, err := oracle.Load(pcapDir, oracle.Name(p))
		require.NoError(t, err)
		if sum.Flows > 0 {
			caps = append(caps, capture{path: p, want: want, speed: paceSpeed(t, p, fleetPace)})
		}
	}
	require.NotEmpty(t, caps)

	c := testcollector.New(t, collectorBin)
	c.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type sensor struct {
		id     string
		cap    capture
		code   int
		stderr syncbuf.Buffer
	}
	fleet := make([]*sensor, sensors)
	for i := range fleet {
		fleet[i] = &sensor{id: fmt.Sprintf("fleet-%02d", i), cap: caps[i%len(caps)]}
	}
	start := time.Now()
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for _, s := range fleet {
		wg.Go(func() {
			<-gate
			s.code = run(ctx, []string{"--read", s.cap.path, "--speed", s.cap.speed, "--collector", c.Addr(), "--sensor-id", s.id},
				io.Discard, &s.stderr)
		})
	}
	close(gate)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	peak := 0 // most sensors connected at once, seen by polling the registry
	for polling := true; polling; {
		select {
		case <-finished:
			polling = false
		case <-time.After(50 * time.Millisecond):
			n := 0
			for _, r := range c.Sensors() {
				if r.GetConnected() {
					n++
				}
			}
			peak = max(peak, n)
		}
	}
	elapsed := time.Since(start)
	for _, s := range fleet {
		require.Equal(t, exitOK, s.code, "%s (%s): %s", s.id, oracle.Name(s.cap.path), s.stderr.String())
	}

	hostname, _ := os.Hostname()
	var totalRecords, totalBatches int
	for _, s := range fleet {
		name := oracle.Name(s.cap.path)
		recs := storedRecords(t, c, s.id)
		totalRecords += len(recs)
		if err := oracle.Compare(s.cap.want, oracle.Fold(s.cap.want, recs)); err != nil {
			t.Errorf("%s (%s): %v", s.id, name, err)
		}
		_, packets, bytes := c.Totals(s.id)
		wp, wb := oracleTotals(s.cap.want)
		assert.Equal(t, []uint64{wp, wb}, []uint64{packets, bytes}, "%s (%s): packets, bytes", s.id, name)

		log := s.stderr.String()
		bootID := testcollector.Field(testcollector.Line(log, "exporting"), "boot_id")
		stopped := testcollector.Line(log, "export stopped")
		acked, err := strconv.ParseUint(testcollector.Field(stopped, "batches_acked"), 10, 64)
		require.NoError(t, err, "%s: %q", s.id, stopped)
		assert.Equal(t, "0", testcollector.Field(stopped, "batches_dropped"), stopped)
		assert.Equal(t, 1, strings.Count(log, "connected to collector"), "%s: one session, no reconnect: %s", s.id, log)
		totalBatches += int(acked)

		r := c.Sensor(s.id)
		require.NotNil(t, r, s.id)
		assert.Equal(t, bootID, r.GetBootId(), s.id)
		assert.Equal(t, "file:"+filepath.Base(s.cap.path), r.GetInterface(), s.id)
		assert.Equal(t, hostname, r.GetHostname(), s.id)
		assert.Equal(t, acked, r.GetBatches(), "%s: every batch applied once", s.id)
		assert.Positive(t, r.GetBatches(), s.id)
		assert.Zero(t, r.GetLostFlows()+r.GetLostPackets()+r.GetLostBytes(), s.id)
	}
	assert.Equal(t, sensors, strings.Count(c.Log(), "sensor connected"), "one stream per sensor")

	// Every sensor has stopped: none stays connected.
	var regs []*netwatchv1.Sensor
	require.Eventually(t, func() bool {
		regs = c.Sensors()
		for _, r := range regs {
			if r.GetConnected() {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "sensors still connected after they stopped")
	assert.Len(t, regs, sensors)
	assert.GreaterOrEqual(t, peak, sensors/2, "the streams overlapped")
	t.Logf("%d sensors (%d captures): %d batches, %d flow records, all exact; up to %d connected at once; replay and drain took %v",
		sensors, len(caps), totalBatches, totalRecords, peak, elapsed.Round(time.Millisecond))
}

// fleetPace is how long a paced replay of the fleet test lasts.
const fleetPace = 2 * time.Second

// paceSpeed is the --speed that replays the capture at path in about d (the sensor
// paces each frame against the first one): "max" when its frames span too little
// time (under a tenth of d), or so much that the speed would exceed the sensor's
// 1e6x cap.
func paceSpeed(t *testing.T, path string, d time.Duration) string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	r, err := pcapfile.NewReader(f)
	require.NoError(t, err)
	var rec pcapfile.Record
	var first, last int64
	for n := 0; ; n++ {
		if err := r.Next(&rec); err != nil {
			require.ErrorIs(t, err, io.EOF, path)
			break
		}
		if n == 0 {
			first = rec.Timestamp
		}
		last = max(last, rec.Timestamp)
	}
	span := time.Duration(last - first)
	speed := float64(span) / float64(d)
	if span < d/10 || speed > 1e6 {
		return "max"
	}
	return strconv.FormatFloat(speed, 'f', 3, 64) + "x"
}
