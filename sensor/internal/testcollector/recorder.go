package testcollector

import (
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Recorder is a real SensorService on loopback gRPC that welcomes every sensor
// and keeps every batch it is sent, as sent, once per sequence number (a resent
// batch replaces the first copy). With ack it acknowledges each batch; without,
// it is a collector that cannot make anything durable.
type Recorder struct {
	netwatchv1.UnimplementedSensorServiceServer
	// Addr is the host:port sensors connect to.
	Addr string
	ack  bool

	mu      sync.Mutex
	batches []*netwatchv1.FlowBatch
	index   map[uint64]int // sequence -> position in batches
}

// StartRecorder serves a Recorder until the test ends.
func StartRecorder(t testing.TB, ack bool) *Recorder {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &Recorder{Addr: lis.Addr().String(), ack: ack, index: map[uint64]int{}}
	srv := grpc.NewServer()
	netwatchv1.RegisterSensorServiceServer(srv, r)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return r
}

// Ingest implements SensorService.
func (r *Recorder) Ingest(st grpc.BidiStreamingServer[netwatchv1.IngestRequest, netwatchv1.IngestResponse]) error {
	if _, err := st.Recv(); err != nil {
		return err
	}
	if err := st.Send(&netwatchv1.IngestResponse{Message: &netwatchv1.IngestResponse_Welcome{Welcome: &netwatchv1.IngestWelcome{}}}); err != nil {
		return err
	}
	for {
		m, err := st.Recv()
		if err != nil {
			return err
		}
		b := m.GetBatch()
		if b == nil {
			continue
		}
		r.mu.Lock()
		if i, ok := r.index[b.GetSequence()]; ok {
			r.batches[i] = b
		} else {
			r.index[b.GetSequence()] = len(r.batches)
			r.batches = append(r.batches, b)
		}
		r.mu.Unlock()
		if r.ack {
			if err := st.Send(&netwatchv1.IngestResponse{Message: &netwatchv1.IngestResponse_Ack{Ack: &netwatchv1.BatchAck{Sequence: b.GetSequence()}}}); err != nil {
				return err
			}
		}
	}
}

// Batches returns the batches received so far, in the order first received.
func (r *Recorder) Batches() []*netwatchv1.FlowBatch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*netwatchv1.FlowBatch(nil), r.batches...)
}
