package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/syncbuf"
	"netwatch.dev/common/testproc"
)

const nobody = 65534

// runTree lays out what run.sh expects (deploy/local/run.sh, bin/) in a directory a plain
// user can read, with the freshly built binaries; withCaps gives the sensor copy
// cap_net_raw,cap_net_admin+ep as `sudo setcap` would.
func runTree(t *testing.T, withCaps bool) string {
	t.Helper()
	sensor, collector := build(t)
	root := t.TempDir()
	for d := root; d != "/"; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()) && d != os.TempDir() {
			require.NoError(t, os.Chmod(d, 0o755))
		}
	}
	for _, c := range []struct{ src, dst string }{
		{"local/run.sh", "deploy/local/run.sh"},
		{sensor, "bin/netwatch-sensor"},
		{collector, "bin/netwatch-collector"},
	} {
		dst := filepath.Join(root, c.dst)
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		b, err := os.ReadFile(c.src)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, b, 0o755))
	}
	if withCaps {
		setcap, err := exec.LookPath("setcap")
		require.NoError(t, err, "setcap is needed (Debian package libcap2-bin; make deps installs it)")
		out, err := exec.Command(setcap, "cap_net_raw,cap_net_admin+ep", filepath.Join(root, "bin/netwatch-sensor")).CombinedOutput()
		require.NoError(t, err, "setcap: %s", out)
	}
	require.NoError(t, os.Mkdir(filepath.Join(root, "data"), 0o755))
	require.NoError(t, os.Chown(filepath.Join(root, "data"), nobody, nobody))
	return root
}

// runAsNobody starts root/deploy/local/run.sh as user nobody with a plain user's PATH
// (no /usr/sbin, so no getcap on it), capturing on lo.
// ambient are capabilities it inherits (as from systemd's AmbientCapabilities=).
func runAsNobody(t *testing.T, root string, httpPort int, ambient ...uintptr) (*exec.Cmd, *syncbuf.Buffer) {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "deploy/local/run.sh"))
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/", "LANG=C.UTF-8",
		"NETWATCH_INTERFACE=lo",
		"NETWATCH_PORT=" + strconv.Itoa(httpPort),
		"NETWATCH_GRPC_PORT=" + strconv.Itoa(testproc.FreePort(t)),
		"NETWATCH_DATA_DIR=" + filepath.Join(root, "data"),
		"NETWATCH_METRICS_LISTEN=127.0.0.1:0", // the sensor's; not the default 9100
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}, AmbientCaps: ambient}
	out := &syncbuf.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	require.NoError(t, cmd.Start())
	return cmd, out
}

// TestRunAsPlainUserAfterSetcap: `make run` as a plain user whose PATH lacks /usr/sbin, with
// the capabilities set on the sensor binary as the script suggests, starts capturing; the
// health endpoint shows a connected sensor with capture active. Without the capabilities
// the script stops with the setcap fix.
func TestRunAsPlainUserAfterSetcap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs the script as user nobody and sets file capabilities on a copy of the sensor")
	}
	runUntilCapturing(t, runTree(t, true))
}

// TestRunAsPlainUserWithAmbientCaps: a user that inherits CAP_NET_RAW (ambient, e.g. from
// systemd-run -p AmbientCapabilities=) needs no file capabilities.
func TestRunAsPlainUserWithAmbientCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs the script as user nobody with ambient capabilities")
	}
	const capNetAdmin, capNetRaw = 12, 13
	runUntilCapturing(t, runTree(t, false), capNetRaw, capNetAdmin)
}

// runUntilCapturing runs the script in root as nobody until the collector's health shows
// the sensor capturing, then stops it as Ctrl-C would.
func runUntilCapturing(t *testing.T, root string, ambient ...uintptr) {
	httpPort := testproc.FreePort(t)
	cmd, out := runAsNobody(t, root, httpPort, ambient...)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
	})

	// Wait for the sensor (the test's -timeout bounds this; no duration is asserted).
	for {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("run.sh exited (%v):\n%s", err, out.String())
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/v1/health", httpPort))
		if err != nil {
			continue // the collector is still starting
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		var h struct {
			CaptureActive    bool `json:"capture_active"`
			SensorsConnected int  `json:"sensors_connected"`
		}
		require.NoError(t, json.Unmarshal(b, &h), "%s", b)
		if h.CaptureActive && h.SensorsConnected == 1 {
			break
		}
	}
	assert.Contains(t, out.String(), "capturing on lo")
	assert.NotContains(t, out.String(), "needs CAP_NET_RAW")

	// Stopping it (as Ctrl-C would) stops both processes.
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	err := <-exited
	stopped = true
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "run.sh: %v", err)
	assert.Equal(t, 143, exit.ExitCode(), out.String())
	assert.Contains(t, out.String(), "run: stopped")
}

// TestRunAsPlainUserWithoutCaps: without the capabilities (and getcap installed, as here)
// the script exits 2 before starting anything, naming the fix.
func TestRunAsPlainUserWithoutCaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs the script as user nobody")
	}
	if _, err := os.Stat("/usr/sbin/getcap"); err != nil {
		if _, err := os.Stat("/sbin/getcap"); err != nil {
			t.Skip("getcap is not installed (Debian package libcap2-bin): run.sh then starts the sensor, which names the missing capability itself")
		}
	}
	root := runTree(t, false)
	httpPort := testproc.FreePort(t)
	cmd, out := runAsNobody(t, root, httpPort)
	err := cmd.Wait()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "run.sh: %v: %s", err, out.String())
	assert.Equal(t, 2, exit.ExitCode(), out.String())
	assert.Contains(t, out.String(), "run: live capture needs CAP_NET_RAW")
	assert.Contains(t, out.String(), "sudo setcap cap_net_raw,cap_net_admin+ep bin/netwatch-sensor")
	assert.NotContains(t, out.String(), "dashboard", "nothing was started")
}

// TestRunAsPlainUserWithoutGetcap: where getcap is not installed (hidden here by empty
// /usr/sbin and /sbin in a private mount namespace) the script does not guess: it starts,
// the sensor names the missing capability itself, and the script stops, passing on its status.
func TestRunAsPlainUserWithoutGetcap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it hides getcap in a mount namespace and runs the script as user nobody")
	}
	root := runTree(t, false)
	httpPort := testproc.FreePort(t)
	hide := "mount -t tmpfs none /usr/sbin && { [ -L /sbin ] || mount -t tmpfs none /sbin; } && " +
		"! command -v getcap && exec setpriv --reuid=65534 --regid=65534 --clear-groups -- \"$@\""
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", hide, "sh",
		"env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME=/",
		"NETWATCH_INTERFACE=lo", "NETWATCH_PORT="+strconv.Itoa(httpPort), "NETWATCH_GRPC_PORT="+strconv.Itoa(testproc.FreePort(t)),
		"NETWATCH_DATA_DIR="+filepath.Join(root, "data"), "NETWATCH_METRICS_LISTEN=127.0.0.1:0",
		filepath.Join(root, "deploy/local/run.sh"))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.True(t, errors.As(err, &exit), "run.sh: %v: %s", err, out)
	assert.NotEqual(t, 0, exit.ExitCode(), "%s", out)
	assert.NotContains(t, string(out), "run: live capture needs CAP_NET_RAW", "no guess without getcap")
	assert.Contains(t, string(out), "netwatch-sensor needs CAP_NET_RAW", "the sensor's own message")
	assert.Contains(t, string(out), "run: a process exited")
	assert.Contains(t, string(out), "run: stopped", "the collector is stopped too")
}
