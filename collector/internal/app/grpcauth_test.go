package app

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/api"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// queryCall is one gRPC query method and its REST route.
type queryCall struct {
	name, path string
	call       func(ctx context.Context, q netwatchv1.QueryServiceClient) error
}

var queryCalls = []queryCall{
	{"ListFlows", "/api/v1/flows", func(ctx context.Context, q netwatchv1.QueryServiceClient) error {
		_, err := q.ListFlows(ctx, &netwatchv1.ListFlowsRequest{})
		return err
	}},
	{"GetMetrics", "/api/v1/metrics", func(ctx context.Context, q netwatchv1.QueryServiceClient) error {
		_, err := q.GetMetrics(ctx, &netwatchv1.GetMetricsRequest{})
		return err
	}},
	{"GetMetricsHistory", "/api/v1/metrics/history", func(ctx context.Context, q netwatchv1.QueryServiceClient) error {
		_, err := q.GetMetricsHistory(ctx, &netwatchv1.GetMetricsHistoryRequest{})
		return err
	}},
	{"ListTopTalkers", "/api/v1/top-talkers", func(ctx context.Context, q netwatchv1.QueryServiceClient) error {
		_, err := q.ListTopTalkers(ctx, &netwatchv1.ListTopTalkersRequest{})
		return err
	}},
	{"ListSensors", "/api/v1/sensors", func(ctx context.Context, q netwatchv1.QueryServiceClient) error {
		_, err := q.ListSensors(ctx, &netwatchv1.ListSensorsRequest{})
		return err
	}},
}

func dialGRPC(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// withAuth is ctx carrying "authorization: auth" (none when auth is empty).
func withAuth(ctx context.Context, auth string) context.Context {
	if auth == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", auth)
}

// restCode is the status of GET base+path with the Authorization header auth.
func restCode(t *testing.T, base, path, auth string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// reflectionList lists the services over server reflection; the error is the
// stream's.
func reflectionList(ctx context.Context, conn *grpc.ClientConn) ([]string, error) {
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.CloseSend()
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{ListServices: ""},
	}); err != nil {
		_, err = stream.Recv()
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, nil
}

// sensorHello opens an Ingest stream as sensor id (with the sensor token tok, if
// any) and returns the collector's answer to the hello.
func sensorHello(ctx context.Context, conn *grpc.ClientConn, id, auth string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := openSensor(ctx, conn, id, auth)
	return err
}

// openSensor opens an Ingest stream as sensor id, boot "boot-"+id (with the
// sensor token auth, if any), says hello and returns the stream once welcomed, or
// the collector's refusal. The stream lives as long as ctx.
func openSensor(ctx context.Context, conn *grpc.ClientConn, id, auth string) (netwatchv1.SensorService_IngestClient, error) {
	stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(withAuth(ctx, auth))
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
		SensorId: id, Hostname: "h-" + id, Interface: "eth0", Version: "test", BootId: "boot-" + id,
		ExportIntervalMs: 1000, StartedAt: timestamppb.Now(),
	}}}); err != nil {
		_, err = stream.Recv()
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	if resp.GetWelcome() == nil {
		return nil, status.Error(codes.Internal, "no welcome")
	}
	return stream, nil
}

// sendOneFlow sends batch seq holding one TCP flow src:40000 -> dst:443 of packets
// and bytes, its last packet now, and requires its acknowledgement.
func sendOneFlow(t *testing.T, stream netwatchv1.SensorService_IngestClient, seq uint64, src, dst string, packets, bytes uint64) {
	t.Helper()
	now := time.Now()
	require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: &netwatchv1.FlowBatch{
		Sequence: seq, CreatedAt: timestamppb.New(now), Deltas: []*netwatchv1.FlowDelta{{
			Key: &netwatchv1.FlowKey{Protocol: 6, SrcAddr: netip.MustParseAddr(src).AsSlice(), SrcPort: 40000,
				DstAddr: netip.MustParseAddr(dst).AsSlice(), DstPort: 443},
			SrcPackets: packets, SrcBytes: bytes, FirstSeen: timestamppb.New(now.Add(-time.Second)), LastSeen: timestamppb.New(now),
			SrcTcpFlags: 0x02, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
		}},
	}}}))
	resp, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, seq, resp.GetAck().GetSequence())
}

// TestGRPCQueriesNeedTheAPIToken: with --api-token, every query method over gRPC
// answers as its REST route does: no token or a wrong one is refused
// (UNAUTHENTICATED, 401), the right one answers; health is open on both. Server
// reflection needs the token too. The SensorService keeps its own authentication:
// a sensor needs no API token, and its sensor token is no API token.
func TestGRPCQueriesNeedTheAPIToken(t *testing.T) {
	dir := t.TempDir()
	tokFile := dir + "/sensor-tokens"
	require.NoError(t, os.WriteFile(tokFile, []byte("s1 sensor-secret\n"), 0o600))
	c := startCollector(t, func(cfg *Config) { cfg.AuthToken, cfg.SensorTokenFile = "s3cret", tokFile })
	base := "http://" + c.HTTPAddr()
	conn := dialGRPC(t, c.GRPCAddr())
	q := netwatchv1.NewQueryServiceClient(conn)
	ctx := context.Background()
	for _, qc := range queryCalls {
		for _, auth := range []string{"", "Bearer wrong", "s3cret", "Bearer sensor-secret", "bearer s3cret"} {
			err := qc.call(withAuth(ctx, auth), q)
			assert.Equal(t, codes.Unauthenticated, status.Code(err), "%s with %q: %v", qc.name, auth, err)
			assert.Equal(t, http.StatusUnauthorized, restCode(t, base, qc.path, auth), "%s with %q", qc.path, auth)
		}
		err := qc.call(withAuth(ctx, "Bearer s3cret"), q)
		assert.NoError(t, err, qc.name)
		assert.Equal(t, http.StatusOK, restCode(t, base, qc.path, "Bearer s3cret"), qc.path)
	}
	_, err := q.GetHealth(ctx, &netwatchv1.GetHealthRequest{})
	assert.NoError(t, err, "health stays open, as /api/v1/health")
	assert.Equal(t, http.StatusOK, restCode(t, base, "/api/v1/health", ""))

	_, err = reflectionList(ctx, conn)
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "reflection without the token: %v", err)
	names, err := reflectionList(withAuth(ctx, "Bearer s3cret"), conn)
	require.NoError(t, err)
	assert.Subset(t, names, []string{"netwatch.v1.QueryService", "netwatch.v1.SensorService"})

	assert.NoError(t, sensorHello(ctx, conn, "s1", "Bearer sensor-secret"), "the sensor's own token, no API token")
	err = sensorHello(ctx, conn, "s2", "Bearer s3cret")
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "the API token is no sensor token: %v", err)
}

// TestGRPCQueriesShareTheRESTRateLimit: one allowance per client for both APIs;
// beyond it gRPC answers RESOURCE_EXHAUSTED and REST 429, and sensors are not
// limited.
func TestGRPCQueriesShareTheRESTRateLimit(t *testing.T) {
	c := startCollector(t, func(cfg *Config) { cfg.RateLimit = api.RateLimit{Remote: 100, Local: 6} })
	base := "http://" + c.HTTPAddr()
	conn := dialGRPC(t, c.GRPCAddr())
	q := netwatchv1.NewQueryServiceClient(conn)
	ctx := context.Background()
	for i := range 3 {
		require.NoError(t, queryCalls[i].call(ctx, q), "gRPC call %d of the burst", i+1)
		require.Equal(t, http.StatusOK, restCode(t, base, queryCalls[i].path, ""), "REST call %d of the burst", i+1)
	}
	err := queryCalls[4].call(ctx, q)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "%v", err)
	assert.Contains(t, status.Convert(err).Message(), "retry in 10s", "6 per minute: one every 10 s")
	assert.Equal(t, http.StatusTooManyRequests, restCode(t, base, "/api/v1/sensors", ""))
	_, err = q.GetHealth(ctx, &netwatchv1.GetHealthRequest{})
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "health is limited, as /api/v1/health")
	_, err = reflectionList(ctx, conn)
	assert.Equal(t, codes.ResourceExhausted, status.Code(err), "reflection is limited: %v", err)
	assert.NoError(t, sensorHello(ctx, conn, "s1", ""), "sensors are not rate limited")
	assert.Equal(t, uint64(3), c.guard.limited.Load(), "counted for netwatch_collector_grpc_rate_limited_total")
}
