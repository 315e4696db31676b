package app

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"netwatch.dev/collector/internal/api"
)

func TestTokenOnEveryAPICallButHealth(t *testing.T) {
	c := startCollector(t, func(cfg *Config) { cfg.AuthToken = "s3cret" })
	base := "http://" + c.HTTPAddr()
	for _, path := range []string{"/api/v1/flows", "/api/v1/top-talkers", "/api/v1/metrics", "/api/v1/sensors", "/api/v1/protocols", "/api/v1/openapi.json", "/api/v1/flows?format=csv", "/metrics"} {
		for _, auth := range []string{"", "Bearer wrong", "s3cret", "Basic czNjcmV0"} {
			req, _ := http.NewRequest(http.MethodGet, base+path, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "%s with %q", path, auth)
		}
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
	code, _, _ := get(t, base+"/api/v1/health", nil)
	assert.Equal(t, http.StatusOK, code)
}

func TestRateLimitBurstIs429WithRetryAfter(t *testing.T) {
	c := startCollector(t, func(cfg *Config) { cfg.RateLimit = api.RateLimit{Remote: 100, Local: 5} })
	base := "http://" + c.HTTPAddr()
	for i := range 5 {
		code, _, _ := get(t, base+"/api/v1/health", nil)
		require.Equal(t, http.StatusOK, code, "request %d of the burst", i+1)
	}
	code, body, hdr := get(t, base+"/api/v1/flows", nil)
	assert.Equal(t, http.StatusTooManyRequests, code)
	assert.Equal(t, "RESOURCE_EXHAUSTED", body["error"].(map[string]any)["code"])
	assert.NotEmpty(t, body["error"].(map[string]any)["requestId"])
	assert.Equal(t, "12", hdr.Get("Retry-After"), "5 per minute: one token every 12 s")
	resp, err := http.Get(base + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "the dashboard's files are not rate limited")
}

func metricsText(t *testing.T, base, token string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/plain; version=0.0.4; charset=utf-8", resp.Header.Get("Content-Type"))
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

func TestPrometheusMetrics(t *testing.T) {
	c, flows := loadOracle(t, nil)
	base := "http://" + c.HTTPAddr()
	get(t, base+"/api/v1/flows?protocol=tcp", nil)
	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	text := metricsText(t, base, "")
	hosts := map[netip.Addr]bool{}
	for _, f := range flows {
		hosts[f.Src.Unmap()], hosts[f.Dst.Unmap()] = true, true
	}
	for _, want := range []string{
		"netwatch_collector_store_hosts " + itoa(len(hosts)) + "\n",
		"netwatch_collector_deltas_applied_total " + itoa(len(flows)) + "\n",
		"netwatch_collector_store_flows " + itoa(len(flows)) + "\n",
		"netwatch_collector_store_max_flows 10000000\n",
		"netwatch_collector_store_evictions_total 0\n",
		"# TYPE netwatch_collector_query_duration_seconds histogram\n",
		`netwatch_collector_query_duration_seconds_count{api="rest",endpoint="/api/v1/flows"} 1` + "\n",
		`netwatch_collector_query_duration_seconds_count{api="rest",endpoint="/api/v1/top-talkers"} 0` + "\n",
		`netwatch_collector_query_duration_seconds_bucket{api="grpc",endpoint="ListFlows",le="+Inf"} 0` + "\n",
		"# TYPE netwatch_collector_sensor_lag_seconds gauge\n",
		"# TYPE netwatch_collector_sensor_kernel_drops_total counter\n",
		"process_resident_memory_bytes ",
	} {
		assert.Contains(t, text, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestSecurityHeadersAndSameOriginCORS(t *testing.T) {
	c := startCollector(t, nil)
	base := "http://" + c.HTTPAddr()
	for _, path := range []string{"/", "/api/v1/health", "/api/v1/nope", "/metrics"} {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Origin", "https://evil.example")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		assert.Contains(t, csp, "default-src 'self'", path)
		assert.Contains(t, csp, "frame-ancestors 'none'", path)
		if path == "/" {
			// The dashboard's handler (webui) sets its own, stricter policy: its
			// files need no inline code; it must still allow its same-origin WebSocket.
			assert.Regexp(t, `connect-src 'self'( ws:\S*)? wss?:`, csp)
		} else {
			assert.Contains(t, csp, "script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'", path)
			assert.Contains(t, csp, "connect-src 'self' ws://"+c.HTTPAddr()+" wss://"+c.HTTPAddr(), path)
		}
		assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"), path)
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"), path)
		assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"), path)
		assert.Empty(t, resp.Header.Get("Access-Control-Allow-Origin"), "same-origin by default: %s", path)
	}

	c2 := startCollector(t, func(cfg *Config) { cfg.CORSOrigins = []string{"http://dev.local:3000"} })
	req, _ := http.NewRequest(http.MethodOptions, "http://"+c2.HTTPAddr()+"/api/v1/flows", nil)
	req.Header.Set("Origin", "http://dev.local:3000")
	req.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	assert.Equal(t, "http://dev.local:3000", resp.Header.Get("Access-Control-Allow-Origin"))
	assert.Contains(t, resp.Header.Get("Access-Control-Allow-Headers"), "Authorization")
	code, _, hdr := get(t, "http://"+c2.HTTPAddr()+"/api/v1/health", http.Header{"Origin": {"http://other:3000"}})
	assert.Equal(t, http.StatusOK, code)
	assert.Empty(t, hdr.Get("Access-Control-Allow-Origin"), "an origin not listed")
}

func TestGRPCReflectionListsTheServices(t *testing.T) {
	c := startCollector(t, nil)
	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""},
	}))
	resp, err := stream.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	assert.Subset(t, names, []string{"netwatch.v1.QueryService", "netwatch.v1.SensorService"})
	require.NoError(t, stream.CloseSend())
}

func TestListeningBeyondLoopbackNeedsATokenOrAnOverride(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HTTPListen = "0.0.0.0:8080"
	err := cfg.Check()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--api-token")
	assert.Contains(t, err.Error(), "--allow-unauthenticated")
	cfg.AllowUnauthenticated = true
	assert.NoError(t, cfg.Check())
	cfg.AllowUnauthenticated, cfg.AuthToken = false, "tok"
	assert.NoError(t, cfg.Check())
	cfg.RateLimit.Remote = -1
	assert.ErrorContains(t, cfg.Check(), "RateLimit.Remote: ")
}
