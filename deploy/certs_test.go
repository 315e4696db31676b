package deploy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"netwatch.dev/common/oracle"
	"netwatch.dev/common/syncbuf"
)

// genCerts runs tls/gen-certs.sh with args and returns its exit code and output.
func genCerts(t *testing.T, args ...string) (int, string) {
	t.Helper()
	_, err := exec.LookPath("openssl")
	require.NoError(t, err, "openssl is needed (Debian package openssl; make deps installs it)")
	out, err := exec.Command("tls/gen-certs.sh", args...).CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), string(out)
	}
	require.NoError(t, err, "gen-certs.sh: %s", out)
	return 0, string(out)
}

func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	blk, rest := pem.Decode(b)
	require.NotNil(t, blk, "%s: no PEM block", file)
	require.Empty(t, strings.TrimSpace(string(rest)), "%s: one certificate", file)
	c, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err, file)
	return c
}

func pool(t *testing.T, file string) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(readCert(t, file))
	return p
}

func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	slices.Sort(out)
	return out
}

// tlsPaths returns the TLS file paths an example configuration names (by key).
func tlsPaths(t *testing.T, file string, keys ...string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(b, &doc))
	var out []string
	for _, k := range keys {
		v, ok := doc[k].(string)
		require.True(t, ok, "%s: %s is set", file, k)
		out = append(out, v)
	}
	return out
}

// inDir checks every path is directly in dir and returns the sorted base names.
func inDir(t *testing.T, dir string, paths []string, what string) []string {
	t.Helper()
	var out []string
	for _, p := range paths {
		assert.Equal(t, dir, path.Dir(p), "%s: %s", what, p)
		out = append(out, path.Base(p))
	}
	slices.Sort(out)
	return out
}

// TestGenCerts runs the certificate script and checks what it wrote with crypto/x509: the
// collector certificate has exactly the DNS and IP SANs given and verifies against the CA
// as a server, each sensor certificate as a client only, and the file names are the ones the
// example configurations, systemd units and Kubernetes manifests use.
func TestGenCerts(t *testing.T) {
	out := t.TempDir()
	code, log := genCerts(t, "--out", out, "--collector-name", "collector.example", "--collector-ip", "192.0.2.10",
		"--collector-ip", "127.0.0.1", "--collector-ip", "2001:db8::10", "--sensor", "sensor-b", "--sensor=sensor-c")
	require.Equal(t, 0, code, log)

	srv := readCert(t, filepath.Join(out, "collector", "collector.crt"))
	assert.Equal(t, []string{"collector.example"}, srv.DNSNames)
	var ips []string
	for _, ip := range srv.IPAddresses {
		ips = append(ips, ip.String())
	}
	assert.ElementsMatch(t, []string{"192.0.2.10", "127.0.0.1", "2001:db8::10"}, ips)
	assert.False(t, srv.IsCA)
	roots := pool(t, filepath.Join(out, "collector", "ca.crt"))
	for _, name := range []string{"collector.example", "192.0.2.10", "127.0.0.1", "2001:db8::10"} {
		_, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		assert.NoError(t, err, "collector certificate for %s", name)
	}
	_, err := srv.Verify(x509.VerifyOptions{Roots: roots, DNSName: "192.0.2.11"})
	assert.Error(t, err, "an address not given is not in the certificate")
	_, err = tls.LoadX509KeyPair(filepath.Join(out, "collector", "collector.crt"), filepath.Join(out, "collector", "collector.key"))
	assert.NoError(t, err, "collector key matches its certificate")

	for _, s := range []string{"sensor-b", "sensor-c"} {
		dir := filepath.Join(out, s)
		assert.Equal(t, []string{"ca.crt", "sensor.crt", "sensor.key"}, fileNames(t, dir), s)
		c := readCert(t, filepath.Join(dir, "sensor.crt"))
		assert.Equal(t, s, c.Subject.CommonName)
		assert.Equal(t, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, c.ExtKeyUsage, "%s: client authentication only", s)
		_, err := c.Verify(x509.VerifyOptions{Roots: pool(t, filepath.Join(dir, "ca.crt")), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
		assert.NoError(t, err, "%s verifies against the CA", s)
		_, err = c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		assert.Error(t, err, "%s is no server certificate", s)
		_, err = tls.LoadX509KeyPair(filepath.Join(dir, "sensor.crt"), filepath.Join(dir, "sensor.key"))
		assert.NoError(t, err, "%s key matches its certificate", s)
		st, err := os.Stat(filepath.Join(dir, "sensor.key"))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "%s: key readable by its owner only", s)
	}

	// The file names are exactly those the deployment files use.
	collectorFiles := fileNames(t, filepath.Join(out, "collector"))
	assert.Equal(t, []string{"ca.crt", "collector.crt", "collector.key"}, collectorFiles)
	sensorFiles := fileNames(t, filepath.Join(out, "sensor-b"))
	assert.Equal(t, collectorFiles, inDir(t, "/etc/netwatch/tls", tlsPaths(t, "config/collector.yaml", "tls-cert", "tls-key", "tls-client-ca"), "config/collector.yaml"))
	assert.Equal(t, sensorFiles, inDir(t, "/etc/netwatch/tls", tlsPaths(t, "config/sensor.yaml", "ca", "tls-cert", "tls-key"), "config/sensor.yaml"))
	for unit, want := range map[string][]string{"netwatch-collector.service": collectorFiles, "netwatch-sensor.service": sensorFiles} {
		var tlsSources []string
		for _, c := range readUnit(t, unit).credentials() {
			if strings.HasPrefix(c.source, "/etc/netwatch/tls/") {
				tlsSources = append(tlsSources, c.source)
				assert.Equal(t, path.Base(c.source), c.id, "%s: credential named like its file", unit)
			}
		}
		assert.Equal(t, want, inDir(t, "/etc/netwatch/tls", tlsSources, unit))
	}
	for file, want := range map[string][]string{"collector.yaml": collectorFiles, "sensor.yaml": sensorFiles} {
		var paths []string
		for _, d := range docs(t, filepath.Join("kubernetes", file)) {
			if d["kind"] != "Deployment" && d["kind"] != "DaemonSet" {
				continue
			}
			for _, a := range strs(get(t, d, "spec.template.spec.containers.0.args")) {
				if _, p, ok := strings.Cut(a, "="); ok && strings.HasPrefix(p, "/etc/netwatch/tls/") {
					paths = append(paths, p)
				}
			}
		}
		assert.Equal(t, want, inDir(t, "/etc/netwatch/tls", paths, "kubernetes/"+file))
	}

	// A second run reuses the CA for a new sensor and refuses to overwrite an old one.
	code, log = genCerts(t, "--out", out, "--sensor", "sensor-d")
	require.Equal(t, 0, code, log)
	assert.Contains(t, log, "reusing the CA")
	_, err = readCert(t, filepath.Join(out, "sensor-d", "sensor.crt")).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	assert.NoError(t, err, "sensor-d is signed by the same CA")
	before, err := os.ReadFile(filepath.Join(out, "sensor-b", "sensor.key"))
	require.NoError(t, err)
	code, log = genCerts(t, "--out", out, "--sensor", "sensor-e", "--sensor", "sensor-b")
	assert.Equal(t, 2, code, log)
	assert.Contains(t, log, "sensor-b exists")
	after, err := os.ReadFile(filepath.Join(out, "sensor-b", "sensor.key"))
	require.NoError(t, err)
	assert.Equal(t, before, after, "sensor-b's key is kept")
	assert.NoDirExists(t, filepath.Join(out, "sensor-e"), "nothing is written when a request is refused")
}

// TestGenCertsBadInput: a bad argument exits 2 naming the option, and writes nothing.
func TestGenCertsBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--collector-ip", "collector.example"}, "--collector-ip: 'collector.example' is not an IPv4 or IPv6 address"},
		{[]string{"--collector-name", "bad name"}, "--collector-name: 'bad name' is not a DNS name"},
		{[]string{"--sensor", "../x"}, "--sensor: '../x' must be"},
		{[]string{"--sensor", "collector"}, "--sensor: 'collector' must be"},
		{[]string{"--sensor", "a", "--sensor", "a"}, "--sensor: 'a' given twice"},
		{[]string{"--sensor"}, "--sensor needs a value"},
		{[]string{"--days", "0", "--sensor", "a"}, "--days: '0' is not a positive number"},
		{[]string{"sensor-b"}, "unknown argument 'sensor-b'"},
		{nil, "nothing to issue"},
	} {
		out := filepath.Join(t.TempDir(), "tls")
		code, log := genCerts(t, append([]string{"--out", out}, c.args...)...)
		assert.Equal(t, 2, code, "%v: %s", c.args, log)
		assert.Contains(t, log, c.want, c.args)
		assert.NoDirExists(t, out, c.args)
	}
	code, log := genCerts(t, "--help")
	assert.Equal(t, 0, code)
	for _, opt := range []string{"--collector-name", "--collector-ip", "--sensor", "--out", "--days"} {
		assert.Contains(t, log, opt, "--help names %s", opt)
	}
}

// TestMutualTLSWithGeneratedCerts starts the real collector and a real sensor over loopback
// with the example configurations, their /etc/netwatch/tls/ paths pointed at the script's
// output (127.0.0.1 as the collector's IP SAN), and waits for the sensor to be connected.
func TestMutualTLSWithGeneratedCerts(t *testing.T) {
	sensorBin, collectorBin := build(t)
	out := t.TempDir()
	code, log := genCerts(t, "--out", out, "--collector-name", "collector.example", "--collector-ip", "127.0.0.1", "--sensor", "sensor-b")
	require.Equal(t, 0, code, log)
	config := func(file, dir string) string {
		b, err := os.ReadFile(file)
		require.NoError(t, err)
		text := strings.ReplaceAll(string(b), "/etc/netwatch/tls/", dir+"/")
		require.NotEqual(t, string(b), text, "%s names /etc/netwatch/tls/ files", file)
		p := filepath.Join(t.TempDir(), filepath.Base(file))
		require.NoError(t, os.WriteFile(p, []byte(text), 0o600))
		return p
	}

	collector := exec.Command(collectorBin, "--config", config("config/collector.yaml", filepath.Join(out, "collector")),
		"--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--data-dir", "", "--log-format", "json")
	stderr, err := collector.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, collector.Start())
	t.Cleanup(func() { collector.Process.Kill(); collector.Wait() })
	// The first log lines name the bound addresses; the rest is kept for failure messages.
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	var grpcAddr, httpURL string
	var collectorLog []string
	for grpcAddr == "" {
		line, ok := <-lines
		require.True(t, ok, "collector exited before it started: %s", strings.Join(collectorLog, "\n"))
		collectorLog = append(collectorLog, line)
		var rec struct{ Msg, GRPC, HTTP string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "collector started" {
			grpcAddr, httpURL = rec.GRPC, rec.HTTP
		}
	}
	_, port, err := net.SplitHostPort(grpcAddr)
	require.NoError(t, err)

	sensor := exec.Command(sensorBin, "--config", config("config/sensor.yaml", filepath.Join(out, "sensor-b")),
		"--collector", "127.0.0.1:"+port, "--interface", "", "--read", oracle.Path("ndpi-alexa-app.pcapng"),
		"--loop", "--speed", "1x", "--metrics-listen", "")
	var sensorLog syncbuf.Buffer
	sensor.Stdout, sensor.Stderr = &sensorLog, &sensorLog
	require.NoError(t, sensor.Start())
	exited := make(chan error, 1)
	go func() { exited <- sensor.Wait() }()
	t.Cleanup(func() { sensor.Process.Kill(); <-exited })

	// Wait for the connection and a batch (the test's -timeout bounds it; no duration is
	// asserted). A refused handshake keeps the sensor retrying, so its log is shown.
	for {
		resp, err := http.Get(httpURL + "api/v1/sensors")
		require.NoError(t, err)
		var body struct{ Sensors []map[string]any }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		resp.Body.Close()
		if len(body.Sensors) == 1 {
			s := body.Sensors[0]
			require.Equal(t, "sensor-b", s["sensorId"], "%v", s)
			if s["connected"] == true && fmt.Sprint(s["batches"]) != "0" && s["batches"] != nil {
				break
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("sensor exited (%v): %s", err, sensorLog.String())
		case <-time.After(100 * time.Millisecond):
		}
		if strings.Contains(sensorLog.String(), "tls:") || strings.Contains(sensorLog.String(), "x509:") {
			t.Fatalf("TLS handshake failed: %s", sensorLog.String())
		}
	}
}
