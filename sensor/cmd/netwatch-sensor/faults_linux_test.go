package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/syncbuf"
	"netwatch.dev/common/testproc"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/testcollector"
	"netwatch.dev/sensor/internal/testnet"
)

// nsCollector runs the collector binary inside the test namespace, listening for
// sensors on the namespace's end of the veth pair.
type nsCollector struct {
	t       *testing.T
	cmd     *exec.Cmd
	addr    string
	log     *syncbuf.Buffer
	dataDir string
}

func startNSCollector(t *testing.T, ns string, ip netip.Addr) *nsCollector {
	t.Helper()
	c := &nsCollector{t: t, addr: netip.AddrPortFrom(ip, 9090).String(), log: &syncbuf.Buffer{}, dataDir: t.TempDir()}
	// ip netns exec execs the collector after entering the namespace: the pid is
	// the collector's. The test queries it from the root namespace, beyond
	// loopback: without an API token that needs --allow-unauthenticated.
	c.cmd = exec.Command("ip", "netns", "exec", ns, collectorBin, "--grpc-listen", c.addr, "--insecure",
		"--allow-unauthenticated", "--http-listen", "127.0.0.1:8080", "--data-dir", c.dataDir)
	c.cmd.Stdout, c.cmd.Stderr = c.log, c.log
	require.NoError(t, c.cmd.Start())
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		c.cmd.Wait()
		if t.Failed() {
			t.Logf("collector log:\n%s", c.log.String())
		}
	})
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", c.addr, 200*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "collector listening in the namespace")
	return c
}

// query runs fn with a QueryService client of the collector.
func (c *nsCollector) query(fn func(q netwatchv1.QueryServiceClient, ctx context.Context)) {
	c.t.Helper()
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(c.t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fn(netwatchv1.NewQueryServiceClient(conn), ctx)
}

// records is every stored flow of sensor as oracle records.
func (c *nsCollector) records(sensor string) []oracle.Record {
	c.t.Helper()
	var recs []oracle.Record
	c.query(func(q netwatchv1.QueryServiceClient, ctx context.Context) {
		for off := 0; ; off += 1000 {
			resp, err := q.ListFlows(ctx, &netwatchv1.ListFlowsRequest{Sensor: sensor, Limit: "1000", Offset: strconv.Itoa(off),
				SortBy: "first_seen", SortOrder: "asc"})
			require.NoError(c.t, err)
			for _, f := range resp.GetFlows() {
				recs = append(recs, testcollector.Record(f))
			}
			if !resp.GetPagination().GetHasMore() {
				return
			}
		}
	})
	return recs
}

// logLines are the lines of log at level WARN or above, and those with msg.
func logLines(log string, msgs ...string) (lines []string) {
	for l := range strings.Lines(log) {
		keep := strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR")
		for _, m := range msgs {
			keep = keep || strings.Contains(l, "msg=\""+m) || strings.Contains(l, "msg="+m)
		}
		if keep {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

// linkCutFor is how long TestLiveLinkCut keeps the link down.
const linkCutFor = 20 * time.Second

// TestLiveLinkCut: the collector runs in a network namespace, reached over a veth
// pair; a sensor replays a capture to it, and the link is cut (ip link set DEV down)
// for 20 s in the middle of the replay, then restored. The sensor notices, spools,
// reconnects and resends: the stored flows equal the oracle's exactly (nothing lost,
// nothing doubled), and it logs one line per change of state (connected, link down,
// connected), not one per retry.
func TestLiveLinkCut(t *testing.T) {
	tn := testnet.New(t)
	path := filepath.Join(pcapDir, killCapture)
	want, _, err := oracle.Load(pcapDir, oracle.Name(path))
	require.NoError(t, err)
	wantPackets, wantBytes := oracleTotals(want)
	c := startNSCollector(t, tn.NS, tn.PeerIP)

	const id = "link-cut"
	var stderr syncbuf.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("sensor log:\n%s", stderr.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	done := make(chan int, 1)
	start := time.Now()
	go func() {
		// 146 s of capture at 20x: 7.3 s, most of it while the link is down.
		done <- run(ctx, []string{"--read", path, "--collector", c.addr, "--insecure", "--sensor-id", id,
			"--speed", "20x", "--export-interval", "200ms"}, io.Discard, &stderr)
	}()
	require.Eventually(t, func() bool { return len(c.records(id)) > 0 }, 10*time.Second, 100*time.Millisecond, "flows reach the collector")
	cutAt := time.Since(start)
	testnet.IP(t, "link", "set", tn.Host, "down")
	time.Sleep(linkCutFor)
	testnet.IP(t, "link", "set", tn.Host, "up")
	restoredAt := time.Since(start)
	var code int
	select {
	case code = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the sensor did not finish within 60 s of the link coming back")
	}
	finished := time.Since(start)
	require.Equal(t, exitOK, code, "every batch acknowledged")

	if err := oracle.Compare(want, oracle.Fold(want, c.records(id))); err != nil {
		t.Fatalf("after the link cut: %v", err)
	}
	var packets, bytes uint64
	for _, r := range c.records(id) {
		packets += r.SrcPackets + r.DstPackets
		bytes += r.SrcBytes + r.DstBytes
	}
	assert.Equal(t, []uint64{wantPackets, wantBytes}, []uint64{packets, bytes}, "packets, bytes: nothing lost, nothing doubled")

	log := stderr.String()
	changes := logLines(log, "connected to collector", "collector link down")
	assert.Equal(t, 1, strings.Count(log, "collector link down"), "one line when the link goes down: %s", log)
	assert.Equal(t, 2, strings.Count(log, "connected to collector"), "one line per (re)connection: %s", log)
	assert.Len(t, changes, 3, "connected, link down, connected; no line per retry:\n%s", strings.Join(changes, "\n"))
	t.Logf("cut at %v for %v, restored at %v, sensor done at %v; %d packets exact; state changes:\n%s",
		cutAt.Round(time.Millisecond), linkCutFor, restoredAt.Round(time.Millisecond), finished.Round(time.Millisecond), packets, strings.Join(changes, "\n"))
}

// metricValue reads one unlabelled series from a Prometheus text page.
func metricValue(t *testing.T, url, name string) (float64, bool) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for l := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// TestLiveInterfaceDownAndUp: a live sensor on one end of a veth pair, exporting to
// the real collector. The interface goes down: the sensor says so (its
// netwatch_sensor_interface_up gauge and the interface_status it reports to the
// collector) and keeps running; it comes back: the sensor reports it up and counts
// new traffic, without a restart (one process, one collector session).
func TestLiveInterfaceDownAndUp(t *testing.T) {
	tn := testnet.New(t)
	const udpPort, id = 7017, "ifdown"
	tn.UDPEcho(t, tn.PeerIP, udpPort)
	c := testcollector.New(t, collectorBin)
	c.Start()
	metricsAddr := testproc.FreeAddr(t)
	metrics := "http://" + metricsAddr + "/metrics"

	var stderr syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--interface", tn.Host, "--collector", c.Addr(), "--sensor-id", id, "--metrics-listen", metricsAddr,
			"--export-interval", "200ms"}, io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the sensor did not stop")
		}
		if t.Failed() {
			t.Logf("sensor log:\n%s", stderr.String())
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "connected to collector") },
		5*time.Second, 10*time.Millisecond, "sensor started: %s", stderr.String())
	status := func() netwatchv1.InterfaceStatus {
		s := c.Sensor(id)
		return s.GetMetrics().GetInterfaceStatus()
	}
	gauge := func(name string) float64 { v, _ := metricValue(t, metrics, name); return v }

	testnet.UDPExchange(t, tn.PeerIP, udpPort, 10, 100)
	require.Eventually(t, func() bool {
		return gauge("netwatch_sensor_interface_up") == 1 && status() == netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP &&
			gauge("netwatch_sensor_packets_total") >= 20
	}, 5*time.Second, 50*time.Millisecond, "up, counting")
	before := gauge("netwatch_sensor_packets_total")

	testnet.IP(t, "link", "set", tn.Host, "down")
	downAt := time.Now()
	require.Eventually(t, func() bool {
		return gauge("netwatch_sensor_interface_up") == 0 && status() == netwatchv1.InterfaceStatus_INTERFACE_STATUS_DOWN
	}, 5*time.Second, 50*time.Millisecond, "the sensor reports the interface down (metrics and collector)")
	reported := time.Since(downAt)
	time.Sleep(time.Second) // a few export intervals down: the sensor keeps going
	select {
	case code := <-done:
		t.Fatalf("the sensor exited (%d) when its interface went down", code)
	default:
	}

	testnet.IP(t, "link", "set", tn.Host, "up")
	upAt := time.Now()
	require.Eventually(t, func() bool {
		return gauge("netwatch_sensor_interface_up") == 1 && status() == netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP
	}, 10*time.Second, 50*time.Millisecond, "the sensor reports the interface up again")
	recovered := time.Since(upAt)
	// The route comes back with the link; the first datagrams may wait for ARP.
	var src int
	require.Eventually(t, func() bool {
		src = testnetUDPTry(tn.PeerIP, udpPort, 15)
		return src != 0
	}, 10*time.Second, 200*time.Millisecond, "traffic through the interface again")
	require.Eventually(t, func() bool { return gauge("netwatch_sensor_packets_total") >= before+30 },
		5*time.Second, 50*time.Millisecond, "the sensor counts the new traffic")
	require.Eventually(t, func() bool {
		for _, f := range c.Flows(id) {
			if f.GetProtocol() == 17 && int(f.GetSrcPort()) == src && f.GetSrcPackets() >= 15 && f.GetDstPackets() >= 15 {
				return true
			}
		}
		return false
	}, 5*time.Second, 100*time.Millisecond, "the new flow reaches the collector")

	log := stderr.String()
	assert.Equal(t, 1, strings.Count(log, "msg=capturing"), "no restart of the capture")
	assert.Equal(t, 1, strings.Count(log, "connected to collector"), "one collector session")
	t.Logf("down reported after %v, up again after %v; packets %v -> %v", reported.Round(time.Millisecond),
		recovered.Round(time.Millisecond), before, gauge("netwatch_sensor_packets_total"))
}

// testnetUDPTry sends count datagrams to dst:port and waits for each echo; it returns
// the source port, or 0 when an echo did not come back.
func testnetUDPTry(dst netip.Addr, port, count int) int {
	c, err := net.Dial("udp4", netip.AddrPortFrom(dst, uint16(port)).String())
	if err != nil {
		return 0
	}
	defer c.Close()
	buf := make([]byte, 256)
	for i := range count {
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte(fmt.Sprintf("datagram %d", i))); err != nil {
			return 0
		}
		if _, err := c.Read(buf); err != nil {
			return 0
		}
	}
	return c.LocalAddr().(*net.UDPAddr).Port
}
