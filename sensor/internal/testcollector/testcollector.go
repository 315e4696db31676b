// Package testcollector runs the real collector binary for the sensor's tests: it
// builds netwatch-collector once from the go.work workspace, starts it on fixed
// loopback ports and a data directory (so it can be killed with SIGKILL and started
// again on the same ones), and reads back what it stored over gRPC. Tests only.
package testcollector

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/syncbuf"
	"netwatch.dev/common/testproc"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Build compiles netwatch-collector into a temporary directory; call it from
// TestMain (the test's working directory must be inside the go.work workspace).
// cleanup removes the binary.
func Build() (path string, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "netwatch-testcollector")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	if path, err = testproc.Build(dir, "netwatch.dev/collector/cmd/netwatch-collector"); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}

// Main is a TestMain body for packages whose tests run the collector: it builds the
// binary into *bin, runs the tests and removes the binary. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(testcollector.Main(m, &collectorBin)) }
func Main(m *testing.M, bin *string) int {
	path, cleanup, err := Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cleanup()
	*bin = path
	return m.Run()
}

// Proc is one collector: its addresses and data directory stay the same across
// Start, Kill and Term, so a restart finds the same state and sensors the same
// address.
type Proc struct {
	t        testing.TB
	bin      string
	addr     string
	httpAddr string
	dataDir  string
	extra    []string
	log      *syncbuf.Buffer

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	tlsCreds credentials.TransportCredentials // for the test's own query client
}

// New prepares (does not start) a collector running bin on fresh loopback ports
// and a new data directory, with extraArgs appended to its command line. It is
// killed when the test ends, and its log is printed if the test failed.
func New(t testing.TB, bin string, extraArgs ...string) *Proc {
	t.Helper()
	p := &Proc{t: t, bin: bin, addr: testproc.FreeAddr(t), httpAddr: testproc.FreeAddr(t), dataDir: t.TempDir(), extra: extraArgs, log: &syncbuf.Buffer{}}
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("collector log:\n%s", p.log.String())
		}
	})
	return p
}

// Addr is the gRPC address (sensors and queries).
func (p *Proc) Addr() string { return p.addr }

// HTTPAddr is the REST address.
func (p *Proc) HTTPAddr() string { return p.httpAddr }

// DataDir is the data directory, kept across restarts.
func (p *Proc) DataDir() string { return p.dataDir }

// Log is everything the collector wrote to stdout and stderr, over all its runs.
func (p *Proc) Log() string { return p.log.String() }

// LogLen is the length of Log now: Log()[mark:] is what was written after it.
func (p *Proc) LogLen() int { return p.log.Len() }

// SetQueryCreds sets the transport credentials of the test's own query client
// (default: plaintext), for a collector started with TLS.
func (p *Proc) SetQueryCreds(creds credentials.TransportCredentials) { p.tlsCreds = creds }

// Start runs the collector and waits until it is ready: it listens on both
// addresses and has replayed its durable log (/readyz answers 200). A sensor started
// after Start meets a collector that takes its batches, not one that is still
// replaying and refuses them.
func (p *Proc) Start() {
	p.t.Helper()
	require.NoError(p.t, p.TryStart(10*time.Second))
	require.NoError(p.t, p.waitReady(30*time.Second))
}

// waitReady polls /readyz until it answers 200, the collector exits or timeout.
func (p *Proc) waitReady(timeout time.Duration) error {
	url := "http://" + p.httpAddr + "/readyz"
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		if !p.Running() {
			return fmt.Errorf("collector exited before it was ready")
		}
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("collector not ready after %v: %s %s", timeout, resp.Status, bytes.TrimSpace(body))
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("collector not ready after %v: %v", timeout, err)
		}
	}
}

// TryStart is Start returning an error instead of failing the test: the collector
// exited (with its exit status) or did not listen within timeout.
func (p *Proc) TryStart(timeout time.Duration) error {
	args := append([]string{"--grpc-listen", p.addr, "--http-listen", p.httpAddr, "--data-dir", p.dataDir}, p.extra...)
	cmd := exec.Command(p.bin, args...)
	cmd.Stderr, cmd.Stdout = p.log, p.log
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	for deadline := time.Now().Add(timeout); ; time.Sleep(10 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("collector exited at start: %v", waitErr)
		default:
		}
		listening := true
		for _, addr := range []string{p.addr, p.httpAddr} {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				listening = false
				break
			}
			conn.Close()
		}
		if listening {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("collector not listening on %s and %s after %v", p.addr, p.httpAddr, timeout)
		}
	}
}

// SetDataDir replaces the data directory (call it before Start), e.g. with a
// file system the test mounted.
func (p *Proc) SetDataDir(dir string) { p.dataDir = dir }

// Running reports whether the collector was started and has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *Proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Proc) Kill() { p.signal(syscall.SIGKILL) }

// Term sends SIGTERM (graceful stop) and waits for the process to exit.
func (p *Proc) Term() { p.signal(syscall.SIGTERM) }

// Query is a QueryService client of the collector, closed when the test ends.
func (p *Proc) Query() netwatchv1.QueryServiceClient {
	p.t.Helper()
	conn := p.dial()
	p.t.Cleanup(func() { conn.Close() })
	return netwatchv1.NewQueryServiceClient(conn)
}

// dial opens a new client connection: one made before a restart may still be in
// its reconnect backoff.
func (p *Proc) dial() *grpc.ClientConn {
	p.t.Helper()
	creds := p.tlsCreds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(p.addr, grpc.WithTransportCredentials(creds))
	require.NoError(p.t, err)
	return conn
}

// Flows is every stored flow record of sensor, read page by page (ListFlows, 1000
// at a time, oldest first seen first). Call it when nothing is being ingested.
func (p *Proc) Flows(sensor string) []*netwatchv1.NetworkFlow {
	p.t.Helper()
	conn := p.dial()
	defer conn.Close()
	q := netwatchv1.NewQueryServiceClient(conn)
	var out []*netwatchv1.NetworkFlow
	for off := 0; ; off += 1000 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := q.ListFlows(ctx, &netwatchv1.ListFlowsRequest{Sensor: sensor, Limit: "1000", Offset: strconv.Itoa(off),
			SortBy: "first_seen", SortOrder: "asc"})
		cancel()
		require.NoError(p.t, err)
		out = append(out, resp.GetFlows()...)
		if !resp.GetPagination().GetHasMore() {
			return out
		}
	}
}

// Record is a stored flow as an oracle record, to compare with the oracle's flows.
func Record(f *netwatchv1.NetworkFlow) oracle.Record {
	return oracle.Record{
		Proto: uint8(f.GetProtocol()), Src: f.GetSrcIp(), SrcPort: uint16(f.GetSrcPort()), Dst: f.GetDstIp(), DstPort: uint16(f.GetDstPort()),
		SrcPackets: f.GetSrcPackets(), SrcBytes: f.GetSrcBytes(), DstPackets: f.GetDstPackets(), DstBytes: f.GetDstBytes(),
		FirstSeen: f.GetFirstSeen().AsTime().UnixNano(), LastSeen: f.GetLastSeen().AsTime().UnixNano(),
	}
}

// Totals sums every stored flow of sensor.
func (p *Proc) Totals(sensor string) (flows int, packets, bytes uint64) {
	p.t.Helper()
	for _, f := range p.Flows(sensor) {
		flows++
		packets += f.GetPackets()
		bytes += f.GetBytes()
	}
	return flows, packets, bytes
}

// Sensors is the collector's sensor registry.
func (p *Proc) Sensors() []*netwatchv1.Sensor {
	p.t.Helper()
	conn := p.dial()
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := netwatchv1.NewQueryServiceClient(conn).ListSensors(ctx, &netwatchv1.ListSensorsRequest{})
	require.NoError(p.t, err)
	return resp.GetSensors()
}

// Sensor is the registry entry of id, or nil.
func (p *Proc) Sensor(id string) *netwatchv1.Sensor {
	p.t.Helper()
	for _, s := range p.Sensors() {
		if s.GetSensorId() == id {
			return s
		}
	}
	return nil
}

// NewestSegment is the path of the durable log segment with the highest index in
// dir ("wal-<index>.log"), or "" when there is none.
func NewestSegment(dir string) (string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "wal-*.log"))
	if err != nil || len(m) == 0 {
		return "", err
	}
	slices.Sort(m) // the index is zero-padded: lexical order is numeric order
	return m[len(m)-1], nil
}

// TearLogTail appends a torn record to the newest durable log segment of dir: the
// header and half the payload of a copy of its last complete record, which is what
// a collector killed in the middle of writing one more batch leaves behind (that
// batch was never acknowledged, so the sensor still holds it). A log record is
// framed as uint32 big-endian payload length | uint32 CRC32C | payload. It returns
// the segment and the length of its intact part.
func TearLogTail(dir string) (segment string, intact int64, err error) {
	segment, err = NewestSegment(dir)
	if err != nil {
		return "", 0, err
	}
	if segment == "" {
		return "", 0, fmt.Errorf("no log segment in %s", dir)
	}
	b, err := os.ReadFile(segment)
	if err != nil {
		return "", 0, err
	}
	var last []byte
	off := 0
	for off+8 <= len(b) {
		n := int(binary.BigEndian.Uint32(b[off:]))
		if off+8+n > len(b) {
			break
		}
		last = b[off : off+8+n]
		off += 8 + n
	}
	if last == nil {
		return "", 0, fmt.Errorf("%s holds no complete record (%d bytes)", segment, len(b))
	}
	if off != len(b) { // the kill itself tore the last write: nothing to add
		return segment, int64(off), nil
	}
	torn := last[:8+(len(last)-8)/2]
	f, err := os.OpenFile(segment, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return "", 0, err
	}
	if _, err := f.Write(torn); err != nil {
		f.Close()
		return "", 0, err
	}
	return segment, int64(off), f.Close()
}

// Field is the value of key=value in a logfmt line (slog's text handler), or "".
func Field(line, key string) string {
	_, rest, ok := strings.Cut(" "+line, " "+key+"=")
	if !ok {
		return ""
	}
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			s, _ := strconv.Unquote(v)
			return s
		}
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// Line is the first line of log containing msg, or "".
func Line(log, msg string) string {
	for l := range strings.Lines(log) {
		if strings.Contains(l, msg) {
			return strings.TrimRight(l, "\n")
		}
	}
	return ""
}
