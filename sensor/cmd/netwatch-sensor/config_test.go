package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/testpki"
)

func runSensor(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestCheckFailsLikeTheRun: --check opens and parses what the run would (capture
// file, TLS files, interface, addresses) and fails with the run's own message,
// naming the flag, its value and where it came from.
func TestCheckFailsLikeTheRun(t *testing.T) {
	dir := t.TempDir()
	pcap := filepath.Join(pcapDir, "pcapplusplus-example2.pcap")
	text := filepath.Join(dir, "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("hello, not a capture\n"), 0o644))
	badPEM := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(badPEM, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o644))
	cert, _, _ := testpki.SelfSigned(t, dir)
	remote := []string{"--read", pcap, "--collector", "collector.example:9090"}
	for _, tc := range []struct {
		name string
		args []string
		want string // the whole stderr
		// real: the run without --check fails the same way (it is safe to run: it
		// stops before capturing or connecting).
		real bool
	}{
		{"missing capture", []string{"--read", filepath.Join(dir, "nope.pcap"), "--output", "jsonl"},
			"--read=" + filepath.Join(dir, "nope.pcap") + " (command line): open " + filepath.Join(dir, "nope.pcap") + ": no such file or directory", true},
		{"not a capture", []string{"--read", text, "--output", "jsonl"},
			"--read=" + text + " (command line): not a pcap or pcapng file (magic 0x68656c6c)", true},
		{"missing interface", []string{"--interface", "nwnosuch0", "--output", "jsonl"},
			`--interface=nwnosuch0 (command line): no such network interface "nwnosuch0" (have: lo`, true},
		{"missing CA", append(slices.Clone(remote), "--ca", filepath.Join(dir, "ca.pem")),
			"--ca=" + filepath.Join(dir, "ca.pem") + " (command line): open " + filepath.Join(dir, "ca.pem") + ": no such file or directory", true},
		{"bad CA PEM", append(slices.Clone(remote), "--ca", badPEM),
			"--ca=" + badPEM + " (command line): " + badPEM + " holds no PEM certificate", true},
		{"missing client key", append(slices.Clone(remote), "--ca", cert, "--tls-cert", cert, "--tls-key", filepath.Join(dir, "k.pem")),
			"--tls-cert=" + cert + " (command line): open " + filepath.Join(dir, "k.pem") + ": no such file or directory", true},
		{"key is not a key", append(slices.Clone(remote), "--ca", cert, "--tls-cert", cert, "--tls-key", cert),
			"--tls-cert=" + cert + " (command line): tls: ", true},
		{"metrics port", []string{"--read", pcap, "--output", "jsonl", "--metrics-listen", "127.0.0.1:99999"},
			"--metrics-listen=127.0.0.1:99999 (command line): port 99999 is out of range (0 to 65535)", true},
		{"sensor id", []string{"--read", pcap, "--collector", "127.0.0.1:9090", "--sensor-id", "rack 4"},
			`--sensor-id="rack 4" (command line): must be 1 to 128 bytes of [A-Za-z0-9._:-] (what the collector accepts)`, true},
		{"collector port", []string{"--read", pcap, "--collector", "127.0.0.1:99999"},
			"--collector=127.0.0.1:99999 (command line): port 99999 is out of range (1 to 65535)", true},
		{"log level", []string{"--read", pcap, "--output", "jsonl", "--log-level", "loud"},
			"--log-level=loud (command line): not one of debug, info, warn, error", true},
		{"block size", []string{"--interface", "lo", "--output", "jsonl", "--ring-block-size", "3000"},
			"--ring-block-size=3000 (command line): block size must be a multiple of the page size", true},
		{"ring size", []string{"--interface", "lo", "--output", "jsonl", "--ring-size", "1MiB"},
			"--ring-size=1MiB (command line): need at least 2 blocks", true},
		{"fanout", []string{"--interface", "lo", "--output", "jsonl", "--fanout", "0"},
			"--fanout=0 (command line): workers must be between 1 and 256, got 0", true},
		{"idle timeout", []string{"--read", pcap, "--output", "jsonl", "--idle-timeout", "0s"},
			"--idle-timeout=0s (command line): must be > 0, got 0s", true},
		{"community id seed too big", []string{"--read", pcap, "--output", "jsonl", "--community-id-seed", "65536"},
			"--community-id-seed=65536 (command line): not a whole number from 0 to 65535", true},
		{"community id seed negative", []string{"--read", pcap, "--output", "jsonl", "--community-id-seed", "-1"},
			"--community-id-seed=-1 (command line): not a whole number from 0 to 65535", true},
		{"no input", []string{"--output", "jsonl"},
			"--interface (not set): give --interface IF to capture or --read FILE to read a capture", true},
		{"loop on stdin", []string{"--read", "-", "--loop", "--output", "jsonl"},
			"--loop=true (command line): --loop reads the file again at its end, which standard input (--read -) cannot", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runSensor(t, append(slices.Clone(tc.args), "--check")...)
			assert.Equal(t, exitUsage, code, errOut)
			assert.Empty(t, out, "no \"configuration ok\"")
			assert.True(t, strings.HasPrefix(errOut, "netwatch-sensor: "+tc.want), "stderr %q\nwant   %q", errOut, tc.want)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			if tc.real {
				rcode, rout, rerr := runSensor(t, tc.args...)
				assert.Equal(t, code, rcode, "the run fails with the same status: %s", rerr)
				assert.Empty(t, rout)
				assert.Equal(t, errOut, rerr, "the run fails with the same message")
			}
		})
	}
}

// TestCheckPasses: good files, an existing interface (live: when it may open packet
// sockets, otherwise it says it needs CAP_NET_RAW, like the run).
func TestCheckPasses(t *testing.T) {
	cert, key, _ := testpki.SelfSigned(t, t.TempDir())
	for _, args := range [][]string{
		{"--read", filepath.Join(pcapDir, "pcapplusplus-example2.pcap"), "--output", "jsonl"},
		{"--read", filepath.Join(pcapDir, "ndpi-alexa-app.pcapng"), "--collector", "collector.example:9090", "--ca", cert, "--tls-cert", cert, "--tls-key", key},
	} {
		code, out, errOut := runSensor(t, append(args, "--check")...)
		assert.Equal(t, exitOK, code, "%v: %s", args, errOut)
		assert.Equal(t, "configuration ok\n", out)
	}
	code, out, errOut := runSensor(t, "--interface", "lo", "--output", "jsonl", "--check")
	if os.Geteuid() == 0 {
		assert.Equal(t, exitOK, code, errOut)
		assert.Equal(t, "configuration ok\n", out)
	} else {
		assert.Equal(t, exitUsage, code)
		assert.Contains(t, errOut, "needs CAP_NET_RAW")
	}
}

// TestErrorsSayWhereTheValueCameFrom: the environment and the config file are
// named like the command line.
func TestErrorsSayWhereTheValueCameFrom(t *testing.T) {
	file := filepath.Join(t.TempDir(), "sensor.yaml")
	require.NoError(t, os.WriteFile(file, []byte("interface: lo\noutput: jsonl\nidle-timeout: 0s\n"), 0o600))
	code, _, errOut := runSensor(t, "--config", file, "--check")
	assert.Equal(t, exitUsage, code)
	assert.Equal(t, "netwatch-sensor: --idle-timeout=0s (config file "+file+"): must be > 0, got 0s\n", errOut)

	t.Setenv("NETWATCH_RING_BLOCK_SIZE", "3000")
	code, _, errOut = runSensor(t, "--interface", "lo", "--output", "jsonl", "--check")
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errOut, "netwatch-sensor: --ring-block-size=3000 (environment NETWATCH_RING_BLOCK_SIZE): ")

	t.Setenv("NETWATCH_RING_BLOCK_SIZE", "")
	t.Setenv("NETWATCH_RING_BUFFER_SIZE", "lots")
	code, _, errOut = runSensor(t, "--interface", "lo", "--output", "jsonl", "--check")
	assert.Equal(t, exitUsage, code)
	assert.Equal(t, "netwatch-sensor: --ring-size=lots (environment NETWATCH_RING_BUFFER_SIZE): not a size (e.g. 16MiB, 64KiB, 4096)\n", errOut)
}

// TestPrintConfigRoundTrip: --print-config needs no interface; its output is a
// config file that passes --check and prints the same again.
func TestPrintConfigRoundTrip(t *testing.T) {
	code, defaults, errOut := runSensor(t, "--print-config")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, defaults, "ring-size: 16MiB\n")
	assert.Contains(t, defaults, "interface: \"\"\n")
	assert.NotContains(t, defaults, "check")
	assert.NotContains(t, defaults, "config")

	dir := t.TempDir()
	for _, args := range [][]string{
		{"--read", filepath.Join(pcapDir, "pcapplusplus-example2.pcap"), "--output", "jsonl", "--idle-timeout", "45s", "--sensor-id", "rack 4", "--bpf", "tcp or udp"},
		{"--interface", "lo", "--collector", "127.0.0.1:9090", "--fanout", "2", "--ring-size", "8MiB", "--spool-size", "1MiB", "--promisc=false"},
	} {
		code, printed, errOut := runSensor(t, append(slices.Clone(args), "--print-config")...)
		require.Equal(t, exitOK, code, errOut)
		file := filepath.Join(dir, "printed.yaml")
		require.NoError(t, os.WriteFile(file, []byte(printed), 0o600))
		code, out, errOut := runSensor(t, "--config", file, "--check")
		if os.Geteuid() != 0 && args[0] == "--interface" {
			assert.Contains(t, errOut, "needs CAP_NET_RAW", "%v", args)
		} else {
			assert.Equal(t, exitOK, code, "%v\n%s\n%s", args, printed, errOut)
			assert.Equal(t, "configuration ok\n", out)
		}
		code, again, errOut := runSensor(t, "--config", file, "--print-config")
		require.Equal(t, exitOK, code, errOut)
		assert.Equal(t, printed, again)
	}
}

// TestHelp: --help goes to stdout, spells flags --name, and says each default once.
func TestHelp(t *testing.T) {
	code, out, errOut := runSensor(t, "--help")
	require.Equal(t, exitOK, code)
	assert.Empty(t, errOut)
	assert.Contains(t, out, "\n  --ring-size size\n      ring memory size per worker")
	assert.Contains(t, out, "(default 16MiB)\n")
	assert.Regexp(t, `--sensor-id id\n.*\(default [^)]+\)\n`, out)
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^\s*-[a-z]`), out, "no single-dash flags")
	for _, block := range strings.Split(out, "\n  --")[1:] {
		assert.LessOrEqual(t, strings.Count(block, "default"), 1, "the default once: --%s", block)
	}
}

// pipeStdin makes standard input the read end of a real pipe fed with file.
func pipeStdin(t *testing.T, file string) {
	t.Helper()
	r, w, err := os.Pipe()
	require.NoError(t, err)
	src, err := os.Open(file)
	require.NoError(t, err)
	old := os.Stdin
	os.Stdin = r
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(w, src)
		w.Close()
		src.Close()
	}()
	t.Cleanup(func() {
		os.Stdin = old
		r.Close()
		<-done
	})
}

func sortedLines(s string) []string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	slices.Sort(lines)
	return lines
}

// TestReadStdinPipe: --read - reads pcap and pcapng from a pipe (not seekable) and
// gives the flows of reading the file.
func TestReadStdinPipe(t *testing.T) {
	for _, name := range []string{"pcapplusplus-example2.pcap", "ndpi-alexa-app.pcapng"} {
		path := filepath.Join(pcapDir, name)
		code, want, errOut := runSensor(t, "--read", path, "--output", "jsonl", "--sensor-id", "s")
		require.Equal(t, exitOK, code, errOut)
		require.NotEmpty(t, want)
		pipeStdin(t, path)
		code, got, errOut := runSensor(t, "--read", "-", "--output", "jsonl", "--sensor-id", "s")
		require.Equal(t, exitOK, code, errOut)
		assert.Equal(t, sortedLines(want), sortedLines(got), name)
		assert.Contains(t, errOut, "file=-")
	}
}

// TestNotACaptureIsOneLine: a file (or a pipe) that is not a capture fails with
// one line, before anything is read or logged.
func TestNotACaptureIsOneLine(t *testing.T) {
	text := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("hello, not a capture\n"), 0o644))
	code, out, errOut := runSensor(t, "--read", text, "--output", "jsonl")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Equal(t, "netwatch-sensor: --read="+text+" (command line): not a pcap or pcapng file (magic 0x68656c6c)\n", errOut)

	pipeStdin(t, text)
	code, out, errOut = runSensor(t, "--read", "-", "--output", "jsonl")
	assert.Equal(t, exitUsage, code)
	assert.Empty(t, out)
	assert.Equal(t, "netwatch-sensor: --read=- (command line): not a pcap or pcapng file (magic 0x68656c6c)\n", errOut)
}
