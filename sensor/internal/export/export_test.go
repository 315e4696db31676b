package export

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/common/syncbuf"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/testcollector"
)

// These tests run the real collector binary (built once from the workspace) and
// talk to it over loopback gRPC, so a kill -9 is a real one.

var collectorBin string

func TestMain(m *testing.M) { os.Exit(testcollector.Main(m, &collectorBin)) }

// newCollector prepares a collector on a fixed loopback port (so it can restart
// on the same address) and data directory.
func newCollector(t *testing.T, extra ...string) *testcollector.Proc {
	return testcollector.New(t, collectorBin, extra...)
}

func testConfig(addr, id string) Config {
	cfg := DefaultConfig()
	cfg.Collector, cfg.SensorID, cfg.Hostname, cfg.Interface, cfg.Version = addr, id, "host-"+id, "eth0", "test"
	cfg.Interval = 20 * time.Millisecond
	cfg.BackoffMin, cfg.BackoffMax = 20*time.Millisecond, 300*time.Millisecond
	return cfg
}

func newExporter(t *testing.T, cfg Config) *Exporter {
	t.Helper()
	e, err := New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), time.Now)
	require.NoError(t, err)
	e.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		e.Stop(ctx)
	})
	return e
}

// gen makes the deltas of batch n: flows keys (n % keys) .. + perBatch, so flows
// recur across batches and a batch applied twice would show in the totals.
type gen struct {
	keys, perBatch int
	n              int
	flows          map[int]bool
	packets, bytes uint64
}

func (g *gen) next() []*netwatchv1.FlowDelta {
	if g.flows == nil {
		g.flows = make(map[int]bool)
	}
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var out []*netwatchv1.FlowDelta
	for i := range g.perBatch {
		k := (g.n*g.perBatch + i) % g.keys
		p := uint64(g.n%7 + 1)
		out = append(out, &netwatchv1.FlowDelta{
			Key: &netwatchv1.FlowKey{Protocol: 17, SrcAddr: netip.AddrFrom4([4]byte{10, 1, byte(k >> 8), byte(k)}).AsSlice(), SrcPort: 5000,
				DstAddr: netip.MustParseAddr("192.0.2.9").AsSlice(), DstPort: 53},
			SrcPackets: p, SrcBytes: 100 * p, DstPackets: 1, DstBytes: 80,
			FirstSeen: timestamppb.New(t0.Add(time.Duration(k) * time.Millisecond)), LastSeen: timestamppb.New(t0.Add(time.Hour)),
			Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
		})
		g.flows[k] = true
		g.packets += p + 1
		g.bytes += 100*p + 80
	}
	g.n++
	return out
}

func TestDeliveredExactlyOnceAcrossGracefulRestartAndKill9(t *testing.T) {
	c := newCollector(t)
	c.Start()
	e := newExporter(t, testConfig(c.Addr(), "s1"))
	g := &gen{keys: 300, perBatch: 40}
	submit := func(n int) {
		for range n {
			e.Submit(g.next(), nil, &netwatchv1.SensorStats{Packets: g.packets, KernelDrops: 3})
			time.Sleep(5 * time.Millisecond)
		}
	}
	submit(40)
	c.Term() // graceful stop mid-stream
	submit(20)
	assert.False(t, e.Stats().Connected)
	c.Start()
	submit(40)
	c.Kill() // kill -9: acknowledged batches must survive
	submit(20)
	time.Sleep(300 * time.Millisecond)
	c.Start()
	submit(40)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, e.Drain(ctx))
	flows, packets, bytes := c.Totals("s1")
	assert.Equal(t, []uint64{uint64(len(g.flows)), g.packets, g.bytes}, []uint64{uint64(flows), packets, bytes},
		"flows, packets, bytes: nothing lost, nothing doubled")
	st := e.Stats()
	assert.Equal(t, uint64(160), st.BatchesSubmitted)
	assert.Equal(t, uint64(0), st.BatchesDropped)
	assert.Zero(t, st.SpoolBatches)
	assert.GreaterOrEqual(t, st.Connects, uint64(3))
	s := c.Sensor("s1")
	require.NotNil(t, s)
	assert.Equal(t, "host-s1", s.GetHostname())
	assert.True(t, s.GetConnected())
	assert.Equal(t, uint64(3), s.GetKernelDrops())
	assert.Contains(t, c.Log(), "durable log replayed")
}

func TestSpoolOverflowDropsOldestAndTheLossReachesTheCollector(t *testing.T) {
	c := newCollector(t) // not started: the sensor spools
	cfg := testConfig(c.Addr(), "lossy")
	cfg.SpoolBytes = 64 << 10
	// The collector marks a sensor stale after three silent export intervals, and a
	// stale sensor makes the health "unhealthy". Nothing is submitted after the drain,
	// so with the 20 ms of testConfig the health below depended on how fast the
	// machine got from the last batch to the health query (60 ms). An hour keeps
	// the sensor fresh: the only problem left to report is the loss.
	cfg.Interval = time.Hour
	e := newExporter(t, cfg)
	g := &gen{keys: 1 << 20, perBatch: 100} // distinct flows: the store holds exactly what arrived
	var perBatch []uint64
	for range 40 {
		before := g.packets
		e.Submit(g.next(), nil, nil)
		perBatch = append(perBatch, g.packets-before)
	}
	st := e.Stats()
	require.Positive(t, st.BatchesDropped, "a 64 KiB spool cannot hold 40 batches of 100 flows")
	assert.LessOrEqual(t, st.SpoolBytes, cfg.SpoolBytes)
	var wantLost uint64
	for i := range st.BatchesDropped { // the oldest went first
		wantLost += perBatch[i]
	}
	assert.Equal(t, wantLost, st.Loss.Packets)
	assert.Equal(t, st.BatchesDropped*100, st.Loss.Flows)
	// What is not dropped waits in the spool: Pending is the rest, exactly.
	p := e.Pending()
	assert.Equal(t, []uint64{uint64(st.SpoolBatches), uint64(st.SpoolBatches) * 100, g.packets - st.Loss.Packets, g.bytes - st.Loss.Bytes},
		[]uint64{p.Batches, p.Flows, p.Packets, p.Bytes}, "pending batches, flow updates, packets, bytes")

	c.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Drain(ctx))
	assert.Zero(t, e.Pending(), "nothing pending once every batch is acknowledged")
	_, packets, bytes := c.Totals("lossy")
	assert.Equal(t, g.packets-st.Loss.Packets, packets, "what arrived + what the sensor reports lost = what was captured")
	assert.Equal(t, g.bytes-st.Loss.Bytes, bytes)
	s := c.Sensor("lossy")
	require.NotNil(t, s)
	assert.Equal(t, st.Loss.Packets, s.GetLostPackets(), "the registry shows the loss")
	assert.Equal(t, st.Loss.Flows, s.GetLostFlows())
	assert.Equal(t, st.Loss.Bytes, s.GetLostBytes())

	// The REST API says so too, and the health marks the window incomplete.
	resp, err := http.Get("http://" + c.HTTPAddr() + "/api/v1/sensors")
	require.NoError(t, err)
	defer resp.Body.Close()
	var body struct {
		Sensors []map[string]any `json:"sensors"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.Len(t, body.Sensors, 1)
	assert.Equal(t, "lossy", body.Sensors[0]["sensorId"], "%v", body.Sensors[0])
	assert.Equal(t, float64(st.Loss.Packets), body.Sensors[0]["lostPackets"])
	h, err := c.Query().GetHealth(context.Background(), &netwatchv1.GetHealthRequest{})
	require.NoError(t, err)
	assert.True(t, h.GetIncomplete())
	assert.Equal(t, "degraded", h.GetStatus(), "%q", h.GetReasons())
	require.Len(t, h.GetReasons(), 1, "the loss is the only problem: %q", h.GetReasons())
	assert.Contains(t, h.GetReasons()[0], "sensor lossy lost")
	assert.Equal(t, uint32(1), h.GetSensorsConnected())
}

// TestBatchTheCollectorRefusesIsDroppedAsLossNotResentForever: the real collector
// refuses a batch holding a delta of 2^64-1 packets (INVALID_ARGUMENT with a
// BatchRejection); the sensor drops it, counts it as rejected and as loss, and goes
// on delivering the batches after it. Before, it sent the same batch again every
// reconnect, forever, and nothing after it was ever delivered.
func TestBatchTheCollectorRefusesIsDroppedAsLossNotResentForever(t *testing.T) {
	c := newCollector(t)
	c.Start()
	cfg := testConfig(c.Addr(), "refused")
	cfg.Interval = time.Hour // fresh throughout: no stale sensor
	e := newExporter(t, cfg)
	g := &gen{keys: 1 << 20, perBatch: 10}
	for range 3 {
		e.Submit(g.next(), nil, nil)
	}
	before := g.packets
	bad := g.next()
	badPackets := g.packets - before // what the bad batch held before it was spoilt
	bad[3].SrcPackets = ^uint64(0)
	e.Submit(bad, nil, nil)
	for range 3 {
		e.Submit(g.next(), nil, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, e.Drain(ctx), "the refused batch must not stay in the spool")
	st := e.Stats()
	assert.Equal(t, uint64(1), st.BatchesRejected)
	assert.Equal(t, uint64(1), st.BatchesDropped)
	assert.Equal(t, uint64(6), st.BatchesAcked)
	assert.Equal(t, uint64(10), st.Loss.Flows)
	flows, packets, _ := c.Totals("refused")
	assert.Equal(t, 60, flows, "the six good batches arrived")
	assert.Equal(t, g.packets-badPackets, packets, "all but the refused batch, the ones after it too")

	s := c.Sensor("refused")
	require.NotNil(t, s)
	assert.Equal(t, uint64(1), s.GetRejectedBatches())
	assert.Contains(t, s.GetLastRejection(), "batch 4: deltas[3].src_packets: 18446744073709551615 is not below 2^40")
}

func TestSecondSensorWithTheSameIDIsRefused(t *testing.T) {
	c := newCollector(t)
	c.Start()
	e1 := newExporter(t, testConfig(c.Addr(), "same"))
	e1.Submit(nil, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, e1.Drain(ctx))
	e2 := newExporter(t, testConfig(c.Addr(), "same"))
	e2.Submit(nil, nil, nil)
	time.Sleep(500 * time.Millisecond)
	assert.Zero(t, e2.Stats().Connects, "refused")
	assert.Equal(t, 1, e2.Stats().SpoolBatches, "kept for when the id is free")
	assert.True(t, e1.Stats().Connected)
	assert.Equal(t, e1.BootID(), c.Sensor("same").GetBootId())
}

// tlsFiles writes into a fresh directory a CA (ca.pem), a server and a client
// certificate it signed, and another CA (other-ca.pem) with a client certificate
// of its own (stranger). It returns the directory and the first CA.
func tlsFiles(t *testing.T) (dir string, ca *x509.Certificate) {
	t.Helper()
	dir = t.TempDir()
	ca, caKey := newCA(t, "netwatch test CA")
	writePEM(t, filepath.Join(dir, "ca.pem"), "CERTIFICATE", ca.Raw)
	issue(t, dir, "server", ca, caKey, true)
	issue(t, dir, "client", ca, caKey, false)
	other, otherKey := newCA(t, "another CA")
	writePEM(t, filepath.Join(dir, "other-ca.pem"), "CERTIFICATE", other.Raw)
	issue(t, dir, "stranger", other, otherKey, false)
	return dir, ca
}

func TestTLSAndMutualTLS(t *testing.T) {
	dir, ca := tlsFiles(t)

	c := newCollector(t, "--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server-key.pem"),
		"--tls-client-ca", filepath.Join(dir, "ca.pem"))
	c.Start()
	clientCert, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem"))
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	c.SetQueryCreds(credentials.NewTLS(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{clientCert}}))
	cfg := testConfig(c.Addr(), "tls")
	cfg.CAFile = filepath.Join(dir, "ca.pem")
	cfg.CertFile, cfg.KeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	e := newExporter(t, cfg)
	g := &gen{keys: 50, perBatch: 10}
	for range 5 {
		e.Submit(g.next(), nil, nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, e.Drain(ctx), "mTLS link works")

	for name, mutate := range map[string]func(*Config){
		"no client cert": func(c *Config) { c.CertFile, c.KeyFile = "", "" },
		"cert of another CA": func(c *Config) {
			c.CertFile, c.KeyFile = filepath.Join(dir, "stranger.pem"), filepath.Join(dir, "stranger-key.pem")
		},
		"plaintext to TLS": func(c *Config) { c.CAFile, c.CertFile, c.KeyFile = "", "", "" },
	} {
		bad := testConfig(c.Addr(), "bad-"+strings.ReplaceAll(name, " ", "-"))
		bad.CAFile, bad.CertFile, bad.KeyFile = cfg.CAFile, cfg.CertFile, cfg.KeyFile
		mutate(&bad)
		eb := newExporter(t, bad)
		eb.Submit(nil, nil, nil)
		sctx, scancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
		assert.Error(t, eb.Drain(sctx), name)
		scancel()
		assert.Zero(t, eb.Stats().Connects, name)
	}
	assert.Nil(t, c.Sensor("bad-no-client-cert"))
}

func TestConfigCheckNamesTheField(t *testing.T) {
	ok := DefaultConfig()
	ok.Collector, ok.SensorID = "127.0.0.1:9090", "s"
	require.NoError(t, ok.Check())
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		field  string
	}{
		{"host name without a CA", func(c *Config) { c.Collector = "collector.example:9090" }, "CAFile: "},
		{"a remote address without TLS", func(c *Config) { c.Collector = "10.0.0.1:9090" }, "--insecure"},
		{"not host:port", func(c *Config) { c.Collector = "nonsense" }, "Collector: "},
		{"port out of range", func(c *Config) { c.Collector = "127.0.0.1:99999" }, "Collector: "},
		{"empty sensor id", func(c *Config) { c.SensorID = "" }, "SensorID: "},
		{"sensor id with a space", func(c *Config) { c.SensorID = "rack 4" }, "SensorID: must be 1 to 128 bytes of [A-Za-z0-9._:-]"},
		{"sensor id too long", func(c *Config) { c.SensorID = strings.Repeat("a", 129) }, "SensorID: "},
		{"sensor id not ASCII", func(c *Config) { c.SensorID = "h\u00e9" }, "SensorID: "},
		{"spool too small", func(c *Config) { c.SpoolBytes = 10 }, "SpoolBytes: "},
		{"zero interval", func(c *Config) { c.Interval = 0 }, "Interval: "},
		{"cert without key", func(c *Config) { c.CertFile = "c.pem" }, "KeyFile: "},
		{"key without cert", func(c *Config) { c.KeyFile = "k.pem" }, "CertFile: "},
		{"client cert without CA", func(c *Config) { c.CertFile, c.KeyFile = "c.pem", "k.pem" }, "CAFile: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mutate(&cfg)
			err := cfg.Check()
			require.Error(t, err, tc.field)
			assert.Contains(t, err.Error(), tc.field)
		})
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"remote with --insecure", func(c *Config) { c.Collector, c.Insecure = "10.0.0.1:9090", true }},
		{"remote with a CA", func(c *Config) { c.Collector, c.CAFile = "10.0.0.1:9090", "ca.pem" }},
		{"localhost without TLS", func(c *Config) { c.Collector = "localhost:9090" }},
		{"IPv6 loopback without TLS", func(c *Config) { c.Collector = "[::1]:9090" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mutate(&cfg)
			assert.NoError(t, cfg.Check(), cfg.Collector)
		})
	}
}

func TestBackoffIsJitteredExponentialAndCapped(t *testing.T) {
	e := &Exporter{cfg: DefaultConfig()}
	for attempt, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second} {
		d := e.backoff(attempt)
		assert.True(t, d >= want/2 && d <= want, "attempt %d: %v not in [%v, %v]", attempt, d, want/2, want)
	}
	for range 100 {
		d := e.backoff(50)
		assert.True(t, d >= 15*time.Second && d <= 30*time.Second, "%v", d)
	}
}

// newCA makes a throwaway certificate authority.
func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return cert, key
}

// issue writes dir/name.pem and dir/name-key.pem signed by ca.
func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, server bool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	require.NoError(t, err)
	writePEM(t, filepath.Join(dir, name+".pem"), "CERTIFICATE", der)
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	writePEM(t, filepath.Join(dir, name+"-key.pem"), "PRIVATE KEY", kb)
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// newExporterLogging is newExporter with its log (warnings and errors) written to w.
func newExporterLogging(t *testing.T, cfg Config, w *syncbuf.Buffer) *Exporter {
	t.Helper()
	e, err := New(cfg, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn})), time.Now)
	require.NoError(t, err)
	e.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		e.Stop(ctx)
		if t.Failed() {
			t.Logf("sensor log:\n%s", w.String())
		}
	})
	return e
}

// TestTLSMismatchesAreExplained: a sensor and a collector that disagree on TLS
// are told so in plain words, on both sides: the sensor says what to change, the
// collector logs the refused handshake with the peer and the reason, once per
// peer and window (the sensor retries every 300 ms here).
func TestTLSMismatchesAreExplained(t *testing.T) {
	dir, _ := tlsFiles(t)
	tlsArgs := []string{"--tls-cert", filepath.Join(dir, "server.pem"), "--tls-key", filepath.Join(dir, "server-key.pem")}
	mtlsArgs := append(slices.Clone(tlsArgs), "--tls-client-ca", filepath.Join(dir, "ca.pem"))
	for _, tc := range []struct {
		name          string
		collector     []string
		ca, cert      string
		sensorSays    string
		collectorSays string // "": nothing logged
	}{
		{name: "plaintext sensor, TLS collector", collector: tlsArgs,
			sensorSays:    "the collector speaks TLS: give --ca",
			collectorSays: "plaintext on the TLS port"},
		{name: "TLS sensor, plaintext collector", ca: "ca.pem",
			sensorSays: "the collector does not speak TLS (plaintext on loopback?): drop --ca"},
		{name: "sensor without the collector's CA", collector: tlsArgs, ca: "other-ca.pem",
			sensorSays:    "the collector's certificate is not signed by --ca",
			collectorSays: "the client refused this collector's certificate"},
		{name: "no client certificate", collector: mtlsArgs, ca: "ca.pem",
			sensorSays:    "the collector requires a client certificate (mTLS): give --tls-cert and --tls-key",
			collectorSays: "no client certificate"},
		{name: "client certificate of another CA", collector: mtlsArgs, ca: "ca.pem", cert: "stranger",
			sensorSays:    "the collector requires a client certificate signed by its --tls-client-ca, and --tls-cert is not",
			collectorSays: "no client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCollector(t, tc.collector...)
			c.Start()
			cfg := testConfig(c.Addr(), "s")
			if tc.ca != "" {
				cfg.CAFile = filepath.Join(dir, tc.ca)
			}
			if tc.cert != "" {
				cfg.CertFile, cfg.KeyFile = filepath.Join(dir, tc.cert+".pem"), filepath.Join(dir, tc.cert+"-key.pem")
			}
			var log syncbuf.Buffer
			e := newExporterLogging(t, cfg, &log)
			e.Submit(nil, nil, nil)
			require.Eventually(t, func() bool { return strings.Contains(log.String(), tc.sensorSays) },
				10*time.Second, 20*time.Millisecond, "the sensor says %q", tc.sensorSays)
			assert.Equal(t, 1, strings.Count(log.String(), "cannot talk to the collector"), "said once:\n%s", log.String())
			assert.Zero(t, e.Stats().Connects)
			if tc.collectorSays == "" {
				assert.NotContains(t, c.Log(), "refused TLS handshake")
				return
			}
			require.Eventually(t, func() bool { return strings.Contains(c.Log(), tc.collectorSays) },
				5*time.Second, 20*time.Millisecond, "the collector logs %q", tc.collectorSays)
			line := testcollector.Line(c.Log(), "refused TLS handshake")
			assert.Contains(t, line, "peer=127.0.0.1:")
			time.Sleep(time.Second) // three more retries of the sensor
			assert.Equal(t, 1, strings.Count(c.Log(), "refused TLS handshake"), "one line per peer per 30 s:\n%s", c.Log())
		})
	}
}

// TestSplitSharesDeltasAndDNS: a Submit larger than half the message cap is cut
// into batches that each stay under it, the deltas and the DNS observations shared
// between them, none lost or repeated.
func TestSplitSharesDeltasAndDNS(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxMessageBytes = 64 << 10
	e := &Exporter{cfg: cfg}
	g := &gen{keys: 5000, perBatch: 1500}
	deltas := g.next()
	var dns []*netwatchv1.DnsObservation
	for i := range 3000 {
		dns = append(dns, &netwatchv1.DnsObservation{Name: strings.Repeat("n", 40) + ".example", Addr: []byte{10, 0, byte(i >> 8), byte(i)},
			Ttl: 60, Seen: timestamppb.Now()})
	}
	chunks := e.split(deltas, dns, nil)
	require.Greater(t, len(chunks), 2)
	var gotD, gotO int
	for _, c := range chunks {
		b := &netwatchv1.FlowBatch{Deltas: c.deltas, Dns: c.dns, Sequence: 1, CreatedAt: timestamppb.Now()}
		assert.LessOrEqual(t, proto.Size(b), cfg.MaxMessageBytes)
		gotD += len(c.deltas)
		gotO += len(c.dns)
	}
	assert.Equal(t, len(deltas), gotD)
	assert.Equal(t, len(dns), gotO)
	assert.Same(t, dns[len(dns)-1], chunks[len(chunks)-1].dns[len(chunks[len(chunks)-1].dns)-1])

	// Small enough: one batch with everything.
	one := e.split(deltas[:3], dns[:2], nil)
	require.Len(t, one, 1)
	assert.Len(t, one[0].deltas, 3)
	assert.Len(t, one[0].dns, 2)
}
