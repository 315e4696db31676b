package app

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"netwatch.dev/collector/internal/api"
	"netwatch.dev/collector/internal/connlimit"
	"netwatch.dev/common/syncbuf"
)

// fromAddr is a dialer whose connections come from the loopback address src
// (Linux routes all of 127.0.0.0/8 to lo).
func fromAddr(src string) *net.Dialer {
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
}

// TestOneAddressFloodingLeavesTheOthersServed: 127.0.0.2 opens 250 silent
// connections to each listener, whose loopback cap is 100: each keeps 100 open
// and closes the other 150 at once (counted in /metrics, logged once per window
// with the peer and the flag to raise). Meanwhile 127.0.0.3 gets /api/v1/health
// and a sensor on 127.0.0.4 is welcomed and acknowledged.
func TestOneAddressFloodingLeavesTheOthersServed(t *testing.T) {
	const limit, flood = 100, 250
	logs := &syncbuf.Buffer{}
	c := startCollectorLogging(t, func(cfg *Config) {
		cfg.HTTPConns = connlimit.Limits{PerIP: 5, Loopback: limit}
		cfg.GRPCConns = connlimit.Limits{PerIP: 5, Loopback: limit}
		cfg.RateLimit = api.RateLimit{}
	}, slog.New(slog.NewTextHandler(logs, nil)))

	flooder := fromAddr("127.0.0.2")
	for _, addr := range []string{c.HTTPAddr(), c.GRPCAddr()} {
		for range flood {
			conn, err := flooder.Dial("tcp", addr)
			require.NoError(t, err)
			t.Cleanup(func() { conn.Close() })
		}
	}
	// The silent connections are held until the header and handshake limits (10 s).
	require.Eventually(t, func() bool {
		return refused(&c.httpConns) == flood-limit && refused(&c.grpcConns) == flood-limit
	}, 10*time.Second, time.Millisecond, "refused: http %d, grpc %d", refused(&c.httpConns), refused(&c.grpcConns))
	from := &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}
	assert.Equal(t, limit, c.httpConns.Load().Open(from))
	assert.Equal(t, limit, c.grpcConns.Load().Open(from))

	// Another address gets the health.
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: fromAddr("127.0.0.3").DialContext}}
	resp, err := hc.Get("http://" + c.HTTPAddr() + "/api/v1/health")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	// A sensor on a third is welcomed and acknowledged.
	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return fromAddr("127.0.0.4").DialContext(ctx, "tcp", addr)
		}))
	require.NoError(t, err)
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := openSensor(ctx, conn, "s4", "")
	require.NoError(t, err)
	sendOneFlow(t, stream, 1, "10.0.0.1", "192.0.2.1", 1, 100)

	m := metricsText(t, "http://"+c.HTTPAddr(), "")
	assert.Contains(t, m, "\nnetwatch_collector_http_connections_refused_total 150\n")
	assert.Contains(t, m, "\nnetwatch_collector_grpc_connections_refused_total 150\n")
	for name, kind := range map[string]string{"http": "HTTP", "grpc": "gRPC"} {
		line := `msg="refused ` + kind + ` connection" peer=127.0.0.2:`
		assert.Equal(t, 1, strings.Count(logs.String(), line), "150 refusals, one line per window: %s\n%s", line, logs.String())
		assert.Contains(t, logs.String(), `reason="over the cap of 100 open connections per loopback address (--`+name+`-max-conns-loopback)"`)
	}
}
