package ingest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/syncbuf"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// startWith is startCollector with the server's connection lifetimes, a clock and
// a log of its own.
func startWith(t *testing.T, mutate func(*Config), l lifetimes, now func() time.Time, logs *syncbuf.Buffer) *collector {
	t.Helper()
	return startWithStore(t, mutate, store.DefaultConfig(), l, now, logs)
}

// startWithStore is startWith on a store of configuration scfg.
func startWithStore(t *testing.T, mutate func(*Config), scfg store.Config, l lifetimes, now func() time.Time, logs *syncbuf.Buffer) *collector {
	t.Helper()
	cfg := DefaultConfig()
	cfg.DataDir = ""
	if mutate != nil {
		mutate(&cfg)
	}
	st := store.New(scfg)
	svc, err := New(cfg, st, slog.New(slog.NewTextHandler(logs, nil)), now)
	require.NoError(t, err)
	require.NoError(t, svc.Start())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(serverOptions(16<<20, l)...)
	netwatchv1.RegisterSensorServiceServer(srv, svc)
	go srv.Serve(lis)
	c := &collector{svc: svc, store: st, srv: srv, addr: lis.Addr().String()}
	t.Cleanup(c.stop)
	return c
}

// openSilent opens an Ingest stream (with metadata md) and sends nothing; the
// stream's context ends after 20 s so that a collector that never answers fails
// the test instead of hanging it.
func openSilent(t *testing.T, addr string, md ...string) netwatchv1.SensorService_IngestClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(ctx)
	require.NoError(t, err)
	return stream
}

// TestStreamWithoutHelloIsClosed: a stream that sends nothing is ended by the
// collector once HelloTimeout has passed (without it, it is held for ever: 20k
// of them took every file descriptor); the refusal is logged with the peer.
func TestStreamWithoutHelloIsClosed(t *testing.T) {
	logs := &syncbuf.Buffer{}
	c := startWith(t, func(cfg *Config) { cfg.HelloTimeout = 200 * time.Millisecond }, defaultLifetimes, time.Now, logs)
	stream := openSilent(t, c.addr)
	_, err := stream.Recv()
	require.Equal(t, codes.DeadlineExceeded, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "no hello within 200ms of opening the stream", "the collector's refusal, not the test's own deadline")
	assert.Contains(t, logs.String(), `msg="refused sensor stream" peer=127.0.0.1:`)
	assert.Contains(t, logs.String(), `reason="no hello in time"`)

	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err, "a stream that says hello at once is served")
	s.send(batch(1, 2))
	assert.Equal(t, uint64(1), s.ack())
}

// TestTokenIsCheckedWhenTheStreamOpens: with tokens, a stream without one of them
// is refused before the collector reads anything (the hello deadline is a minute
// here: only the check at open answers in time); one with a known token is read,
// and its hello must then name the token's sensor. Refusals are logged once per
// peer per window.
func TestTokenIsCheckedWhenTheStreamOpens(t *testing.T) {
	logs := &syncbuf.Buffer{}
	c := startWith(t, func(cfg *Config) {
		cfg.Tokens = map[string]string{"s1": "tok1", "s2": "tok2"}
		cfg.HelloTimeout = time.Minute
	}, defaultLifetimes, time.Now, logs)
	for _, md := range [][]string{nil, {"authorization", "Bearer nope"}, {"authorization", "Bearer tok"}, {"authorization", "tok1x"}} {
		_, err := openSilent(t, c.addr, md...).Recv()
		require.Equal(t, codes.Unauthenticated, status.Code(err), "%v: %v", md, err)
		assert.Contains(t, status.Convert(err).Message(), "missing or unknown bearer token")
	}
	lines := strings.Count(logs.String(), `reason="bad token"`)
	assert.Equal(t, 1, lines, "four refusals of one peer, one line:\n%s", logs.String())
	assert.Contains(t, logs.String(), "peer=127.0.0.1:")

	_, _, err := dial(t, c.addr, "s1", "b", "authorization", "Bearer tok2")
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "a known token, of another sensor: %v", err)
	s, _, err := dial(t, c.addr, "s2", "b", "authorization", "Bearer tok2")
	require.NoError(t, err)
	s.send(batch(1, 1))
	assert.Equal(t, uint64(1), s.ack())
}

// readUntilClosed reads c until the server closes it; false if it did not within
// 20 s (a hang guard, not a timing assertion: the lifetimes tested are far shorter).
func readUntilClosed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestSilentConnectionsAreClosed: a TCP connection that never starts HTTP/2 is
// closed after the handshake limit (grpc-go's default is 2 minutes), one that
// starts HTTP/2 but opens no stream after the idle limit.
func TestSilentConnectionsAreClosed(t *testing.T) {
	c := startWith(t, nil, lifetimes{handshake: 200 * time.Millisecond, idle: 300 * time.Millisecond, age: time.Hour}, time.Now, &syncbuf.Buffer{})
	silent, err := net.Dial("tcp", c.addr)
	require.NoError(t, err)
	defer silent.Close()
	assert.True(t, readUntilClosed(silent), "a connection that says nothing is closed")

	idle, err := net.Dial("tcp", c.addr)
	require.NoError(t, err)
	defer idle.Close()
	_, err = idle.Write([]byte(http2.ClientPreface))
	require.NoError(t, err)
	fr := http2.NewFramer(idle, idle)
	require.NoError(t, fr.WriteSettings())
	// Answer the server's keepalive pings (an unanswered ping closes the connection
	// too) until it goes away.
	idle.SetReadDeadline(time.Now().Add(20 * time.Second))
	goaway := ""
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			var ne net.Error
			require.False(t, errors.As(err, &ne) && ne.Timeout(), "an HTTP/2 connection without a stream is closed")
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				require.NoError(t, fr.WriteSettingsAck())
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				require.NoError(t, fr.WritePing(true, f.Data))
			}
		case *http2.GoAwayFrame:
			goaway = string(f.DebugData())
		}
	}
	assert.Equal(t, "max_idle", goaway, "closed as idle")
}

// TestSensorStreamOutlivesTheConnectionAge: past the connection age, the collector
// tells the connection to go away, but the sensor's stream goes on (unbounded
// grace) and keeps being acknowledged.
func TestSensorStreamOutlivesTheConnectionAge(t *testing.T) {
	c := startWith(t, nil, lifetimes{handshake: 10 * time.Second, idle: time.Hour, age: 200 * time.Millisecond}, time.Now, &syncbuf.Buffer{})
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	for seq := uint64(1); seq <= 8; seq++ {
		time.Sleep(150 * time.Millisecond) // 1.2 s in all: several ages (200 ms ±10 %)
		s.send(batch(seq, 1))
		require.Equal(t, seq, s.ack())
	}
	v := c.svc.Sensors()
	require.Len(t, v, 1)
	assert.True(t, v[0].GetConnected())
}

// TestRegistryForgetsGoneSensors: with --max-sensors 2, two sensors that came and
// went fill the registry; a third id is refused with why (how many connected, how
// many remembered, until when), and admitted once they are forgotten, their dedup
// marks with them. Connected sensors are never forgotten.
func TestRegistryForgetsGoneSensors(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := startWith(t, func(cfg *Config) { cfg.MaxSensors = 2 }, defaultLifetimes, clock, &syncbuf.Buffer{})
	for _, id := range []string{"s1", "s2"} {
		s, _, err := dial(t, c.addr, id, "boot-"+id)
		require.NoError(t, err)
		s.send(batch(1, 1))
		require.Equal(t, uint64(1), s.ack())
		s.conn.Close()
	}
	require.Eventually(t, func() bool {
		for _, v := range c.svc.Sensors() {
			if v.GetConnected() {
				return false
			}
		}
		return true
	}, 10*time.Second, 5*time.Millisecond, "both disconnected")
	forgotten := clock().Add(61 * time.Minute)

	advance(30 * time.Minute)
	_, _, err := dial(t, c.addr, "s3", "boot-s3")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	msg := status.Convert(err).Message()
	assert.Contains(t, msg, "collector holds its maximum of 2 sensors (--max-sensors): 0 connected, 2 disconnected and remembered while their flows may be in the 1h0m0s retention window")
	assert.Contains(t, msg, "the first of them is forgotten at "+forgotten.UTC().Format(time.RFC3339)[:16], "%s", msg)

	advance(31*time.Minute + time.Second) // past retention and the store's cleanup minute
	assert.Empty(t, c.svc.Sensors(), "out of the list already")
	s3, _, err := dial(t, c.addr, "s3", "boot-s3")
	require.NoError(t, err, "room made by forgetting s1 and s2")
	s3.send(batch(1, 1))
	require.Equal(t, uint64(1), s3.ack())
	c.svc.mu.Lock()
	_, s1 := c.svc.sensors["s1"]
	_, mark := c.svc.boots[[2]string{"s1", "boot-s1"}]
	c.svc.mu.Unlock()
	assert.False(t, s1, "s1 forgotten")
	assert.False(t, mark, "with its boot's mark")

	_, _, err = dial(t, c.addr, "s4", "boot-s4")
	require.NoError(t, err)
	advance(3 * time.Hour)
	_, _, err = dial(t, c.addr, "s5", "boot-s5")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), ": 2 connected, 0 disconnected and remembered")
	assert.NotContains(t, status.Convert(err).Message(), "forgotten at")
}

// TestSensorTheStoreCannotNumberIsRefusedBeforeItsBatches: the store numbers at
// most MaxSensorIDs distinct sensor ids in its life (even once the registry forgot
// them); a sensor beyond it is refused at the hello, so no batch of it is
// acknowledged and then dropped by the store.
func TestSensorTheStoreCannotNumberIsRefusedBeforeItsBatches(t *testing.T) {
	scfg := store.DefaultConfig()
	scfg.MaxSensorIDs = 2
	c := startWithStore(t, nil, scfg, defaultLifetimes, time.Now, &syncbuf.Buffer{})
	for _, id := range []string{"s1", "s2"} {
		s, _, err := dial(t, c.addr, id, "boot-"+id)
		require.NoError(t, err)
		s.send(batch(1, 1))
		require.Equal(t, uint64(1), s.ack())
		if id == "s1" {
			s.conn.Close()
		}
	}
	require.Eventually(t, func() bool { return !c.svc.Sensors()[0].GetConnected() }, 10*time.Second, 5*time.Millisecond, "s1 disconnected")
	_, _, err := dial(t, c.addr, "s3", "boot-s3")
	require.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "maximum of 2 distinct sensor ids")
	s, _, err := dial(t, c.addr, "s1", "boot-s1b")
	require.NoError(t, err, "a sensor already numbered still comes in")
	s.send(batch(1, 1))
	require.Equal(t, uint64(1), s.ack())
	assert.Zero(t, c.store.Stats().Rejected, "nothing acknowledged was dropped by the store")
}

func TestHelloTimeoutIsChecked(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HelloTimeout = 0
	_, err := New(cfg, store.New(store.DefaultConfig()), slog.New(slog.DiscardHandler), time.Now)
	require.ErrorContains(t, err, "HelloTimeout: ")
}
