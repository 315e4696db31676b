package testproc

import (
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBuild builds a real binary of the workspace and runs it; a package that
// does not exist is an error naming it.
func TestBuild(t *testing.T) {
	dir := t.TempDir()
	bin, err := Build(dir, "netwatch.dev/common/testproc/testdata/hello")
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "hello"), bin)
	out, err := exec.Command(bin).Output()
	require.NoError(t, err)
	assert.Equal(t, "hello\n", string(out))

	_, err = Build(dir, "netwatch.dev/common/no-such-package")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "netwatch.dev/common/no-such-package")
}

// TestFreeAddrAndPort: the address and the port can be listened on.
func TestFreeAddrAndPort(t *testing.T) {
	addr := FreeAddr(t)
	host, _, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1", host)
	l, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	l.Close()
	port := FreePort(t)
	assert.Positive(t, port)
	l, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	require.NoError(t, err)
	l.Close()
}

func TestGoroutinesFindsARunningFunction(t *testing.T) {
	stop, running := make(chan struct{}), make(chan struct{})
	go parkedForTest(running, stop)
	<-running
	const fn = "netwatch.dev/common/testproc.parkedForTest"
	if got := Goroutines(fn); len(got) != 1 {
		t.Fatalf("%d goroutines in %s, want 1", len(got), fn)
	}
	close(stop)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if len(Goroutines(fn)) == 0 {
			return
		}
	}
	t.Fatalf("%s still listed after it returned", fn)
}

func parkedForTest(running, stop chan struct{}) {
	close(running)
	<-stop
}
