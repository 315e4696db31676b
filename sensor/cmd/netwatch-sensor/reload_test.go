package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/syncbuf"
	"netwatch.dev/sensor/internal/testcollector"
)

// TestSIGHUPReloadsTheTokenAndLogLevel: the sensor binary, refused by a collector
// that wants another sensor token, gets the new token from its config file on
// SIGHUP, says so, stays alive and connects at once (not after the 30 s backoff of
// a refusal); the log level changes too, and a changed setting that needs a restart
// is named, in the collector's words.
func TestSIGHUPReloadsTheTokenAndLogLevel(t *testing.T) {
	const id = "reload-sensor"
	dir := t.TempDir()
	toks := filepath.Join(dir, "sensor-tokens")
	require.NoError(t, os.WriteFile(toks, []byte(id+" new-token\n"), 0o600))
	c := testcollector.New(t, collectorBin, "--sensor-token-file", toks)
	c.Start()
	cfgFile := filepath.Join(dir, "sensor.yaml")
	require.NoError(t, os.WriteFile(cfgFile, []byte("token: old-token\nlog-level: info\n"), 0o600))
	bin := buildSensor(t, dir)
	var stderr syncbuf.Buffer
	cmd := exec.Command(bin, "--config", cfgFile, "--read", filepath.Join(pcapDir, "pcapplusplus-tls2.pcap"), "--loop", "--speed", "1x",
		"--collector", c.Addr(), "--sensor-id", id, "--metrics-listen", "")
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("sensor log:\n%s", stderr.String())
		}
	})
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "collector refused this sensor") },
		10*time.Second, 10*time.Millisecond, "the old token is refused")
	assert.Nil(t, c.Sensor(id))

	require.NoError(t, os.WriteFile(cfgFile, []byte("token: new-token\nlog-level: debug\nidle-timeout: 45s\nbpf: tcp\n"), 0o600))
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "msg=\"reloaded:") },
		10*time.Second, 10*time.Millisecond, "the reload is logged")
	assert.Contains(t, stderr.String(), `msg="reloaded: token, log level info→debug; unchanged: nothing" restart_needed_for="bpf, idle-timeout"`+"\n")
	require.Eventually(t, func() bool { s := c.Sensor(id); return s != nil && s.GetConnected() },
		10*time.Second, 20*time.Millisecond, "the new token is accepted, without waiting for the backoff")
	select {
	case err := <-exited:
		t.Fatalf("the sensor exited: %v", err)
	default:
	}
	require.NoError(t, cmd.Process.Signal(syscall.SIGHUP))
	require.Eventually(t, func() bool {
		return strings.Contains(stderr.String(), `msg="reloaded: nothing; unchanged: token, log level debug" restart_needed_for="bpf, idle-timeout"`+"\n")
	},
		10*time.Second, 10*time.Millisecond, "a second reload changes nothing, and the running settings still differ from the file's")
}
