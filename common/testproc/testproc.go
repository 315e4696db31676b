// Package testproc is what the tests that run Netwatch's binaries as processes
// share across modules: building a binary from the go.work workspace and picking
// free loopback ports. Tests only.
package testproc

import (
	"fmt"
	"net"
	"os/exec"
	"path"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// Build compiles the main package pkg (an import path, e.g.
// netwatch.dev/sensor/cmd/netwatch-sensor) into dir, named after pkg's last
// element, and returns the binary's path. The test's working directory must be
// inside the go.work workspace; the error carries the compiler's output.
func Build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, path.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s (these tests need the go.work workspace): %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// MustBuild is Build into a directory removed when the test ends, failing the
// test on an error.
func MustBuild(t testing.TB, pkg string) string {
	t.Helper()
	bin, err := Build(t.TempDir(), pkg)
	require.NoError(t, err)
	return bin
}

// FreeAddr is a loopback address ("127.0.0.1:port") whose port was free a moment
// ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// FreePort is the port of FreeAddr.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
