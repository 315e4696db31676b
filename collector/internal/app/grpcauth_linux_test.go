//go:build linux

package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// remotePeer is a network namespace joined to this one by a veth pair: a client
// in it reaches the collector from a non-loopback address, as a remote host would.
type remotePeer struct {
	ns               string
	hostIP, remoteIP netip.Addr
}

func ipCmd(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	require.NoError(t, err, "ip %s: %s", strings.Join(args, " "), out)
}

// newRemotePeer creates the namespace and the veth pair, removed when the test
// ends. Root only: it skips otherwise.
func newRemotePeer(t *testing.T) *remotePeer {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace and a veth pair give the collector a client beyond loopback")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("needs the ip command (iproute2): %v", err)
	}
	var r [3]byte
	_, _ = rand.Read(r[:])
	id := hex.EncodeToString(r[:])
	p := &remotePeer{ns: "nwcol-" + id,
		hostIP: netip.AddrFrom4([4]byte{10, r[0], r[1], 1}), remoteIP: netip.AddrFrom4([4]byte{10, r[0], r[1], 2})}
	host, peer := "nwc"+id+"h", "nwc"+id+"p"
	ipCmd(t, "netns", "add", p.ns)
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", host).Run()
		_ = exec.Command("ip", "netns", "del", p.ns).Run()
	})
	ipCmd(t, "link", "add", host, "type", "veth", "peer", "name", peer, "netns", p.ns)
	ipCmd(t, "addr", "add", p.hostIP.String()+"/30", "dev", host)
	ipCmd(t, "-n", p.ns, "addr", "add", p.remoteIP.String()+"/30", "dev", peer)
	ipCmd(t, "link", "set", host, "up")
	ipCmd(t, "-n", p.ns, "link", "set", peer, "up")
	return p
}

// dial connects to addr from inside the namespace (the socket is made on a thread
// switched into it) and returns a gRPC client over that one connection.
func (p *remotePeer) dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		target, err := os.Open("/var/run/netns/" + p.ns)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := net.Dial("tcp", addr)
		done <- result{c, err}
	}()
	r := <-done
	require.NoError(t, r.err)
	used := false
	conn := dialGRPC(t, addr, grpc.WithContextDialer(func(context.Context, string) (net.Conn, error) {
		if used {
			return nil, fmt.Errorf("the namespace's one connection is used up")
		}
		used = true
		return r.c, nil
	}))
	return conn
}

// TestGRPCQueriesBeyondLoopbackNeedAToken: the REST API without a token listens on
// loopback only; the gRPC listener is the sensors' too and may be public, so
// without a token its query service refuses clients beyond loopback
// (PERMISSION_DENIED, naming --api-token), reflection too, unless
// --allow-unauthenticated. Health and sensors are served. With a token, such a
// client is served when it presents it.
func TestGRPCQueriesBeyondLoopbackNeedAToken(t *testing.T) {
	p := newRemotePeer(t)
	listen := func(cfg *Config) { cfg.GRPCListen, cfg.Insecure = netip.AddrPortFrom(p.hostIP, 0).String(), true }
	ctx := context.Background()

	c := startCollector(t, listen)
	conn := p.dial(t, c.GRPCAddr())
	q := netwatchv1.NewQueryServiceClient(conn)
	for _, qc := range queryCalls {
		err := qc.call(ctx, q)
		assert.Equal(t, codes.PermissionDenied, status.Code(err), "%s: %v", qc.name, err)
		assert.Contains(t, status.Convert(err).Message(), "--api-token", qc.name)
	}
	_, err := reflectionList(ctx, conn)
	assert.Equal(t, codes.PermissionDenied, status.Code(err), "reflection: %v", err)
	_, err = q.GetHealth(ctx, &netwatchv1.GetHealthRequest{})
	assert.NoError(t, err, "health")
	assert.NoError(t, sensorHello(ctx, conn, "remote", ""), "a sensor beyond loopback")
	local := netwatchv1.NewQueryServiceClient(dialGRPC(t, c.GRPCAddr()))
	for _, qc := range queryCalls {
		assert.Equal(t, codes.PermissionDenied, status.Code(qc.call(ctx, local)),
			"%s: the collector's own non-loopback address is not loopback either", qc.name)
	}

	open := startCollector(t, func(cfg *Config) { listen(cfg); cfg.AllowUnauthenticated = true })
	q = netwatchv1.NewQueryServiceClient(p.dial(t, open.GRPCAddr()))
	for _, qc := range queryCalls {
		assert.NoError(t, qc.call(ctx, q), "%s with --allow-unauthenticated", qc.name)
	}

	tok := startCollector(t, func(cfg *Config) { listen(cfg); cfg.AuthToken = "s3cret" })
	q = netwatchv1.NewQueryServiceClient(p.dial(t, tok.GRPCAddr()))
	for _, qc := range queryCalls {
		assert.Equal(t, codes.Unauthenticated, status.Code(qc.call(ctx, q)), qc.name)
		assert.NoError(t, qc.call(withAuth(ctx, "Bearer s3cret"), q), "%s with the token", qc.name)
	}
}
