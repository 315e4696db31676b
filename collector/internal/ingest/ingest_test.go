package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// collector is a real ingest service behind a real gRPC server on loopback.
type collector struct {
	svc   *Service
	store *store.Store
	srv   *grpc.Server
	addr  string
}

func startCollector(t testing.TB, dir string, mutate func(*Config), clock ...func() time.Time) *collector {
	t.Helper()
	now := time.Now
	if len(clock) > 0 {
		now = clock[0]
	}
	cfg := DefaultConfig()
	cfg.DataDir = dir
	if mutate != nil {
		mutate(&cfg)
	}
	st := store.New(store.DefaultConfig())
	svc, err := New(cfg, st, slog.New(slog.DiscardHandler), now)
	require.NoError(t, err)
	require.NoError(t, svc.Start())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer(ServerOptions(16 << 20)...)
	netwatchv1.RegisterSensorServiceServer(srv, svc)
	go srv.Serve(lis)
	c := &collector{svc: svc, store: st, srv: srv, addr: lis.Addr().String()}
	t.Cleanup(c.stop)
	return c
}

// stop is a graceful stop. crash drops the connections at once, without ending the
// streams first; the log's committer and snapshotter are then stopped only because
// this process goes on and must not touch the directory the next collector opens
// (a real kill -9 is tested with the collector binary in sensor/internal/export).
func (c *collector) stop()  { c.svc.EndStreams(); c.srv.Stop(); c.svc.Stop() }
func (c *collector) crash() { c.srv.Stop(); c.svc.Stop() }

// totals sums the store.
func (c *collector) totals() (flows int, packets, bytes uint64) {
	c.store.Scan(func(*store.Flow) bool { return true }, func(f store.Flow) {
		flows++
		packets += f.SrcPackets + f.DstPackets
		bytes += f.SrcBytes + f.DstBytes
	})
	return
}

type sensorStream struct {
	t      *testing.T
	conn   *grpc.ClientConn
	stream netwatchv1.SensorService_IngestClient
}

func dial(t *testing.T, addr, sensorID, bootID string, md ...string) (*sensorStream, *netwatchv1.IngestWelcome, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	ctx := context.Background()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
		SensorId: sensorID, BootId: bootID, Hostname: "h-" + sensorID, Interface: "eth0", Version: "test", ExportIntervalMs: 1000,
	}}}))
	resp, err := stream.Recv()
	if err != nil {
		return nil, nil, err
	}
	return &sensorStream{t: t, conn: conn, stream: stream}, resp.GetWelcome(), nil
}

// delta is flow i of a test: packets i+1, bytes 100*(i+1).
func delta(i int) *netwatchv1.FlowDelta {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: 6, SrcAddr: netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).AsSlice(), SrcPort: 40000,
			DstAddr: netip.MustParseAddr("192.0.2.1").AsSlice(), DstPort: 443},
		SrcPackets: uint64(i + 1), SrcBytes: uint64(100 * (i + 1)),
		FirstSeen: timestamppb.New(t0), LastSeen: timestamppb.New(t0.Add(time.Second)),
		Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
	}
}

// batch seq carries flows (seq-1)*per .. seq*per-1.
func batch(seq uint64, per int) *netwatchv1.FlowBatch {
	b := &netwatchv1.FlowBatch{Sequence: seq, CreatedAt: timestamppb.Now(), Stats: &netwatchv1.SensorStats{KernelDrops: 7}}
	for i := range per {
		b.Deltas = append(b.Deltas, delta(int(seq-1)*per+i))
	}
	return b
}

func (s *sensorStream) send(b *netwatchv1.FlowBatch) {
	require.NoError(s.t, s.stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: b}}))
}

func (s *sensorStream) ack() uint64 {
	resp, err := s.stream.Recv()
	require.NoError(s.t, err)
	require.NotNil(s.t, resp.GetAck())
	return resp.GetAck().GetSequence()
}

// want is the store totals after batches 1..n of per flows each.
func want(n, per int) (flows int, packets, bytes uint64) {
	for i := range n * per {
		packets += uint64(i + 1)
		bytes += uint64(100 * (i + 1))
	}
	return n * per, packets, bytes
}

func requireTotals(t *testing.T, c *collector, n, per int, msg string) {
	t.Helper()
	wf, wp, wb := want(n, per)
	f, p, b := c.totals()
	require.Equal(t, []uint64{uint64(wf), wp, wb}, []uint64{uint64(f), p, b}, "%s: flows, packets, bytes", msg)
}

func TestBatchesAreAppliedOnceAndResentOnesReacked(t *testing.T) {
	for _, dir := range []string{"", "disk"} {
		t.Run(fmt.Sprintf("dir=%q", dir), func(t *testing.T) {
			if dir != "" {
				dir = t.TempDir()
			}
			c := startCollector(t, dir, nil)
			s, w, err := dial(t, c.addr, "s1", "boot-a")
			require.NoError(t, err)
			assert.Equal(t, uint64(0), w.GetAppliedThrough())
			for seq := uint64(1); seq <= 5; seq++ {
				s.send(batch(seq, 3))
				require.Equal(t, seq, s.ack())
			}
			s.send(batch(3, 3)) // a resend: acked again, not applied
			require.Equal(t, uint64(3), s.ack())
			requireTotals(t, c, 5, 3, "after resend")

			// The same boot reconnecting (old stream not yet noticed dead) replaces it.
			s2, w, err := dial(t, c.addr, "s1", "boot-a")
			require.NoError(t, err)
			assert.Equal(t, uint64(5), w.GetAppliedThrough())
			_, err = s.stream.Recv()
			assert.Equal(t, codes.Aborted, status.Code(err), "old stream ended: %v", err)
			s2.send(batch(5, 3))
			require.Equal(t, uint64(5), s2.ack())
			s2.send(batch(6, 3))
			require.Equal(t, uint64(6), s2.ack())
			requireTotals(t, c, 6, 3, "after resume")

			sensors := c.svc.Sensors()
			require.Len(t, sensors, 1)
			assert.Equal(t, "s1", sensors[0].GetSensorId())
			assert.Equal(t, "h-s1", sensors[0].GetHostname())
			assert.True(t, sensors[0].GetConnected())
			assert.False(t, sensors[0].GetStale())
			assert.Equal(t, uint64(6), sensors[0].GetBatches())
			assert.Equal(t, uint64(7), sensors[0].GetKernelDrops())
		})
	}
}

func TestSecondSensorWithTheSameIDIsRefused(t *testing.T) {
	c := startCollector(t, "", nil)
	_, _, err := dial(t, c.addr, "dup", "boot-a")
	require.NoError(t, err)
	_, _, err = dial(t, c.addr, "dup", "boot-b")
	require.Error(t, err)
	assert.Equal(t, codes.AlreadyExists, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), `sensor id "dup" is already connected`)
	_, _, err = dial(t, c.addr, "other", "boot-b")
	assert.NoError(t, err, "another id is fine")
}

func TestTokens(t *testing.T) {
	c := startCollector(t, "", func(cfg *Config) { cfg.Tokens = map[string]string{"s1": "tok1"} })
	_, _, err := dial(t, c.addr, "s1", "b")
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "no token")
	_, _, err = dial(t, c.addr, "s1", "b", "authorization", "Bearer nope")
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "wrong token")
	_, _, err = dial(t, c.addr, "s2", "b", "authorization", "Bearer tok1")
	assert.Equal(t, codes.Unauthenticated, status.Code(err), "token of another sensor")
	_, _, err = dial(t, c.addr, "s1", "b", "authorization", "Bearer tok1")
	assert.NoError(t, err)
}

func TestCrashKeepsEveryAcknowledgedBatchAndTornTailIsSkipped(t *testing.T) {
	dir := t.TempDir()
	c := startCollector(t, dir, nil)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	for seq := uint64(1); seq <= 20; seq++ {
		s.send(batch(seq, 5))
		require.Equal(t, seq, s.ack())
	}
	c.crash() // no graceful stop: the log is neither flushed nor closed

	// A record cut short by the crash at the end of the last segment.
	segs, err := listIndexes(dir, "wal-", ".log")
	require.NoError(t, err)
	last := filepath.Join(dir, segName(segs[len(segs)-1]))
	before, err := os.Stat(last)
	require.NoError(t, err)
	torn := (&record{kind: recBatch, seq: 21, sensorID: "s1", bootID: "boot-a", body: marshal(batch(21, 5))}).frame()
	f, err := os.OpenFile(last, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.Write(torn[:len(torn)/2])
	require.NoError(t, err)
	require.NoError(t, f.Close())

	c2 := startCollector(t, dir, nil)
	requireTotals(t, c2, 20, 5, "after crash and restart")
	after, err := os.Stat(last)
	require.NoError(t, err)
	assert.Equal(t, before.Size(), after.Size(), "torn tail truncated")
	s2, w, err := dial(t, c2.addr, "s1", "boot-a")
	require.NoError(t, err)
	assert.Equal(t, uint64(20), w.GetAppliedThrough())
	s2.send(batch(20, 5)) // resent: acked, not applied
	require.Equal(t, uint64(20), s2.ack())
	s2.send(batch(21, 5))
	require.Equal(t, uint64(21), s2.ack())
	requireTotals(t, c2, 21, 5, "after resend")

	// A corrupt byte in the middle of a record (not a torn tail) is skipped too.
	c2.stop()
	segs, _ = listIndexes(dir, "wal-", ".log")
	b, err := os.ReadFile(filepath.Join(dir, segName(segs[len(segs)-1])))
	require.NoError(t, err)
	require.NotEmpty(t, b)
	b[len(b)-3] ^= 0xff
	require.NoError(t, os.WriteFile(filepath.Join(dir, segName(segs[len(segs)-1])), b, 0o640))
	c3 := startCollector(t, dir, nil)
	requireTotals(t, c3, 20, 5, "the corrupt last batch is dropped, never fatal")
	// A whole record with a bad checksum is not what a write cut short leaves: it
	// was acknowledged, and its loss is reported.
	p := c3.svc.Problems()
	require.Len(t, p, 1)
	assert.True(t, p[0].Incomplete)
	assert.Contains(t, p[0].Reason, segName(segs[len(segs)-1])+" damaged: 1 records")
}

func TestSnapshotsKeepTheLogBoundedAndReplayExactly(t *testing.T) {
	dir := t.TempDir()
	small := func(cfg *Config) { cfg.SegmentBytes = 4 << 10 }
	c := startCollector(t, dir, small)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	const n, per = 200, 4
	for seq := uint64(1); seq <= n; seq++ {
		b := batch(seq, per)
		// Flows that go on across batches: snapshots must carry their totals.
		b.Deltas = append(b.Deltas, delta(100000))
		s.send(b)
		require.Equal(t, seq, s.ack())
	}
	require.Eventually(t, func() bool {
		segs, _ := listIndexes(dir, "wal-", ".log")
		snaps, _ := listIndexes(dir, "snap-", ".snap")
		return len(segs) <= 2 && len(snaps) == 1
	}, 5*time.Second, 10*time.Millisecond, "old segments pruned after a snapshot")
	f1, p1, b1 := c.totals()
	c.crash()
	c2 := startCollector(t, dir, small)
	f2, p2, b2 := c2.totals()
	assert.Equal(t, []uint64{uint64(f1), p1, b1}, []uint64{uint64(f2), p2, b2})
	_, w, err := dial(t, c2.addr, "s1", "boot-a")
	require.NoError(t, err)
	assert.Equal(t, uint64(n), w.GetAppliedThrough(), "dedup marks come back from the snapshot")
}

// streamAtOnce runs sensors streams (ids s00, s01...) to c at the same time, each
// sending batches 1..batches of per deltas (the same keys in every sensor) as fast
// as acknowledgements allow, and fails t if any stream fails.
func streamAtOnce(t *testing.T, c *collector, sensors, batches, per int) {
	t.Helper()
	bs := make([]*netwatchv1.FlowBatch, batches)
	for i := range bs {
		bs[i] = batch(uint64(i+1), per)
	}
	errc := make(chan error, sensors)
	for i := range sensors {
		go func() {
			errc <- stream(c.addr, fmt.Sprintf("s%02d", i), batches, bs, []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())})
		}()
	}
	for range sensors {
		require.NoError(t, <-errc)
	}
}

func TestGroupCommitAcrossSensors(t *testing.T) {
	c := startCollector(t, t.TempDir(), nil)
	const sensors, batches, per = 20, 30, 50
	streamAtOnce(t, c, sensors, batches, per)
	// Every sensor sends the same keys, but flows are per sensor.
	f, _, _ := c.totals()
	assert.Equal(t, sensors*batches*per, f)
	st := c.svc.WALStats()
	assert.Equal(t, uint64(sensors*batches), st.Records)
	t.Logf("group commit: %d records in %d fsyncs (largest group %d, %.1f records/fsync, %v per fsync)",
		st.Records, st.Groups, st.MaxGroup, float64(st.Records)/float64(st.Groups), st.SyncTime/time.Duration(st.Groups))
	assert.Less(t, st.Groups, st.Records, "appends of several streams share an fsync")
}

func TestDataDirIsLockedByOneCollector(t *testing.T) {
	dir := t.TempDir()
	startCollector(t, dir, nil)
	svc, err := New(DefaultConfig(), store.New(store.DefaultConfig()), slog.New(slog.DiscardHandler), time.Now)
	require.NoError(t, err)
	svc.cfg.DataDir = dir
	err = svc.Start()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "in use by another collector")
}

func TestRegistryStaleAfterThreeSilentIntervalsAndLoss(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	c := startCollector(t, "", nil, clock)
	s, _, err := dial(t, c.addr, "s1", "boot-a") // export interval 1 s
	require.NoError(t, err)
	b := batch(1, 2)
	b.Loss = &netwatchv1.SpoolLoss{Batches: 2, Flows: 10, Packets: 300, Bytes: 4000,
		FirstLost: timestamppb.New(now.Add(-3 * time.Second)), LastLost: timestamppb.New(now.Add(-time.Second))}
	s.send(b)
	require.Equal(t, uint64(1), s.ack())

	v := c.svc.Sensors()[0]
	assert.False(t, v.GetStale())
	assert.Equal(t, []uint64{10, 300, 4000}, []uint64{v.GetLostFlows(), v.GetLostPackets(), v.GetLostBytes()})
	require.Len(t, c.svc.Losses(), 1)
	advance(2900 * time.Millisecond)
	assert.False(t, c.svc.Sensors()[0].GetStale(), "2.9 intervals")
	advance(200 * time.Millisecond)
	assert.True(t, c.svc.Sensors()[0].GetStale(), "3.1 intervals without a batch")
	assert.True(t, c.svc.Sensors()[0].GetConnected())
	s.send(batch(2, 2))
	require.Equal(t, uint64(2), s.ack())
	assert.False(t, c.svc.Sensors()[0].GetStale())
}

// TestSnapshotsKeepTrafficPerMinute: a flow that transferred something every minute
// for ten minutes, restored from a snapshot after a crash, answers window questions
// (top talkers over the last N minutes) as before, not with all of its traffic in
// its last minute.
func TestSnapshotsKeepTrafficPerMinute(t *testing.T) {
	dir := t.TempDir()
	small := func(cfg *Config) { cfg.SegmentBytes = 4 << 10 }
	c := startCollector(t, dir, small)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	now := time.Now()
	seq := uint64(0)
	for m := 9; m >= 0; m-- {
		d := delta(500000)
		d.FirstSeen = timestamppb.New(now.Add(-10 * time.Minute))
		d.LastSeen = timestamppb.New(now.Add(-time.Duration(m) * time.Minute))
		d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes = 1, 1000*uint64(m+1), 1, 10
		seq++
		s.send(&netwatchv1.FlowBatch{Sequence: seq, CreatedAt: timestamppb.Now(), Deltas: []*netwatchv1.FlowDelta{d}})
		require.Equal(t, seq, s.ack())
	}
	// Enough other batches for the log to rotate, snapshot and drop the segment that
	// holds the deltas above: after the crash the flow comes from the snapshot.
	for range 200 {
		seq++
		s.send(batch(seq, 4))
		require.Equal(t, seq, s.ack())
	}
	require.Eventually(t, func() bool {
		segs, _ := listIndexes(dir, "wal-", ".log")
		snaps, _ := listIndexes(dir, "snap-", ".snap")
		return len(snaps) == 1 && len(segs) > 0 && segs[0] > 1
	}, 5*time.Second, 10*time.Millisecond, "first segment pruned after a snapshot")
	windows := func(st *store.Store) map[time.Duration]uint64 {
		out := map[time.Duration]uint64{}
		for _, w := range []time.Duration{time.Minute, 3 * time.Minute, 5 * time.Minute, 15 * time.Minute} {
			st.Window(now.Add(-w), now, func(f store.WindowFlow) { out[w] += f.Bytes })
		}
		return out
	}
	before := windows(c.store)
	require.Less(t, before[3*time.Minute], before[15*time.Minute], "the traffic is spread over the minutes")
	c.crash()
	c2 := startCollector(t, dir, small)
	assert.Equal(t, before, windows(c2.store))
}

func TestFlowBucketsRecordRoundTripAndTruncation(t *testing.T) {
	f := store.Flow{SrcPackets: 3, SrcBytes: 300, LastSeen: 2e18, ReceivedAt: 2e18}
	f.Protocol, f.Src, f.Dst, f.SrcPort, f.DstPort, f.FirstSeen = 6, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), 1, 2, 1e18
	in := []store.BucketTraffic{{Start: 1.9e18, Packets: 1, Bytes: 100}, {Start: 2e18, Packets: 2, Bytes: 1 << 40}}
	body := flowBucketsBody(nil, &f, in)
	d, out, err := parseFlowBuckets(body)
	require.NoError(t, err)
	assert.Equal(t, in, out)
	assert.Equal(t, uint64(300), d.GetSrcBytes())
	// Cut anywhere inside a bucket or the delta: an error, never a panic or a
	// wrong bucket. (A cut exactly between buckets loses whole buckets only; the
	// snapshot's end record is what tells a complete snapshot.)
	for n := range len(body) {
		if _, b, err := parseFlowBuckets(body[:n]); err == nil && len(b) > 0 {
			assert.Equal(t, in[:len(b)], b, "cut at %d", n)
		}
	}
}

// TestPendingDeltasAreBounded: 20 sensors stream 40 batches of 500 deltas each as
// fast as acknowledgements allow (up to 8 unacknowledged) into a collector whose
// pending budget is 3,000 deltas: at no time do more than that wait for the log and
// the store, and every batch is applied exactly once.
func TestPendingDeltasAreBounded(t *testing.T) {
	const budget, sensors, batches, per = 3000, 20, 40, 500
	c := startCollector(t, t.TempDir(), func(cfg *Config) { cfg.MaxPendingDeltas = budget })
	streamAtOnce(t, c, sensors, batches, per)
	f, _, _ := c.totals()
	assert.Equal(t, sensors*batches*per, f)
	now, peak := c.svc.PendingDeltas()
	assert.Zero(t, now, "everything acknowledged was applied and given back")
	assert.LessOrEqual(t, peak, int64(budget))
	assert.GreaterOrEqual(t, peak, int64(2*per), "the budget was used: more than one batch waited at once")
	t.Logf("pending deltas peaked at %d of %d", peak, budget)
}

func TestPendingBudgetIsChecked(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxPendingDeltas = 0
	_, err := New(cfg, store.New(store.DefaultConfig()), slog.New(slog.DiscardHandler), time.Now)
	require.ErrorContains(t, err, "MaxPendingDeltas: ")
}
