package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// startCollector runs a real collector on loopback ports chosen by the kernel.
func startCollector(t *testing.T, mutate func(*Config)) *Collector {
	t.Helper()
	return startCollectorLogging(t, mutate, slog.New(slog.DiscardHandler))
}

// startCollectorLogging is startCollector logging to log.
func startCollectorLogging(t *testing.T, mutate func(*Config), log *slog.Logger) *Collector {
	t.Helper()
	cfg := DefaultConfig()
	cfg.GRPCListen, cfg.HTTPListen, cfg.Ingest.DataDir = "127.0.0.1:0", "127.0.0.1:0", ""
	if mutate != nil {
		mutate(&cfg)
	}
	c, err := New(cfg, log)
	require.NoError(t, err)
	require.NoError(t, c.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, c.Stop(ctx))
	})
	return c
}

func getJSON(t *testing.T, url string, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	return fetchJSON(t, url, header, false)
}

// fetchJSON GETs url with header and decodes the JSON object it answers (numbers as
// json.Number when useNumber).
func fetchJSON(t *testing.T, url string, header http.Header, useNumber bool) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(body))
	if useNumber {
		dec.UseNumber()
	}
	var out map[string]any
	require.NoError(t, dec.Decode(&out), "body: %s", body)
	return resp.StatusCode, out, resp.Header
}

func TestHealthOverRESTAndGRPC(t *testing.T) {
	c := startCollector(t, nil)
	code, body, hdr := getJSON(t, "http://"+c.HTTPAddr()+"/api/v1/health", nil)
	require.Equal(t, http.StatusOK, code)
	for _, k := range []string{"status", "timestamp", "capture_active", "interface_status"} {
		assert.Contains(t, body, k, "seed field %s", k)
	}
	assert.Equal(t, false, body["capture_active"], "no sensor connected")
	ts, err := time.Parse(time.RFC3339Nano, body["timestamp"].(string))
	require.NoError(t, err)
	assert.WithinDuration(t, time.Now(), ts, time.Minute)
	assert.NotEmpty(t, hdr.Get("X-Request-Id"))

	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	h, err := netwatchv1.NewQueryServiceClient(conn).GetHealth(context.Background(), &netwatchv1.GetHealthRequest{})
	require.NoError(t, err)
	assert.Equal(t, body["status"], h.GetStatus())
}

func TestBadParametersAre400WithTheSeedErrorBody(t *testing.T) {
	c := startCollector(t, nil)
	base := "http://" + c.HTTPAddr()
	for _, tc := range []struct{ query, param string }{
		{"limit=abc", "limit"},
		{"limit=5000", "limit"},
		{"offset=-1", "offset"},
		{"src_ip=300.1.1.1", "src_ip"},
		{"dst_ip=10.0.0.0/33", "dst_ip"},
		{"protocol=bogus", "protocol"},
		{"port=70000", "port"},
		{"time_start=yesterday", "time_start"},
		{"sort_by=name", "sort_by"},
		{"sort_order=up", "sort_order"},
		{"status=open", "status"},
		{"q=src_ip", "q"},
		{"q=color:red", "q"},
	} {
		code, body, hdr := getJSON(t, base+"/api/v1/flows?"+tc.query, http.Header{"X-Request-Id": {"req-" + tc.param}})
		assert.Equal(t, http.StatusBadRequest, code, tc.query)
		e, ok := body["error"].(map[string]any)
		require.True(t, ok, "%s: error body %v", tc.query, body)
		assert.Equal(t, "INVALID_ARGUMENT", e["code"], tc.query)
		assert.Contains(t, e["message"], tc.param, tc.query)
		assert.Equal(t, map[string]any{"parameter": tc.param}, e["details"], tc.query)
		assert.Equal(t, "req-"+tc.param, e["requestId"], tc.query)
		assert.Equal(t, "req-"+tc.param, hdr.Get("X-Request-Id"))
		_, err := time.Parse(time.RFC3339Nano, e["timestamp"].(string))
		assert.NoError(t, err, tc.query)
	}
	code, body, _ := getJSON(t, base+"/api/v1/nope", nil)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "NOT_FOUND", body["error"].(map[string]any)["code"])
}

func TestFlowsFilterSortAndPaginate(t *testing.T) {
	c := startCollector(t, nil)
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	delta := func(src, dst string, sport, dport uint32, proto uint32, bytes uint64, at time.Duration) *netwatchv1.FlowDelta {
		return &netwatchv1.FlowDelta{
			Key: &netwatchv1.FlowKey{Protocol: proto, SrcAddr: netip.MustParseAddr(src).AsSlice(), SrcPort: sport,
				DstAddr: netip.MustParseAddr(dst).AsSlice(), DstPort: dport},
			SrcPackets: 2, SrcBytes: bytes, DstPackets: 1, DstBytes: 60,
			FirstSeen: timestamppb.New(t0.Add(at)), LastSeen: timestamppb.New(t0.Add(at + time.Second)),
			Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
		}
	}
	c.store.Apply("s1", []*netwatchv1.FlowDelta{
		delta("192.168.1.10", "10.0.0.1", 50000, 443, 6, 1000, 0),
		delta("192.168.1.11", "10.0.0.2", 50001, 53, 17, 100, time.Minute),
		delta("192.168.2.12", "10.0.0.1", 50002, 443, 6, 5000, 2*time.Minute),
		delta("2001:db8::1", "2001:db8::2", 50003, 443, 6, 70000, 3*time.Minute),
	}, time.Now())

	base := "http://" + c.HTTPAddr() + "/api/v1/flows"
	code, body, _ := getJSON(t, base+"?src_ip=192.168.1.0/24&sort_by=bytes&sort_order=asc", nil)
	require.Equal(t, http.StatusOK, code)
	flows := body["flows"].([]any)
	require.Len(t, flows, 2)
	assert.Equal(t, "192.168.1.11", flows[0].(map[string]any)["srcIP"])
	assert.Equal(t, float64(160), flows[0].(map[string]any)["bytes"], "bytes = srcBytes + dstBytes, a JSON number")
	assert.Equal(t, "udp", flows[0].(map[string]any)["protocolName"])
	assert.Equal(t, float64(1000), flows[0].(map[string]any)["duration"], "duration in ms")

	code, body, _ = getJSON(t, base+"?q=protocol:tcp%20port:443&limit=2&offset=1&sort_by=bytes", nil)
	require.Equal(t, http.StatusOK, code)
	page := body["pagination"].(map[string]any)
	assert.Equal(t, map[string]any{"total_count": float64(3), "has_more": false, "limit": float64(2), "offset": float64(1)}, page)
	flows = body["flows"].([]any)
	require.Len(t, flows, 2)
	assert.Equal(t, "192.168.2.12", flows[0].(map[string]any)["srcIP"], "second largest tcp/443 flow")

	code, body, _ = getJSON(t, base+"?dst_ip=2001:db8::/32&time_start=2026-11-25T12:02:30Z", nil)
	require.Equal(t, http.StatusOK, code)
	require.Len(t, body["flows"], 1)
}

func TestAuthToken(t *testing.T) {
	c := startCollector(t, func(cfg *Config) { cfg.AuthToken = "s3cret" })
	base := "http://" + c.HTTPAddr()
	code, body, hdr := getJSON(t, base+"/api/v1/flows", nil)
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, "UNAUTHENTICATED", body["error"].(map[string]any)["code"])
	assert.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer")
	code, _, _ = getJSON(t, base+"/api/v1/flows", http.Header{"Authorization": {"Bearer s3cret"}})
	assert.Equal(t, http.StatusOK, code)
	code, _, _ = getJSON(t, base+"/api/v1/health", nil)
	assert.Equal(t, http.StatusOK, code, "health stays open for load-balancer probes")
}

func TestConfigCheckNamesTheField(t *testing.T) {
	require.NoError(t, DefaultConfig().Check())
	for _, tc := range []struct {
		mutate func(*Config)
		field  string
	}{
		{func(c *Config) { c.HTTPListen = "0.0.0.0:8080" }, "HTTPListen: "},
		{func(c *Config) { c.HTTPListen = "nonsense" }, "HTTPListen: "},
		{func(c *Config) { c.GRPCListen = ":" }, "GRPCListen: "},
		{func(c *Config) { c.GRPCListen = "127.0.0.1:99999" }, "GRPCListen: port 99999 is out of range"},
		{func(c *Config) { c.Store.Retention = time.Second }, "Store.Retention: "},
		{func(c *Config) { c.Store.MaxFlows = 0 }, "Store.MaxFlows: "},
		{func(c *Config) { c.Ingest.SnapshotEvery = time.Millisecond }, "Ingest.SnapshotEvery: "},
		{func(c *Config) { c.Ingest.MaxSensors = 0 }, "Ingest.MaxSensors: "},
		{func(c *Config) { c.Ingest.HelloTimeout = 10 * time.Minute }, "Ingest.HelloTimeout: 10m0s is outside [1s, 5m]"},
		{func(c *Config) { c.CORSOrigins = []string{"example.com"} }, "CORSOrigins: "},
		{func(c *Config) { c.Live.MaxClients = 0 }, "Live.MaxClients: "},
		{func(c *Config) { c.Live.Alerts.CPUPercent = -1 }, "Live.Alerts.CPUPercent: "},
	} {
		cfg := DefaultConfig()
		tc.mutate(&cfg)
		err := cfg.Check()
		require.Error(t, err, tc.field)
		assert.Contains(t, err.Error(), tc.field)
	}
	cfg := DefaultConfig()
	cfg.HTTPListen, cfg.AuthToken = "0.0.0.0:8080", "tok"
	assert.NoError(t, cfg.Check(), "a token allows a public listen address")
}

// TestNestedConfigsReachTheirComponents: the store and the ingest service run with
// the configurations app.Config holds for them, and the ingest service takes the
// retention of the store and the version of the collector, not its own fields.
func TestNestedConfigsReachTheirComponents(t *testing.T) {
	c := startCollector(t, func(cfg *Config) {
		cfg.Store.Retention, cfg.Store.MaxFlows = 5*time.Minute, 1234
		cfg.Ingest.MaxSensors = 1
		cfg.Ingest.Retention, cfg.Ingest.Version = 2*time.Hour, "not-used"
		cfg.Version = "v-nested"
	})
	assert.Equal(t, 5*time.Minute, c.store.Config().Retention)
	assert.Equal(t, 1234, c.store.Config().MaxFlows)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := dialGRPC(t, c.GRPCAddr())
	stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
		SensorId: "s1", Hostname: "h-s1", Interface: "eth0", Version: "test", BootId: "boot-s1",
		ExportIntervalMs: 1000, StartedAt: timestamppb.Now(),
	}}}))
	resp, err := stream.Recv()
	require.NoError(t, err)
	assert.Equal(t, "v-nested", resp.GetWelcome().GetCollectorVersion(), "the welcome carries Config.Version")

	err = sensorHello(ctx, conn, "s2", "")
	require.Error(t, err, "Ingest.MaxSensors is 1")
	assert.Contains(t, err.Error(), "maximum of 1 sensors")
	assert.Contains(t, err.Error(), "in the 5m0s retention window", "the ingest service keeps sensors for the store's retention")
}
