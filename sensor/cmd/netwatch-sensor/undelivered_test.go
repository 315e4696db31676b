package main

import (
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/syncbuf"
	"netwatch.dev/common/testproc"
	"netwatch.dev/sensor/internal/testcollector"
)

// silentCollector receives the sensor's batches over real gRPC on loopback but
// never acknowledges one: a collector that cannot make anything durable.
type silentCollector struct {
	*testcollector.Recorder
	addr string
}

func newSilentCollector(t *testing.T) *silentCollector {
	r := testcollector.StartRecorder(t, false)
	return &silentCollector{Recorder: r, addr: r.Addr}
}

// received is what the collector was sent: batches, flow updates, packets, bytes.
func (c *silentCollector) received() [4]uint64 {
	var r [4]uint64
	for _, b := range c.Batches() {
		r[0]++
		for _, d := range b.GetDeltas() {
			r[1]++
			r[2] += d.GetSrcPackets() + d.GetDstPackets()
			r[3] += d.GetSrcBytes() + d.GetDstBytes()
		}
	}
	return r
}

var (
	pendingRE = regexp.MustCompile(`netwatch-sensor: undelivered data: (\d+) batches \((\d+) flow updates, (\d+) packets, (\d+) bytes\) not acknowledged by collector (\S+) when the sensor stopped; they are lost`)
	droppedRE = regexp.MustCompile(`(\d+) batches \((\d+) flow updates, (\d+) packets, (\d+) bytes\) dropped earlier from a full spool`)
)

// figures reads the four numbers of a match of pendingRE or droppedRE.
func figures(t *testing.T, m []string) [4]uint64 {
	t.Helper()
	require.GreaterOrEqual(t, len(m), 5)
	var r [4]uint64
	for i := range r {
		n, err := strconv.ParseUint(m[i+1], 10, 64)
		require.NoError(t, err)
		r[i] = n
	}
	return r
}

// sensorProc is the sensor binary, started.
type sensorProc struct {
	cmd    *exec.Cmd
	stderr syncbuf.Buffer
	done   chan struct{}
}

func startSensorBin(t *testing.T, bin string, args ...string) *sensorProc {
	t.Helper()
	p := &sensorProc{cmd: exec.Command(bin, append(args, "--metrics-listen", "")...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, &p.stderr
	require.NoError(t, p.cmd.Start())
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("sensor log:\n%s", p.stderr.String())
		}
	})
	return p
}

// wait is the exit code, or a failure after 30 s.
func (p *sensorProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the sensor did not exit; log:\n%s", p.stderr.String())
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitLog waits until the sensor logs s.
func (p *sensorProc) waitLog(t *testing.T, s string) {
	t.Helper()
	require.Eventually(t, func() bool { return strings.Contains(p.stderr.String(), s) }, 30*time.Second, 20*time.Millisecond,
		"the sensor logs %q", s)
}

// TestSensorStoppingWithUndeliveredDataExits3 drives the sensor binary to the end of
// a --read and stops it with SIGTERM while the collector lacks data: it exits 3
// (exitUndelivered) with one line saying how much (batches, flow updates, packets,
// IP-layer bytes), and the figures are exactly what was read and not acknowledged.
// A sensor whose collector acknowledges everything exits 0 and says nothing of it.
func TestSensorStoppingWithUndeliveredDataExits3(t *testing.T) {
	bin := buildSensor(t, t.TempDir())
	const waiting = "end of capture: waiting for the collector to acknowledge every batch"

	t.Run("collector never acknowledges", func(t *testing.T) {
		path := filepath.Join(pcapDir, "pcapplusplus-DnsPackets.pcap")
		want, _, err := oracle.Load(pcapDir, oracle.Name(path))
		require.NoError(t, err)
		wantPackets, wantBytes := oracleTotals(want)
		c := newSilentCollector(t)
		p := startSensorBin(t, bin, "--read", path, "--collector", c.addr, "--sensor-id", "unacked", "--export-interval", "200ms")
		p.waitLog(t, waiting)
		// Every batch reached the collector (and none was acknowledged) before the signal.
		require.Eventually(t, func() bool { return c.received()[2] == wantPackets }, 10*time.Second, 20*time.Millisecond)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, exitUndelivered, p.wait(t), "log:\n%s", p.stderr.String())
		m := pendingRE.FindStringSubmatch(p.stderr.String())
		require.NotNil(t, m, "the undelivered line; log:\n%s", p.stderr.String())
		assert.Equal(t, c.addr, m[5])
		got := figures(t, m)
		assert.Equal(t, wantPackets, got[2], "packets: every IP packet of the capture")
		assert.Equal(t, wantBytes, got[3], "bytes: every IP-layer byte of the capture")
		assert.Equal(t, c.received(), got, "what the collector was sent and never acknowledged")
		assert.NotContains(t, p.stderr.String(), "full spool", "nothing was dropped from the spool")
	})

	t.Run("no collector and a spool too small", func(t *testing.T) {
		path := filepath.Join(pcapDir, killCapture) // 146 s in 100 ms batches: more than 64 KiB
		want, _, err := oracle.Load(pcapDir, oracle.Name(path))
		require.NoError(t, err)
		wantPackets, wantBytes := oracleTotals(want)
		p := startSensorBin(t, bin, "--read", path, "--collector", testproc.FreeAddr(t), "--sensor-id", "alone",
			"--export-interval", "100ms", "--spool-size", "64KiB")
		p.waitLog(t, waiting)
		require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
		require.Equal(t, exitUndelivered, p.wait(t), "log:\n%s", p.stderr.String())
		log := p.stderr.String()
		pm, dm := pendingRE.FindStringSubmatch(log), droppedRE.FindStringSubmatch(log)
		require.NotNil(t, pm, "the spooled batches; log:\n%s", log)
		require.NotNil(t, dm, "the dropped batches; log:\n%s", log)
		pending, dropped := figures(t, pm), figures(t, dm)
		assert.Positive(t, pending[0])
		assert.Positive(t, dropped[0])
		assert.Equal(t, wantPackets, pending[2]+dropped[2], "spooled + dropped packets = the capture's")
		assert.Equal(t, wantBytes, pending[3]+dropped[3], "spooled + dropped bytes = the capture's")
		assert.Equal(t, 1, strings.Count(log, "undelivered data:"), "one line")
	})

	t.Run("everything delivered", func(t *testing.T) {
		c := testcollector.New(t, collectorBin)
		c.Start()
		path := filepath.Join(pcapDir, "pcapplusplus-DnsPackets.pcap")
		p := startSensorBin(t, bin, "--read", path, "--collector", c.Addr(), "--sensor-id", "delivered", "--export-interval", "200ms")
		require.Equal(t, exitOK, p.wait(t), "log:\n%s", p.stderr.String())
		assert.NotContains(t, p.stderr.String(), "undelivered")
	})
}
