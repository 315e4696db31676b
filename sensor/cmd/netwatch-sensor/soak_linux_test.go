package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"netwatch.dev/common/syncbuf"
	"netwatch.dev/common/testproc"
	"netwatch.dev/sensor/internal/testcollector"
)

// The soak (make soak; skipped unless NETWATCH_SOAK_DURATION is set): the sensor
// binary loops a shared capture at 20x with --rebase-time into the collector binary
// (retention 1 minute, so its store reaches a steady state after warm-up) for the
// duration, and every NETWATCH_SOAK_INTERVAL (default 10 s) a sample of both
// processes goes to NETWATCH_SOAK_CSV (default bench/out/soak.csv): resident memory
// (/proc/PID/status VmRSS), threads and open file descriptors, the collector's stored
// flows and ingested packets (its /metrics) and the sensor's packets (its /metrics).
// The collector exports no goroutine count, so its threads and descriptors stand for
// it: a goroutine leak that holds connections shows as descriptors, one that runs
// shows as CPU, neither as nothing.
//
// The bound, after warm-up (NETWATCH_SOAK_WARMUP, default a sixth of the duration,
// between 1 and 5 minutes): the median RSS of the last three samples may exceed the
// median of the first three by at most soakRSSGrowth of it plus soakRSSSlack, for
// each process; threads and descriptors by at most soakCountSlack. Both processes
// must run to the end, and the collector must have received traffic all along.
const (
	soakRSSGrowth  = 0.10
	soakRSSSlack   = 8 << 20
	soakCountSlack = 10
)

type soakSample struct {
	at                                   time.Duration
	sensorRSS, collectorRSS              uint64
	sensorThreads, collectorThreads      int
	sensorFDs, collectorFDs              int
	storedFlows, ingested, sensorPackets float64
}

// procStatus reads VmRSS (bytes) and Threads of pid.
func procStatus(pid int) (rss uint64, threads int, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 2 && fields[0] == "VmRSS:":
			kb, _ := strconv.ParseUint(fields[1], 10, 64)
			rss = kb << 10
		case len(fields) >= 2 && fields[0] == "Threads:":
			threads, _ = strconv.Atoi(fields[1])
		}
	}
	return rss, threads, sc.Err()
}

func fdCount(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents)
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	require.NoError(t, err, "%s=%q", name, v)
	return d
}

func median3(xs []uint64) uint64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestSoak(t *testing.T) {
	if os.Getenv("NETWATCH_SOAK_DURATION") == "" {
		t.Skip("the soak runs with make soak (NETWATCH_SOAK_DURATION, e.g. 30m)")
	}
	duration := envDuration(t, "NETWATCH_SOAK_DURATION", 30*time.Minute)
	interval := envDuration(t, "NETWATCH_SOAK_INTERVAL", 10*time.Second)
	warmup := envDuration(t, "NETWATCH_SOAK_WARMUP", min(5*time.Minute, max(time.Minute, duration/6)))
	require.Greater(t, duration, warmup+5*interval, "the soak must last beyond warm-up by several samples")
	csvPath := os.Getenv("NETWATCH_SOAK_CSV")
	if csvPath == "" {
		csvPath = filepath.Join("..", "..", "..", "bench", "out", "soak.csv")
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(csvPath), 0o755))

	bin := buildSensor(t, t.TempDir())
	c := testcollector.New(t, collectorBin, "--retention", "1m", "--rate-limit-local", "0")
	c.Start()
	collectorPID := collectorPid(t, c)
	metricsAddr := testproc.FreeAddr(t)
	var sensorLog syncbuf.Buffer
	sensor := exec.Command(bin, "--read", filepath.Join(pcapDir, killCapture), "--loop", "--rebase-time", "--speed", "20x",
		"--collector", c.Addr(), "--sensor-id", "soak", "--metrics-listen", metricsAddr)
	sensor.Stdout, sensor.Stderr = io.Discard, &sensorLog
	require.NoError(t, sensor.Start())
	exited := make(chan error, 1)
	go func() { exited <- sensor.Wait() }()
	t.Cleanup(func() {
		sensor.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sensor log (tail):\n%s", tail(sensorLog.String(), 4000))
			t.Logf("collector log (tail):\n%s", tail(c.Log(), 4000))
		}
	})

	f, err := os.Create(csvPath)
	require.NoError(t, err)
	defer f.Close()
	fmt.Fprintln(f, "elapsed_s,sensor_rss_bytes,collector_rss_bytes,sensor_threads,collector_threads,sensor_fds,collector_fds,collector_store_flows,collector_ingested_packets_total,sensor_packets_total")
	collectorMetrics := "http://" + c.HTTPAddr() + "/metrics"
	sensorMetrics := "http://" + metricsAddr + "/metrics"

	var samples []soakSample
	start := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Since(start) < duration {
		select {
		case err := <-exited:
			t.Fatalf("the sensor exited after %v: %v", time.Since(start).Round(time.Second), err)
		case <-tick.C:
		}
		require.True(t, c.Running(), "the collector is running")
		s := soakSample{at: time.Since(start)}
		var err error
		s.sensorRSS, s.sensorThreads, err = procStatus(sensor.Process.Pid)
		require.NoError(t, err)
		s.collectorRSS, s.collectorThreads, err = procStatus(collectorPID)
		require.NoError(t, err)
		s.sensorFDs, s.collectorFDs = fdCount(sensor.Process.Pid), fdCount(collectorPID)
		s.storedFlows, _ = metricValue(t, collectorMetrics, "netwatch_collector_store_flows")
		s.ingested, _ = metricValue(t, collectorMetrics, "netwatch_collector_ingested_packets_total")
		s.sensorPackets, _ = metricValue(t, sensorMetrics, "netwatch_sensor_packets_total")
		samples = append(samples, s)
		fmt.Fprintf(f, "%.0f,%d,%d,%d,%d,%d,%d,%.0f,%.0f,%.0f\n", s.at.Seconds(), s.sensorRSS, s.collectorRSS,
			s.sensorThreads, s.collectorThreads, s.sensorFDs, s.collectorFDs, s.storedFlows, s.ingested, s.sensorPackets)
		if len(samples) > 1 {
			require.Greater(t, s.ingested, samples[len(samples)-2].ingested, "the collector ingests all along (sample at %v)", s.at)
		}
	}
	require.NoError(t, f.Sync())

	var after []soakSample
	for _, s := range samples {
		if s.at >= warmup {
			after = append(after, s)
		}
	}
	require.GreaterOrEqual(t, len(after), 6, "samples after warm-up")
	first, last := after[:3], after[len(after)-3:]
	pick := func(ss []soakSample, f func(soakSample) uint64) []uint64 {
		var out []uint64
		for _, s := range ss {
			out = append(out, f(s))
		}
		return out
	}
	for _, p := range []struct {
		name string
		rss  func(soakSample) uint64
		n    []func(soakSample) uint64
	}{
		{"sensor", func(s soakSample) uint64 { return s.sensorRSS },
			[]func(soakSample) uint64{func(s soakSample) uint64 { return uint64(s.sensorThreads) }, func(s soakSample) uint64 { return uint64(s.sensorFDs) }}},
		{"collector", func(s soakSample) uint64 { return s.collectorRSS },
			[]func(soakSample) uint64{func(s soakSample) uint64 { return uint64(s.collectorThreads) }, func(s soakSample) uint64 { return uint64(s.collectorFDs) }}},
	} {
		base, end := median3(pick(first, p.rss)), median3(pick(last, p.rss))
		bound := base + uint64(float64(base)*soakRSSGrowth) + soakRSSSlack
		t.Logf("%s RSS after warm-up: %.1f MiB -> %.1f MiB (bound %.1f MiB)", p.name, mib(base), mib(end), mib(bound))
		if end > bound {
			t.Errorf("%s RSS grew from %.1f MiB to %.1f MiB after warm-up: more than %.0f%% + %d MiB", p.name, mib(base), mib(end),
				soakRSSGrowth*100, soakRSSSlack>>20)
		}
		for i, what := range []string{"threads", "file descriptors"} {
			b, e := median3(pick(first, p.n[i])), slices.Max(pick(after, p.n[i]))
			if e > b+soakCountSlack {
				t.Errorf("%s %s grew from %d to %d after warm-up", p.name, what, b, e)
			}
		}
	}
	// The curve, one line a minute (the CSV has every sample).
	var curve strings.Builder
	fmt.Fprintf(&curve, "%8s %12s %14s %10s %10s %12s\n", "elapsed", "sensor MiB", "collector MiB", "coll thr", "coll fds", "flows")
	for i, s := range samples {
		if i%max(1, int(time.Minute/interval)) == 0 || i == len(samples)-1 {
			fmt.Fprintf(&curve, "%8v %12.1f %14.1f %10d %10d %12.0f\n", s.at.Round(time.Second), mib(s.sensorRSS), mib(s.collectorRSS),
				s.collectorThreads, s.collectorFDs, s.storedFlows)
		}
	}
	lastS := samples[len(samples)-1]
	t.Logf("soak %v (warm-up %v, %d samples in %s): %.0f packets replayed, %.0f ingested\n%s", duration, warmup, len(samples), csvPath,
		lastS.sensorPackets, lastS.ingested, curve.String())
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// collectorPid finds the collector's process by its gRPC address on its command line
// (testcollector does not expose the process).
func collectorPid(t *testing.T, c *testcollector.Proc) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if slices.Contains(args, c.Addr()) && slices.Contains(args, c.DataDir()) {
			return pid
		}
	}
	t.Fatalf("no process with %s and %s on its command line", c.Addr(), c.DataDir())
	return 0
}
