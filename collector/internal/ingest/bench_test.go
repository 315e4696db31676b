package ingest

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// BenchmarkIngest measures collector ingest over loopback gRPC: 4 sensors stream
// batches of 1000 flow deltas (as sensors do, without waiting for each ack) and
// the collector logs, fsyncs (group commit), applies and acknowledges them.
//
//	cd collector && go test -run '^$' -bench Ingest -benchtime 2000x ./internal/ingest/
func BenchmarkIngest(b *testing.B) {
	const sensors, per = 4, 1000
	for _, persist := range []bool{true, false} {
		for _, compress := range []bool{true, false} {
			b.Run(fmt.Sprintf("persist=%v/gzip=%v", persist, compress), func(b *testing.B) {
				dir := ""
				if persist {
					dir = b.TempDir()
				}
				c := startCollector(b, dir, nil)
				opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
				if compress {
					opts = append(opts, grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name)))
				}
				batches := make([]*netwatchv1.FlowBatch, 64)
				for i := range batches {
					batches[i] = batch(uint64(i+1), per)
				}
				n := b.N/sensors + 1
				b.ResetTimer()
				start := time.Now()
				errc := make(chan error, sensors)
				for s := range sensors {
					go func() { errc <- stream(c.addr, fmt.Sprintf("bench-%d", s), n, batches, opts) }()
				}
				for range sensors {
					require.NoError(b, <-errc)
				}
				el := time.Since(start)
				b.StopTimer()
				total := float64(n * sensors * per)
				b.ReportMetric(total/el.Seconds(), "deltas/s")
				if compress {
					raw := marshal(batches[0])
					var z bytes.Buffer
					zw := stdgzip.NewWriter(&z)
					zw.Write(raw)
					zw.Close()
					b.ReportMetric(float64(len(raw))/float64(z.Len()), "gzip-ratio")
				}
				if persist {
					st := c.svc.WALStats()
					b.ReportMetric(float64(st.Records)/float64(st.Groups), "batches/fsync")
				}
			})
		}
	}
}

// stream is one sensor: hello, then n batches numbered 1..n (the contents of
// batches in turn), each acknowledged in order.
func stream(addr, id string, n int, batches []*netwatchv1.FlowBatch, opts []grpc.DialOption) error {
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := netwatchv1.NewSensorServiceClient(conn).Ingest(context.Background())
	if err != nil {
		return err
	}
	if err := st.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{SensorId: id, BootId: "b"}}}); err != nil {
		return err
	}
	if _, err := st.Recv(); err != nil {
		return err
	}
	go func() {
		for seq := 1; seq <= n; seq++ {
			b := batches[(seq-1)%len(batches)]
			m := &netwatchv1.FlowBatch{Sequence: uint64(seq), CreatedAt: b.CreatedAt, Deltas: b.Deltas, Stats: b.Stats}
			if st.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: m}}) != nil {
				return
			}
		}
	}()
	for seq := 1; seq <= n; seq++ {
		r, err := st.Recv()
		if err != nil {
			return err
		}
		if r.GetAck().GetSequence() != uint64(seq) {
			return fmt.Errorf("%s: ack %d, want %d", id, r.GetAck().GetSequence(), seq)
		}
	}
	return st.CloseSend()
}
