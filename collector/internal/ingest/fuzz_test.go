package ingest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/sat"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// fakeStream is the server side of one Ingest stream, fed from a slice: Recv returns
// the messages in order, then io.EOF; Send records the responses. It stands in for
// gRPC so the fuzzer runs thousands of streams a second; the transport itself is
// covered by the tests over real loopback gRPC.
type fakeStream struct {
	grpc.ServerStream // nil: Ingest uses only Context, Recv and Send
	ctx               context.Context
	mu                sync.Mutex
	in                []*netwatchv1.IngestRequest
	out               []*netwatchv1.IngestResponse
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func (s *fakeStream) Recv() (*netwatchv1.IngestRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.in) == 0 {
		return nil, io.EOF
	}
	m := s.in[0]
	s.in = s.in[1:]
	return m, nil
}

func (s *fakeStream) Send(m *netwatchv1.IngestResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.out = append(s.out, m)
	return nil
}

// memService is a memory-only ingest service over a fresh store.
func memService(t testing.TB, now func() time.Time) (*Service, *store.Store) {
	t.Helper()
	st := store.New(store.DefaultConfig())
	cfg := DefaultConfig()
	cfg.DataDir = ""
	svc, err := New(cfg, st, slog.New(slog.DiscardHandler), now)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return svc, st
}

func validHello() *netwatchv1.IngestRequest {
	return &netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
		SensorId: "fuzz", BootId: "boot-1", Hostname: "h", Interface: "eth0", Version: "test", ExportIntervalMs: 1000}}}
}

// FuzzIngest takes arbitrary bytes as a sensor would send them: unmarshaled as an
// IngestRequest and as a FlowBatch, they go through Ingest (hello checks, batch
// checks, dedup, the committer, Store.Apply) on a memory-only service, then through
// the durable log's record encoding and replay path into a second service. Nothing
// may panic or hang; every accepted batch is acknowledged in order; every delta of an
// applied batch is either stored or counted as rejected; the replayed store equals
// the live one; and the stored flows survive every query and expiry.
func FuzzIngest(f *testing.F) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, m := range []proto.Message{
		&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: batch(1, 3)}},
		&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: &netwatchv1.FlowBatch{Sequence: 0}}}, // seq 0: refused
		validHello(),
		&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{SensorId: "x"}}}, // no boot id
		batch(7, 2),
		&netwatchv1.FlowBatch{Sequence: 1, Deltas: []*netwatchv1.FlowDelta{
			{Key: &netwatchv1.FlowKey{Protocol: 300, SrcAddr: []byte{1, 2, 3}, SrcPort: 70000}}, // rejected key
			{Key: &netwatchv1.FlowKey{Protocol: 17, SrcAddr: make([]byte, 16), DstAddr: make([]byte, 4)},
				FirstSeen: &timestamppb.Timestamp{Seconds: -1 << 62}, LastSeen: &timestamppb.Timestamp{Seconds: 1 << 62, Nanos: -5},
				SrcPackets: ^uint64(0), SrcBytes: ^uint64(0), Status: 99, EndReason: -3},
		}, Loss: &netwatchv1.SpoolLoss{Batches: 1, Flows: ^uint64(0)}, CreatedAt: &timestamppb.Timestamp{Seconds: 1 << 40}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x12, 0xff, 0xff, 0xff, 0xff, 0x0f}) // a length far past the end
	f.Fuzz(func(t *testing.T, data []byte) {
		now := func() time.Time { return t0 }
		svc, st := memService(t, now)

		// The stream: a hello (the input's, if it is one), then the input as a
		// request, then the input as a bare batch.
		msgs := []*netwatchv1.IngestRequest{validHello()}
		req := &netwatchv1.IngestRequest{}
		if proto.Unmarshal(data, req) == nil {
			if req.GetHello() != nil {
				msgs[0] = req
			} else {
				msgs = append(msgs, req)
			}
		}
		if b := (&netwatchv1.FlowBatch{}); proto.Unmarshal(data, b) == nil {
			msgs = append(msgs, &netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: b}})
		}

		// What Ingest must do with it.
		hello := msgs[0].GetHello()
		helloOK := hello != nil && ValidateHello(hello, t0) == nil
		var wantAcks []uint64
		var applied []*netwatchv1.FlowBatch
		var mark uint64
		refused := !helloOK
		if helloOK {
			spool := cmp.Or(hello.GetSpoolBatches(), DefaultSpoolBatches)
			for _, m := range msgs[1:] {
				b := m.GetBatch()
				if b == nil || b.GetSequence() == 0 || ValidateBatch(b, t0) != nil ||
					b.GetSequence() > sat.Add(max(mark, hello.GetLastSequence()), spool) {
					refused = true
					break
				}
				wantAcks = append(wantAcks, b.GetSequence())
				if b.GetSequence() > mark {
					mark = b.GetSequence()
					applied = append(applied, b)
				}
			}
		}

		stream := &fakeStream{ctx: context.Background(), in: msgs}
		done := make(chan error, 1)
		go func() { done <- svc.Ingest(stream) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("%x: Ingest did not return within 10 s", data)
		}
		if refused {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("%x: stream %v ended with %v, want InvalidArgument", data, msgs, err)
			}
		} else if err != nil {
			t.Fatalf("%x: stream %v ended with %v", data, msgs, err)
		}
		var gotAcks []uint64
		for i, r := range stream.out {
			switch {
			case i == 0 && r.GetWelcome() == nil:
				t.Fatalf("%x: first response %v is not a welcome", data, r)
			case i > 0:
				gotAcks = append(gotAcks, r.GetAck().GetSequence())
			}
		}
		if !slices.Equal(gotAcks, wantAcks) {
			t.Fatalf("%x: acks %v, want %v", data, gotAcks, wantAcks)
		}

		// Every delta of an applied batch is stored or counted as rejected.
		var sent uint64
		for _, b := range applied {
			sent += uint64(len(b.GetDeltas()))
		}
		if s := st.Stats(); s.Deltas+s.Rejected != sent {
			t.Fatalf("%x: %d deltas applied, store counted %d stored + %d rejected", data, sent, s.Deltas, s.Rejected)
		}
		if helloOK && len(applied) > 0 {
			reg := svc.Sensors()
			if len(reg) != 1 || reg[0].GetBatches() != uint64(len(applied)) {
				t.Fatalf("%x: registry %v, want one sensor with %d batches", data, reg, len(applied))
			}
		}

		// The durable log path: each applied batch framed as the committer writes it,
		// read back as recovery reads it, applied to a second service.
		var log bytes.Buffer
		for _, b := range applied {
			body := marshal(b)
			if body == nil && proto.Size(b) > 0 {
				t.Fatalf("%x: an accepted batch does not marshal: its log record would be empty", data)
			}
			r := record{kind: recBatch, at: t0.UnixNano(), seq: b.GetSequence(), sensorID: hello.GetSensorId(), bootID: hello.GetBootId(), body: body}
			log.Write(r.frame())
		}
		replay, st2 := memService(t, now)
		good, err := int64(0), error(nil)
		if log.Len() > 0 {
			good, err = readFrames(bytes.NewReader(log.Bytes()), func(p []byte) error {
				r, err := parseRecord(p)
				if err != nil {
					return err
				}
				b := &netwatchv1.FlowBatch{}
				if err := proto.Unmarshal(r.body, b); err != nil {
					return err
				}
				replay.applyBatch(r.sensorID, r.bootID, b, time.Unix(0, r.at))
				return nil
			})
		}
		if err != nil || good != int64(log.Len()) {
			t.Fatalf("%x: log replay stopped at %d of %d: %v", data, good, log.Len(), err)
		}
		if a, b := storeDump(st), storeDump(st2); !slices.Equal(a, b) {
			t.Fatalf("%x: replayed store differs:\n live %v\n replay %v", data, a, b)
		}

		// Whatever was stored answers every query, and expires.
		qs := query.New(st, "fuzz", now)
		ctx := context.Background()
		for _, sort := range []string{"bytes", "packets", "duration", "first_seen", "last_seen"} {
			if _, err := qs.ListFlows(ctx, &netwatchv1.ListFlowsRequest{SortBy: sort, Limit: "1000"}); err != nil {
				t.Fatalf("%x: list flows by %s: %v", data, sort, err)
			}
		}
		for _, d := range []string{"1m", "5m", "60m"} {
			if _, err := qs.ListTopTalkers(ctx, &netwatchv1.ListTopTalkersRequest{Duration: d}); err != nil {
				t.Fatalf("%x: top talkers %s: %v", data, d, err)
			}
		}
		qs.SampleMetrics(t0)
		if _, err := qs.GetMetrics(ctx, &netwatchv1.GetMetricsRequest{}); err != nil {
			t.Fatalf("%x: metrics: %v", data, err)
		}
		st.Expire(t0.Add(3 * time.Hour))
		if n := st.Len(); n != 0 {
			t.Fatalf("%x: %d flows left after expiry", data, n)
		}

		// The same bytes as a log segment: recovery reads what it can, never panics.
		if len(data) < frameHeader {
			return
		}
		_, _ = readFrames(bytes.NewReader(data), func(p []byte) error {
			if r, err := parseRecord(p); err == nil {
				b := &netwatchv1.FlowBatch{}
				if proto.Unmarshal(r.body, b) == nil {
					replay.applyBatch(r.sensorID, r.bootID, b, time.Unix(0, r.at))
				}
			}
			return nil
		})
	})
}

// storeDump is every stored flow, in a canonical order.
func storeDump(st *store.Store) []store.Flow {
	var out []store.Flow
	st.Scan(func(*store.Flow) bool { return true }, func(f store.Flow) { out = append(out, f) })
	slices.SortFunc(out, func(a, b store.Flow) int {
		return cmp.Or(cmp.Compare(a.FirstSeen, b.FirstSeen), strings.Compare(a.ID(), b.ID()))
	})
	return out
}

// TestCorruptLengthDoesNotAllocateTheMaximum: a log whose first header claims a
// 255 MiB record but holds 3 bytes is torn at offset 0, and reading it allocates
// about the read buffer, not the claimed length (found by FuzzIngest: recovery made a
// 255 MiB slice for every such header, which a small container cannot afford at start).
func TestCorruptLengthDoesNotAllocateTheMaximum(t *testing.T) {
	data := []byte{0x0f, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 2, 3}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	good, err := readFrames(bytes.NewReader(data), func([]byte) error { return nil })
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errTorn) || good != 0 {
		t.Fatalf("readFrames = %d, %v; want 0, errTorn", good, err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Errorf("reading an 11-byte log allocated %d bytes", n)
	}
}
