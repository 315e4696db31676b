package app

import (
	"context"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// TestRejectedBatchShowsInTheSensorsRowAndMetrics: a batch the collector refuses as
// invalid is counted on the sensor's row of /api/v1/sensors (with the reason) and in
// /metrics, per sensor and in total; the collector goes on serving.
func TestRejectedBatchShowsInTheSensorsRowAndMetrics(t *testing.T) {
	c := startCollector(t, nil)
	conn, err := grpc.NewClient(c.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
		SensorId: "bad-one", BootId: "b1", Hostname: "h", ExportIntervalMs: 3600_000}}}))
	_, err = stream.Recv()
	require.NoError(t, err)
	now := time.Now()
	d := &netwatchv1.FlowDelta{
		Key:        &netwatchv1.FlowKey{Protocol: 6, SrcAddr: netip.MustParseAddr("10.0.0.1").AsSlice(), DstAddr: netip.MustParseAddr("10.0.0.2").AsSlice()},
		SrcPackets: math.MaxUint64, SrcBytes: math.MaxUint64, FirstSeen: timestamppb.New(now), LastSeen: timestamppb.New(now),
	}
	require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: &netwatchv1.FlowBatch{
		Sequence: 1, CreatedAt: timestamppb.New(now), Deltas: []*netwatchv1.FlowDelta{d}}}}))
	_, err = stream.Recv()
	require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)

	base := "http://" + c.HTTPAddr()
	code, body, _ := getJSON(t, base+"/api/v1/sensors", nil)
	require.Equal(t, 200, code)
	sensors := body["sensors"].([]any)
	require.Len(t, sensors, 1)
	row := sensors[0].(map[string]any)
	assert.Equal(t, float64(1), row["rejectedBatches"], "%v", row)
	assert.Equal(t, "batch 1: deltas[0].src_packets: 18446744073709551615 is not below 2^40", row["lastRejection"])
	assert.NotEmpty(t, row["lastRejectionAt"])
	text := metricsText(t, base, "")
	assert.Contains(t, text, "\nnetwatch_collector_sensor_rejected_batches_total{sensor=\"bad-one\"} 1\n")
	assert.Contains(t, text, "\nnetwatch_collector_batches_rejected_total 1\n")
	assert.Contains(t, text, "\nnetwatch_collector_replay_batches_skipped_total 0\n")
	assert.False(t, strings.Contains(text, "deltas_applied_total 1"), "nothing of it applied")
}
