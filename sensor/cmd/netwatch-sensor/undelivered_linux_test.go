package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/syncbuf"
	"netwatch.dev/sensor/internal/testnet"
)

// TestLiveSensorStoppedWithUnacknowledgedBatchesExits3: a live sensor (AF_PACKET
// on the host end of a veth pair) streams to a collector that never acknowledges;
// SIGTERM (the context run is given, as main does) stops it, it gives the collector
// its 5 s and exits 3 saying how much it could not deliver, at least every packet
// the test exchanged. (It used to exit 0: the export error was dropped on a signal.)
func TestLiveSensorStoppedWithUnacknowledgedBatchesExits3(t *testing.T) {
	tn := testnet.New(t)
	const udpPort, udpCount, udpSize = 7017, 20, 100
	tn.UDPEcho(t, tn.PeerIP, udpPort)
	c := newSilentCollector(t)

	var stderr syncbuf.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--interface", tn.Host, "--collector", c.addr, "--metrics-listen", "",
			"--export-interval", "200ms", "--sensor-id", "live-unacked"}, &strings.Builder{}, &stderr)
	}()
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "msg=capturing") },
		5*time.Second, 10*time.Millisecond, "sensor did not start: %s", stderr.String())
	testnet.UDPExchange(t, tn.PeerIP, udpPort, udpCount, udpSize)
	require.Eventually(t, func() bool { return c.received()[2] >= 2*udpCount }, 10*time.Second, 20*time.Millisecond,
		"the exchange reaches the collector")
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("sensor did not stop")
	}
	log := stderr.String()
	require.Equal(t, exitUndelivered, code, "log:\n%s", log)
	m := pendingRE.FindStringSubmatch(log)
	require.NotNil(t, m, "the undelivered line; log:\n%s", log)
	got := figures(t, m)
	assert.GreaterOrEqual(t, got[2], uint64(2*udpCount), "every packet of the exchange is undelivered")
	assert.Positive(t, got[0])
	assert.Equal(t, c.addr, m[5])
}
