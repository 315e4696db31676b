package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// logWithOneBatch leaves in a new data directory a log holding one acknowledged
// batch of one flow (a collector ran, took it from a sensor, and stopped), and
// returns the directory and the name of the segment the next start replays after
// those there.
func logWithOneBatch(t *testing.T) (dir, nextSegment string) {
	t.Helper()
	dir = t.TempDir()
	c := startCollector(t, func(cfg *Config) { cfg.Ingest.DataDir = dir })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := openSensor(ctx, dialGRPC(t, c.GRPCAddr()), "s1", "")
	require.NoError(t, err)
	sendOneFlow(t, stream, 1, "10.1.1.1", "10.2.2.2", 3, 300)
	stopCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	require.NoError(t, c.Stop(stopCtx))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var segs []string
	for _, e := range ents {
		if m, _ := filepath.Match("wal-*.log", e.Name()); m {
			segs = append(segs, e.Name())
		}
	}
	require.NotEmpty(t, segs)
	slices.Sort(segs)
	var last uint64
	_, err = fmt.Sscanf(segs[len(segs)-1], "wal-%d.log", &last)
	require.NoError(t, err)
	return dir, filepath.Join(dir, fmt.Sprintf("wal-%016d.log", last+1))
}

// replayingCollector starts a collector on dir whose next segment is a FIFO, so
// the replay waits for the test: it returns the collector once it listens, the
// FIFO's writer (a record longer than any, written to it, ends the replay) and
// StartContext's result.
func replayingCollector(t *testing.T, ctx context.Context, dir, fifo string) (*Collector, *os.File, <-chan error) {
	t.Helper()
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	cfg := DefaultConfig()
	cfg.GRPCListen, cfg.HTTPListen, cfg.Ingest.DataDir = "127.0.0.1:0", "127.0.0.1:0", dir
	c, err := New(cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	started := make(chan error, 1)
	go func() { started <- c.StartContext(ctx) }()
	select {
	case <-c.Listening():
	case err := <-started:
		t.Fatalf("StartContext returned before listening: %v", err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until the replay opens it
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	return c, w, started
}

func endReplay(t *testing.T, w *os.File) {
	t.Helper()
	_, err := w.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	require.NoError(t, err)
}

func probeGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestListenersServeDuringTheReplay: the collector listens before it replays its
// log. While the replay lasts (its next segment is a FIFO the test holds),
// /healthz is 200, /readyz 503 "replaying the log: N %", the health is unhealthy
// with that reason first, queries answer from what is loaded (the flow of the
// segment replayed already), and a sensor stream is refused with Unavailable. Once
// the replay has ended: /readyz 200, the health has no replay reason, and the
// sensor is welcomed.
func TestListenersServeDuringTheReplay(t *testing.T) {
	dir, fifo := logWithOneBatch(t)
	c, w, started := replayingCollector(t, context.Background(), dir, fifo)
	base := "http://" + c.HTTPAddr()
	replaying := regexp.MustCompile(`^replaying the log: \d+ %$`)

	code, body := probeGet(t, base+"/healthz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ok\n", body)
	code, body = probeGet(t, base+"/readyz")
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Regexp(t, replaying, body[:len(body)-1])
	code, health, _ := getJSON(t, base+"/api/v1/health", nil)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "unhealthy", health["status"])
	reasons, _ := health["reasons"].([]any)
	require.NotEmpty(t, reasons, "health: %v", health)
	assert.Regexp(t, replaying, reasons[0])
	code, flows, _ := getJSON(t, base+"/api/v1/flows", nil)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, flows["flows"], 1, "the flow replayed so far is answered")
	assert.Equal(t, "10.1.1.1", flows["flows"].([]any)[0].(map[string]any)["srcIP"])

	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	err = sensorHello(context.Background(), conn, "s2", "")
	assert.Equal(t, codes.Unavailable, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "replaying the log")

	endReplay(t, w)
	require.NoError(t, <-started)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, c.Stop(ctx))
	})
	code, body = probeGet(t, base+"/readyz")
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, "ready\n", body)
	_, health, _ = getJSON(t, base+"/api/v1/health", nil)
	for _, r := range health["reasons"].([]any) {
		assert.NotRegexp(t, replaying, r)
	}
	assert.NoError(t, sensorHello(context.Background(), conn, "s2", ""))
}

// TestStopDuringTheReplayReleasesEverything: cancelling StartContext while the
// listeners serve and the replay waits makes it return the cancellation once the
// replay lets go, holding nothing: the ports are free and the data directory can
// be opened again.
func TestStopDuringTheReplayReleasesEverything(t *testing.T) {
	dir, fifo := logWithOneBatch(t)
	ctx, cancel := context.WithCancel(context.Background())
	c, w, started := replayingCollector(t, ctx, dir, fifo)
	httpAddr, grpcAddr := c.HTTPAddr(), c.GRPCAddr()
	code, _ := probeGet(t, "http://"+httpAddr+"/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	cancel()
	endReplay(t, w)
	require.ErrorIs(t, <-started, context.Canceled)
	for _, addr := range []string{httpAddr, grpcAddr} {
		l, err := net.Listen("tcp", addr)
		require.NoError(t, err, "%s is free again", addr)
		l.Close()
	}
	require.NoError(t, os.Remove(fifo))
	again := startCollector(t, func(cfg *Config) { cfg.Ingest.DataDir = dir })
	code, _ = probeGet(t, "http://"+again.HTTPAddr()+"/readyz")
	assert.Equal(t, http.StatusOK, code)
}
