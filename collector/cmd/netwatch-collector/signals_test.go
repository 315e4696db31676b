package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/geoip/geoiptest"
	"netwatch.dev/common/syncbuf"
	"netwatch.dev/common/testproc"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// The signal tests run the collector binary, built into the test's directory, as
// a process of its own: signals are the kernel's.

type proc struct {
	cmd    *exec.Cmd
	log    *syncbuf.Buffer
	exited chan struct{}
	err    error
}

func buildCollector(t *testing.T) string {
	t.Helper()
	return testproc.MustBuild(t, "netwatch.dev/collector/cmd/netwatch-collector")
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), log: &syncbuf.Buffer{}, exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("collector log:\n%s", p.log.String())
		}
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitLog waits for a log line matching re, written after the first `after` bytes.
func (p *proc) waitLog(t *testing.T, after int, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var line string
	require.Eventually(t, func() bool {
		log := p.log.String()
		if len(log) < after {
			return false
		}
		line = rx.FindString(log[after:])
		return line != ""
	}, 10*time.Second, 10*time.Millisecond, "log line %q", re)
	return line
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) int {
	t.Helper()
	mark := len(p.log.String())
	require.NoError(t, p.cmd.Process.Signal(sig))
	return mark
}

// exitCode waits for the process to end and returns its exit status.
func (p *proc) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the collector did not exit")
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) {
		require.True(t, exit.Exited(), "killed by a signal: %v", p.err)
		return exit.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

func restStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func grpcCode(t *testing.T, q netwatchv1.QueryServiceClient, token string) codes.Code {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	_, err := q.ListSensors(ctx, &netwatchv1.ListSensorsRequest{})
	return status.Code(err)
}

// TestSIGHUPReloadsTokensAndLogLevel: SIGHUP does not stop the collector; it reads
// the config file and the token files again, puts the new API token in force on
// REST and gRPC (the old one is refused from then on), changes the log level and
// says what it did. A reload that fails changes nothing.
func TestSIGHUPReloadsTokensAndLogLevel(t *testing.T) {
	bin := buildCollector(t)
	dir := t.TempDir()
	tokFile, sensorToks, cfgFile := filepath.Join(dir, "api-token"), filepath.Join(dir, "sensor-tokens"), filepath.Join(dir, "collector.yaml")
	write := func(path, text string) { require.NoError(t, os.WriteFile(path, []byte(text), 0o600)) }
	write(tokFile, "old-token\n")
	write(sensorToks, "s1 one\n")
	write(cfgFile, "log-level: debug\n")
	p := startProc(t, bin, "--config", cfgFile, "--data-dir", "", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--api-token-file", tokFile, "--sensor-token-file", sensorToks)
	started := p.waitLog(t, 0, `msg="collector started" grpc=\S+ http=http://\S+/`)
	m := regexp.MustCompile(`grpc=(\S+) http=(http://\S+)/`).FindStringSubmatch(started)
	grpcAddr, base := m[1], m[2]
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	q := netwatchv1.NewQueryServiceClient(conn)
	require.Equal(t, http.StatusOK, restStatus(t, base+"/api/v1/flows", "old-token"))
	require.Equal(t, codes.OK, grpcCode(t, q, "old-token"))
	require.Equal(t, codes.Unauthenticated, grpcCode(t, q, "new-token"))

	write(tokFile, "new-token\n")
	write(sensorToks, "s1 two\n")
	write(cfgFile, "log-level: info\nretention: 30m\n")
	mark := p.signal(t, syscall.SIGHUP)
	line := p.waitLog(t, mark, `msg="reloaded: [^"]*".*`)
	assert.Contains(t, line, `reloaded: api token file, sensor token file, log level debug→info; unchanged: nothing`)
	assert.Contains(t, line, `restart_needed_for=retention`)
	assert.True(t, p.alive(), "SIGHUP does not stop the collector")
	assert.Equal(t, http.StatusUnauthorized, restStatus(t, base+"/api/v1/flows", "old-token"), "old token refused")
	assert.Equal(t, http.StatusOK, restStatus(t, base+"/api/v1/flows", "new-token"), "new token accepted")
	assert.Equal(t, codes.Unauthenticated, grpcCode(t, q, "old-token"), "old token refused over gRPC")
	assert.Equal(t, codes.OK, grpcCode(t, q, "new-token"), "new token accepted over gRPC")

	mark = p.signal(t, syscall.SIGHUP)
	line = p.waitLog(t, mark, `msg="reloaded: [^"]*"`)
	assert.Contains(t, line, "reloaded: nothing; unchanged: api token file, sensor tokens, log level info")

	write(tokFile, "\n")
	mark = p.signal(t, syscall.SIGHUP)
	line = p.waitLog(t, mark, `msg="reload failed, nothing changed".*`)
	assert.Contains(t, line, "api-token-file")
	assert.True(t, p.alive())
	assert.Equal(t, http.StatusOK, restStatus(t, base+"/api/v1/flows", "new-token"), "a failed reload keeps the token")

	p.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, p.exitCode(t))
}

// TestSignalsDuringTheLogReplay: the collector handles signals from its start. Its
// data directory's log segment here is a FIFO, so the replay waits for the test:
// a SIGHUP during the replay reloads and does not kill; a SIGTERM stops it
// cleanly as soon as the replay lets go (here: a corrupt record ends the segment),
// exit 0, without having started (its listeners, up during the replay, close).
func TestSignalsDuringTheLogReplay(t *testing.T) {
	bin := buildCollector(t)
	dataDir := t.TempDir()
	fifo := filepath.Join(dataDir, "wal-0000000000000001.log")
	require.NoError(t, unix.Mkfifo(fifo, 0o600))
	p := startProc(t, bin, "--data-dir", dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until the replay opens it
	require.NoError(t, err)
	defer w.Close()

	mark := p.signal(t, syscall.SIGHUP)
	p.waitLog(t, mark, `msg="reloaded: nothing; unchanged: api token, sensor tokens, log level info"`)
	assert.True(t, p.alive(), "SIGHUP during the replay does not kill")

	mark = p.signal(t, syscall.SIGTERM)
	p.waitLog(t, mark, `msg="stopping: interrupting the replay of the durable log`)
	assert.True(t, p.alive(), "waiting for the replay to let go")
	_, err = w.Write([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}) // a record longer than any
	require.NoError(t, err)
	assert.Equal(t, 0, p.exitCode(t))
	assert.Contains(t, p.log.String(), "stopped during the replay of the durable log")
	assert.NotContains(t, p.log.String(), "collector started")
}

// TestSIGHUPReloadsTheGeoIPDatabases: a replaced GeoIP file is put in force (by
// the SIGHUP, or by the poll if it saw it first); a bad one is refused, the
// reload saying so, and the collector goes on with the database it had.
func TestSIGHUPReloadsTheGeoIPDatabases(t *testing.T) {
	bin := buildCollector(t)
	dir := t.TempDir()
	asn := func(org string) string {
		return geoiptest.WriteFile(t, dir, "asn.mmdb", geoiptest.ASNBytes(t, map[string]geoiptest.AS{"192.0.2.0/24": {Number: 64500, Org: org}}))
	}
	path := asn("Old Net")
	p := startProc(t, bin, "--data-dir", "", "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--geoip-asn-db", path)
	p.waitLog(t, 0, `msg="collector started"`)

	mark := p.signal(t, syscall.SIGHUP)
	line := p.waitLog(t, mark, `msg="reloaded: [^"]*"`)
	assert.Contains(t, line, "reloaded: nothing; unchanged: api token, sensor tokens, geoip asn database, log level info")

	mark = len(p.log.String())
	asn("New Net")
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, mark, `msg="geoip database reloaded" db=asn file=\S+asn.mmdb type=GeoLite2-ASN`)

	require.NoError(t, os.WriteFile(path, []byte("not a database"), 0o644))
	mark = p.signal(t, syscall.SIGHUP)
	line = p.waitLog(t, mark, `level=ERROR msg="reloaded: [^"]*".*`)
	assert.Contains(t, line, `failed="asn database: `+path+`: not a MaxMind DB file`)
	assert.True(t, p.alive())
	p.signal(t, syscall.SIGTERM)
	assert.Equal(t, 0, p.exitCode(t))
}
