package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/collector/internal/app"
	"netwatch.dev/common/testpki"
)

func runCollector(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestConfigPrecedence: flags > NETWATCH_* environment > YAML file > defaults.
func TestConfigPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "collector.yaml")
	require.NoError(t, os.WriteFile(file, []byte("retention: 30m\nmax-flows: 5000\nhttp-listen: 127.0.0.1:18080\n"), 0o600))
	t.Setenv("NETWATCH_MAX_FLOWS", "6000")
	t.Setenv("NETWATCH_PORT", "18181")
	code, out, errOut := runCollector(t, "--config", file, "--http-listen", "127.0.0.1:18282", "--print-config")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "retention: 30m0s\n", "file over default")
	assert.Contains(t, out, "max-flows: \"6000\"\n", "environment over file")
	assert.Contains(t, out, "http-listen: 127.0.0.1:18282\n", "flag over environment alias")
}

func TestBadSettingsNameTheField(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		file string
		env  map[string]string
		args []string
		want string
	}{
		{name: "file value", file: "retention: forever\n", want: "--retention=forever (config file "},
		{name: "file field", file: "colour: green\n", want: `unknown field "colour"`},
		{name: "env", env: map[string]string{"NETWATCH_MAX_FLOWS": "lots"}, want: "NETWATCH_MAX_FLOWS"},
		{name: "port alias", env: map[string]string{"NETWATCH_PORT": "99999"}, want: "NETWATCH_PORT"},
		{name: "auth enabled without token", env: map[string]string{"NETWATCH_AUTH_ENABLED": "true"}, want: "NETWATCH_AUTH_ENABLED"},
		{name: "public API without token", args: []string{"--http-listen", "0.0.0.0:8080"}, want: "http-listen"},
		{name: "cleanup interval", args: []string{"--cleanup-interval", "1h"}, want: "cleanup-interval"},
		{name: "snapshot interval", args: []string{"--snapshot-interval", "10ms"}, want: "snapshot-interval"},
		{name: "log format", args: []string{"--log-format", "xml"}, want: "log-format"},
		{name: "connection cap", args: []string{"--grpc-max-conns-per-ip", "-1"}, want: "--grpc-max-conns-per-ip=-1 (command line): -1 must not be negative (0 turns the cap off)"},
		{name: "loopback connection cap", args: []string{"--http-max-conns-loopback", "-5"}, want: "--http-max-conns-loopback=-5 (command line): "},
		{name: "hello timeout", args: []string{"--sensor-hello-timeout", "0s"}, want: "--sensor-hello-timeout=0s (command line): 0s is outside [1s, 5m]"},
		{name: "retention", args: []string{"--retention", "30s"}, want: "--retention=30s (command line): 30s is shorter than one minute"},
		{name: "max flows", args: []string{"--max-flows", "0"}, want: "--max-flows=0 (command line): 0 is outside [1, "},
		{name: "max sensors", args: []string{"--max-sensors", "0"}, want: "--max-sensors=0 (command line): 0 must be at least 1"},
		{name: "snapshot interval from the file", file: "snapshot-interval: 1ms\n", want: "--snapshot-interval=1ms (config file "},
		{name: "dns names max", args: []string{"--dns-names-max", "5"}, want: "--dns-names-max=5 (command line): 5 is outside [16, 100000000] (0 turns the DNS name table off)"},
		{name: "dns names max not a number", args: []string{"--dns-names-max", "many"}, want: "dns-names-max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := append([]string{"--data-dir", "", "--check"}, tc.args...)
			if tc.file != "" {
				p := filepath.Join(dir, tc.name+".yaml")
				require.NoError(t, os.WriteFile(p, []byte(tc.file), 0o600))
				args = append(args, "--config", p)
			}
			code, _, errOut := runCollector(t, args...)
			assert.Equal(t, 2, code)
			assert.Contains(t, errOut, tc.want)
		})
	}
	code, out, _ := runCollector(t, "--data-dir", "", "--check")
	assert.Equal(t, 0, code)
	assert.Contains(t, out, "configuration ok")
}

// TestCheckFailsLikeTheRun: --check loads the TLS and token files, parses the listen
// addresses and tries the data directory, and fails naming the flag, its value and
// where it came from. Where the run fails before it listens, it fails the same way.
func TestCheckFailsLikeTheRun(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := testpki.SelfSigned(t, dir)
	badPEM := filepath.Join(dir, "bad.pem")
	require.NoError(t, os.WriteFile(badPEM, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), 0o600))
	aFile := filepath.Join(dir, "a-file")
	require.NoError(t, os.WriteFile(aFile, []byte("x"), 0o600))
	nope := filepath.Join(dir, "nope")
	tls := []string{"--tls-cert", cert, "--tls-key", key}
	for _, tc := range []struct {
		name string
		args []string
		want string
		real bool // the run fails the same way (before it listens)
	}{
		{"grpc port", []string{"--grpc-listen", "127.0.0.1:99999"}, "--grpc-listen=127.0.0.1:99999 (command line): port 99999 is out of range (0 to 65535)", true},
		{"http port", []string{"--http-listen", "127.0.0.1:http-ish"}, `--http-listen=127.0.0.1:http-ish (command line): port "http-ish" is not a number or a known service name`, true},
		{"missing cert", []string{"--tls-cert", nope, "--tls-key", key}, "--tls-cert=" + nope + " (command line): open " + nope + ": no such file or directory", true},
		{"key is not a key", []string{"--tls-cert", cert, "--tls-key", cert}, "--tls-cert=" + cert + " (command line): tls: ", true},
		{"missing client CA", append(slices.Clone(tls), "--tls-client-ca", nope), "--tls-client-ca=" + nope + " (command line): open " + nope, true},
		{"client CA by its alias", append(slices.Clone(tls), "--client-ca", badPEM), "--client-ca=" + badPEM + " (command line): " + badPEM + " holds no PEM certificate", true},
		{"missing sensor tokens", []string{"--sensor-token-file", nope}, "--sensor-token-file=" + nope + " (command line): open " + nope, true},
		{"missing API token file", []string{"--api-token-file", nope}, "--api-token-file=" + nope + " (command line): open " + nope, true},
		{"data dir is a file", []string{"--data-dir", aFile}, "--data-dir=" + aFile + " (command line): " + aFile + " is not a directory", false},
		{"data dir under a file", []string{"--data-dir", filepath.Join(aFile, "sub")}, "--data-dir=" + filepath.Join(aFile, "sub") + " (command line): ", false},
		{"cors origin", []string{"--cors-origin", "example.com"}, `--cors-origin=example.com (command line): "example.com" is not an origin (scheme://host[:port])`, true},
		{"log level", []string{"--log-level", "loud"}, "--log-level=loud (command line): not one of debug, info, warn, error", true},
		{"unknown flag", []string{"--colour", "red"}, "unknown flag --colour (see --help)", true},
		{"missing geoip asn db", []string{"--geoip-asn-db", nope}, "--geoip-asn-db=" + nope + " (command line): stat " + nope + ": no such file or directory", true},
		{"geoip country db not a database", []string{"--geoip-country-db", aFile}, "--geoip-country-db=" + aFile + " (command line): " + aFile + ": not a MaxMind DB file", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if !slices.Contains(args, "--data-dir") {
				args = append(slices.Clone(args), "--data-dir", "")
			}
			code, out, errOut := runCollector(t, append(slices.Clone(args), "--check")...)
			assert.Equal(t, 2, code, errOut)
			assert.Empty(t, out)
			assert.True(t, strings.HasPrefix(errOut, "netwatch-collector: "+tc.want), "stderr %q\nwant   %q", errOut, tc.want)
			assert.Equal(t, 1, strings.Count(errOut, "\n"), "one line: %q", errOut)
			if tc.real {
				rcode, _, rerr := runCollector(t, args...)
				assert.Equal(t, code, rcode, rerr)
				assert.Equal(t, errOut, rerr, "the run fails the same way")
			}
		})
	}
	// The data directory the run cannot create: it fails on the same flag.
	code, _, errOut := runCollector(t, "--data-dir", filepath.Join(aFile, "sub"), "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0")
	assert.Equal(t, 2, code)
	assert.True(t, strings.HasPrefix(errOut, "netwatch-collector: --data-dir="+filepath.Join(aFile, "sub")+" (command line): "), errOut)
}

// TestCheckPasses: good TLS files and a data directory that does not exist yet
// (its parent is writable); --check creates nothing.
func TestCheckPasses(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := testpki.SelfSigned(t, dir)
	data := filepath.Join(dir, "data", "collector")
	code, out, errOut := runCollector(t, "--tls-cert", cert, "--tls-key", key, "--tls-client-ca", cert, "--grpc-listen", "0.0.0.0:9443", "--data-dir", data, "--check")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, "configuration ok\n", out)
	assert.NoDirExists(t, filepath.Join(dir, "data"), "--check creates nothing")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "only the PEM files")
}

// TestPrintConfigRoundTrip: --print-config's output is a config file that passes
// --check and prints the same again; a secret is not printed, and its placeholder
// is refused back.
func TestPrintConfigRoundTrip(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--data-dir", filepath.Join(dir, "data"), "--retention", "30m", "--allowed-origins", "*.example.com, ops.example.org",
		"--cors-origin", "https://ops.example.org", "--client-ca", "", "--rate-limit", "0", "--alert-cpu", "42.5", "--print-config"}
	code, printed, errOut := runCollector(t, args...)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, printed, "allowed-origins: '*.example.com,ops.example.org'\n")
	assert.NotContains(t, "\n"+printed, "\nclient-ca: ", "aliases are not printed")
	assert.NotContains(t, printed, "auth-token")
	assert.Contains(t, printed, "tls-client-ca: ")
	for _, c := range []string{"check", "print-config", "version", "config:"} {
		assert.NotContains(t, printed, c+": ")
	}
	file := filepath.Join(dir, "printed.yaml")
	require.NoError(t, os.WriteFile(file, []byte(printed), 0o600))
	code, out, errOut := runCollector(t, "--config", file, "--check")
	require.Equal(t, 0, code, "%s\n%s", printed, errOut)
	assert.Equal(t, "configuration ok\n", out)
	code, again, errOut := runCollector(t, "--config", file, "--print-config")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, printed, again)

	code, printed, _ = runCollector(t, "--api-token", "s3cret", "--print-config")
	require.Equal(t, 0, code)
	assert.NotContains(t, printed, "s3cret")
	assert.Contains(t, printed, "api-token: <redacted>\n")
	require.NoError(t, os.WriteFile(file, []byte(printed), 0o600))
	code, _, errOut = runCollector(t, "--config", file, "--check")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--api-token=<redacted> (config file "+file+"): is the placeholder --print-config writes for a secret")
}

// TestPrintConfigNeedsNoValidSettings: --print-config shows what is set even when
// --check would refuse it.
func TestPrintConfigNeedsNoValidSettings(t *testing.T) {
	code, out, errOut := runCollector(t, "--http-listen", "0.0.0.0:8080", "--print-config")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "http-listen: 0.0.0.0:8080\n")
}

// TestHelp: --help goes to stdout, spells flags --name, and says each default once.
func TestHelp(t *testing.T) {
	code, out, errOut := runCollector(t, "--help")
	require.Equal(t, 0, code)
	assert.Empty(t, errOut)
	assert.Contains(t, out, "\n  --grpc-listen address\n      address for sensors and gRPC clients (default 127.0.0.1:9090)\n")
	assert.NotRegexp(t, regexp.MustCompile(`(?m)^\s*-[a-z]`), out, "no single-dash flags")
	for _, block := range strings.Split(out, "\n  --")[1:] {
		assert.LessOrEqual(t, strings.Count(block, "default"), 1, "the default once: --%s", block)
	}
}

// TestFieldFlagsNameFieldsAndFlags: every entry of fieldFlags is the path of a
// field of app.Config (nested configs by their field: "Store.MaxFlows") and names
// a flag the command has, so an error about that field names its flag.
func TestFieldFlagsNameFieldsAndFlags(t *testing.T) {
	_, help, _ := runCollector(t, "--help")
	for field, name := range fieldFlags {
		typ := reflect.TypeFor[app.Config]()
		for _, part := range strings.Split(field, ".") {
			f, ok := typ.FieldByName(part)
			require.True(t, ok, "fieldFlags: %s is not a field of app.Config", field)
			typ = f.Type
		}
		assert.Regexp(t, regexp.MustCompile(`\n  --`+regexp.QuoteMeta(name)+`[ \n]`), help, "fieldFlags: %s names no flag --%s", field, name)
	}
}
