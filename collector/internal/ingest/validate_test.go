package ingest

import (
	"context"
	"encoding/base64"
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/sat"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

var validateNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func TestValidateBatchNamesTheFieldAndTheDelta(t *testing.T) {
	ts := timestamppb.New
	for _, tc := range []struct {
		name   string
		mutate func(b *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta)
		field  string // the error starts with it
	}{
		{"2^64-1 packets", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.SrcPackets, d.SrcBytes = math.MaxUint64, math.MaxUint64
		},
			"deltas[2].src_packets: 18446744073709551615 is not below 2^40"},
		{"2^40 packets", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.DstPackets, d.DstBytes = 1<<40, 100<<40 },
			"deltas[2].dst_packets: "},
		{"bytes below 20 a packet", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.SrcPackets, d.SrcBytes = 3, 59 },
			"deltas[2].src_bytes: 59 is outside [60, 3145728] for 3 packets"},
		{"bytes above 1 MiB a packet", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.DstPackets, d.DstBytes = 1, 1<<20+1 },
			"deltas[2].dst_bytes: "},
		{"bytes without packets", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.DstPackets, d.DstBytes = 0, 1 },
			"deltas[2].dst_bytes: 1 is outside [0, 0]"},
		{"3-byte address", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Key.SrcAddr = []byte{1, 2, 3} },
			"deltas[2].key.src_addr: 3 bytes"},
		{"mixed families", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Key.DstAddr = make([]byte, 16) },
			"deltas[2].key.dst_addr: 16 bytes: not of src_addr's family"},
		{"no key", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Key = nil }, "deltas[2].key: missing"},
		{"protocol", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Key.Protocol = 256 }, "deltas[2].key.protocol: 256 is above 255"},
		{"src port", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Key.SrcPort = 65536 }, "deltas[2].key.src_port: "},
		{"dst port", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Key.DstPort = 70000 }, "deltas[2].key.dst_port: "},
		{"vlan", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.VlanId = 4096 }, "deltas[2].vlan_id: "},
		{"tcp flags", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.SrcTcpFlags = 256 }, "deltas[2].src_tcp_flags: "},
		{"last an hour before first", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.LastSeen = ts(d.FirstSeen.AsTime().Add(-time.Hour - time.Nanosecond))
		}, "deltas[2].last_seen: 2026-11-25T10:59:59.999999999Z is more than 1h0m0s before first_seen"},
		{"no first_seen", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.FirstSeen = nil }, "deltas[2].first_seen: missing"},
		{"year 1", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.FirstSeen = ts(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
		}, "deltas[2].first_seen: 0001-01-01T00:00:00Z is before 1990"},
		{"1989", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.FirstSeen = ts(time.Date(1989, 12, 31, 23, 59, 59, 0, time.UTC))
		}, "deltas[2].first_seen: 1989-12-31T23:59:59Z is before 1990"},
		{"year 9999", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.LastSeen = ts(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
		}, "deltas[2].last_seen: 9999-12-31T00:00:00Z is more than 24h0m0s ahead of the collector's clock"},
		{"beyond year 9999", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.LastSeen = &timestamppb.Timestamp{Seconds: 1 << 62}
		},
			"deltas[2].last_seen: not a valid timestamp"},
		{"bad nanos", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.FirstSeen.Nanos = -5 }, "deltas[2].first_seen: not a valid timestamp"},
		{"created_at ahead", func(b *netwatchv1.FlowBatch, _ *netwatchv1.FlowDelta) {
			b.CreatedAt = ts(validateNow.Add(25 * time.Hour))
		},
			"created_at: 2026-11-26T13:00:00Z is more than 24h0m0s ahead"},
		{"loss time", func(b *netwatchv1.FlowBatch, _ *netwatchv1.FlowDelta) {
			b.Loss = &netwatchv1.SpoolLoss{Batches: 1, FirstLost: ts(time.Unix(0, 0))}
		}, "loss.first_lost: 1970-01-01T00:00:00Z is before 1990"},
		{"stats interface", func(b *netwatchv1.FlowBatch, _ *netwatchv1.FlowDelta) { b.Stats.Interface = strings.Repeat("e", 257) },
			"stats.interface: 257 bytes, more than 256"},
		{"too many counters", func(b *netwatchv1.FlowBatch, _ *netwatchv1.FlowDelta) {
			for range 65 {
				b.Stats.NonIp = append(b.Stats.NonIp, &netwatchv1.CounterValue{Name: "arp", Value: 1})
			}
		}, "stats.non_ip: 65 named counters, more than 64"},
		{"counter name", func(b *netwatchv1.FlowBatch, _ *netwatchv1.FlowDelta) {
			b.Stats.DecodeErrors = []*netwatchv1.CounterValue{{Name: "ok"}, {Name: "<script>"}}
		}, "stats.decode_errors[1].name: must be 1 to 64 bytes of [A-Za-z0-9._:-]"},
		{"community id without its version", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.CommunityId = testCID[2:] },
			"deltas[2].community_id: "},
		{"community id of version 2", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.CommunityId = "2:" + testCID[2:] },
			"deltas[2].community_id: "},
		{"community id not base64", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.CommunityId = "1:" + strings.Repeat("!", 28) },
			"deltas[2].community_id: "},
		{"community id of 21 bytes", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.CommunityId = "1:" + base64.StdEncoding.EncodeToString(make([]byte, 21))
		}, "deltas[2].community_id: "},
		{"community id unpadded", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) {
			d.CommunityId = strings.TrimSuffix(testCID, "=")
		},
			"deltas[2].community_id: "},
		{"server name in upper case", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.ServerName = "WWW.example.com" },
			"deltas[2].server_name: must be at most 253 bytes of [a-z0-9._:-], got 15 bytes"},
		{"server name of 254 bytes", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.ServerName = strings.Repeat("a", 254) },
			"deltas[2].server_name: "},
		{"server name with a slash", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.ServerName = "a/b" },
			"deltas[2].server_name: "},
		{"server name with a NUL", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.ServerName = "a\x00b" },
			"deltas[2].server_name: "},
		{"application with a colon", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Application = "tls:1" },
			"deltas[2].application: must be at most 32 bytes of [a-z0-9._-]"},
		{"application of 33 bytes", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Application = strings.Repeat("a", 33) },
			"deltas[2].application: "},
		{"application in upper case", func(_ *netwatchv1.FlowBatch, d *netwatchv1.FlowDelta) { d.Application = "TLS" },
			"deltas[2].application: "},
		{"too many dns observations", func(b *netwatchv1.FlowBatch, _ *netwatchv1.FlowDelta) {
			b.Dns = make([]*netwatchv1.DnsObservation, MaxDNSObservations+1)
		}, "dns: 8193 observations, more than 8192"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := batch(1, 4)
			b.CreatedAt = timestamppb.New(validateNow)
			require.NoError(t, ValidateBatch(b, validateNow), "the unchanged batch is valid")
			tc.mutate(b, b.Deltas[2])
			err := ValidateBatch(b, validateNow)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), tc.field), "%q\nwant prefix %q", err, tc.field)
			var ve *ValidationError
			require.True(t, errors.As(err, &ve))
			if strings.HasPrefix(tc.field, "deltas[") {
				assert.Equal(t, 2, ve.Index)
			} else {
				assert.Equal(t, -1, ve.Index)
			}
		})
	}
}

func TestValidateBatchAcceptsTheEdges(t *testing.T) {
	b := batch(1, 3)
	d := b.Deltas[0]
	d.SrcPackets, d.SrcBytes = 1, 20 // a bare IPv4 header
	d.DstPackets, d.DstBytes = 1, 1<<20
	b.Deltas[1].SrcPackets, b.Deltas[1].SrcBytes, b.Deltas[1].DstPackets, b.Deltas[1].DstBytes = 0, 0, 0, 0 // a status change only
	b.Deltas[1].Key.SrcAddr, b.Deltas[1].Key.DstAddr = netip.MustParseAddr("2001:db8::1").AsSlice(), netip.MustParseAddr("2001:db8::2").AsSlice()
	b.Deltas[2].SrcPackets, b.Deltas[2].SrcBytes = 1<<40-1, 40*(1<<40-1)
	b.Deltas[1].LastSeen = timestamppb.New(b.Deltas[1].FirstSeen.AsTime().Add(-time.Hour)) // capture time stepping back
	b.Deltas[2].FirstSeen = timestamppb.New(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC))   // an old capture, --read
	b.Deltas[2].LastSeen = timestamppb.New(validateNow.Add(24 * time.Hour))
	b.CreatedAt = timestamppb.New(validateNow.Add(24 * time.Hour))
	b.Stats.Interface = strings.Repeat("é", 128) // 256 bytes
	b.Deltas[0].CommunityId, b.Deltas[0].ServerName, b.Deltas[0].Application = testCID, strings.Repeat("a.-_:9", 42)+"z", strings.Repeat("a._-9", 6)+"zz"
	require.Len(t, b.Deltas[0].ServerName, 253)
	require.Len(t, b.Deltas[0].Application, 32)
	b.Dns = make([]*netwatchv1.DnsObservation, MaxDNSObservations) // invalid ones are dropped when applied, not refused
	assert.NoError(t, ValidateBatch(b, validateNow))
}

func TestValidateHello(t *testing.T) {
	ok := &netwatchv1.SensorHello{SensorId: "rack-4.eu:1_a", BootId: "0123abcd", Hostname: "host 1 (é)", Interface: "file:capture.pcap", Version: "v1.2.3",
		StartedAt: timestamppb.New(validateNow)}
	require.NoError(t, ValidateHello(ok, validateNow))
	for _, tc := range []struct {
		name   string
		mutate func(*netwatchv1.SensorHello)
		want   string
	}{
		{"empty sensor id", func(h *netwatchv1.SensorHello) { h.SensorId = "" }, "sensor_id: must be 1 to 128 bytes of [A-Za-z0-9._:-]"},
		{"sensor id with a space", func(h *netwatchv1.SensorHello) { h.SensorId = "rack 4" }, "sensor_id: "},
		{"sensor id too long", func(h *netwatchv1.SensorHello) { h.SensorId = strings.Repeat("a", 129) }, "sensor_id: "},
		{"boot id with NUL", func(h *netwatchv1.SensorHello) { h.BootId = "b\x00" }, "boot_id: "},
		{"hostname too long", func(h *netwatchv1.SensorHello) { h.Hostname = strings.Repeat("h", 14<<20) }, "hostname: 14680064 bytes, more than 256"},
		{"hostname with an escape", func(h *netwatchv1.SensorHello) { h.Hostname = "a\x1b[2Jb" }, "hostname: holds the unprintable character U+001B"},
		{"interface not UTF-8", func(h *netwatchv1.SensorHello) { h.Interface = "\xff" }, "interface: not UTF-8"},
		{"version with a newline", func(h *netwatchv1.SensorHello) { h.Version = "v\n1" }, "version: "},
		{"started in year 1", func(h *netwatchv1.SensorHello) {
			h.StartedAt = timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC))
		}, "started_at: 0001-01-01T00:00:00Z is before 1990"},
		{"started in year 9999", func(h *netwatchv1.SensorHello) {
			h.StartedAt = timestamppb.New(time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
		}, "started_at: 9999-01-01T00:00:00Z is more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := proto.Clone(ok).(*netwatchv1.SensorHello)
			tc.mutate(h)
			err := ValidateHello(h, validateNow)
			if assert.Error(t, err, tc.want) {
				assert.True(t, strings.HasPrefix(err.Error(), tc.want), "%q\nwant prefix %q", err, tc.want)
			}
		})
	}
}

// TestHugeDeltaIsRefusedBeforeTheLogAndTheCollectorSurvives: a delta of 2^64-1
// packets (before: ceil(2^64/2^32) bucket entries, a fatal out-of-memory, and the
// same again at every restart since it was logged) ends the stream with
// INVALID_ARGUMENT naming the field and the delta, carrying a BatchRejection; the
// batch before it is acknowledged; nothing of it reaches the store or the log (a
// restart replays batch 1 only); the sensor's row counts the rejection.
func TestHugeDeltaIsRefusedBeforeTheLogAndTheCollectorSurvives(t *testing.T) {
	dir := t.TempDir()
	c := startCollector(t, dir, nil)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	s.send(batch(1, 3))
	bad := batch(2, 3)
	bad.Deltas[1].SrcPackets, bad.Deltas[1].SrcBytes = math.MaxUint64, math.MaxUint64
	s.send(bad)
	require.Equal(t, uint64(1), s.ack())
	_, err = s.stream.Recv()
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	assert.Equal(t, "batch 2: deltas[1].src_packets: 18446744073709551615 is not below 2^40", st.Message())
	require.Len(t, st.Details(), 1)
	rej, ok := st.Details()[0].(*netwatchv1.BatchRejection)
	require.True(t, ok, "%T", st.Details()[0])
	assert.Equal(t, uint64(2), rej.GetSequence())
	assert.False(t, rej.GetRetryable())

	flows, packets, _ := c.totals()
	assert.Equal(t, 3, flows)
	assert.Equal(t, uint64(1+2+3), packets)
	assert.Less(t, c.store.Stats().BucketEntries, 10)
	v := c.svc.Sensors()[0]
	assert.Equal(t, uint64(1), v.GetRejectedBatches())
	assert.Equal(t, "batch 2: deltas[1].src_packets: 18446744073709551615 is not below 2^40", v.GetLastRejection())
	assert.NotNil(t, v.GetLastRejectionAt())
	assert.Equal(t, uint64(1), c.svc.RejectedBatches())

	// The sensor reconnects: batch 1 is applied, 2 is not (it was never logged).
	_, w, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	assert.Equal(t, uint64(1), w.GetAppliedThrough())
	c.stop()
	c2 := startCollector(t, dir, nil)
	flows, packets, _ = c2.totals()
	assert.Equal(t, []uint64{3, 6}, []uint64{uint64(flows), packets}, "the log holds batch 1 only")
	assert.Zero(t, c2.svc.ReplaySkipped())
}

// TestHugeHostnameIsRefused: a 14 MiB hostname (before: stored, and pushed to every
// WebSocket client every second) ends the stream at the hello, naming the field.
func TestHugeHostnameIsRefused(t *testing.T) {
	c := startCollector(t, "", nil)
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(context.Background())
	require.NoError(t, err)
	require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
		SensorId: "s1", BootId: "b", Hostname: strings.Repeat("h", 14<<20)}}}))
	_, err = stream.Recv()
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Equal(t, "hello: hostname: 14680064 bytes, more than 256", status.Convert(err).Message())
	assert.Empty(t, c.svc.Sensors(), "nothing of it is registered")
}

// TestSequenceTooFarAheadIsRefusedAndTheBootGoesOn: batch 2^64-1 (before: applied,
// after which batches 1 and 2 were acknowledged as "already applied" and dropped)
// is refused as too far ahead, retryable, acknowledged never; batches 1 and 2 are
// then applied. A skip within the spool's capacity (batches a full spool dropped)
// is applied as before.
func TestSequenceTooFarAheadIsRefusedAndTheBootGoesOn(t *testing.T) {
	c := startCollector(t, t.TempDir(), nil)
	s, _, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	s.send(numbered(math.MaxUint64, 9))
	_, err = s.stream.Recv()
	st := status.Convert(err)
	require.Equal(t, codes.InvalidArgument, st.Code(), "%v", err)
	assert.Contains(t, st.Message(), "batch 18446744073709551615: sequence 18446744073709551615 is more than 1048576 (the spool's capacity in batches) beyond 0")
	require.Len(t, st.Details(), 1)
	assert.True(t, st.Details()[0].(*netwatchv1.BatchRejection).GetRetryable())

	s, w, err := dial(t, c.addr, "s1", "boot-a")
	require.NoError(t, err)
	assert.Zero(t, w.GetAppliedThrough())
	s.send(batch(1, 1))
	s.send(batch(2, 1))
	assert.Equal(t, uint64(1), s.ack())
	assert.Equal(t, uint64(2), s.ack())
	s.send(numbered(2+DefaultSpoolBatches, 2)) // a skip as far as a default spool can drop
	assert.Equal(t, uint64(2+DefaultSpoolBatches), s.ack())
	s.send(batch(1, 1)) // a resend: acknowledged, not applied again
	assert.Equal(t, uint64(1), s.ack())
	flows, packets, _ := c.totals()
	assert.Equal(t, 3, flows)
	assert.Equal(t, uint64(1+2+3), packets)
	assert.Equal(t, uint64(1), c.svc.Sensors()[0].GetRejectedBatches())
}

// numbered is a batch of one delta, delta(i), numbered seq.
func numbered(seq uint64, i int) *netwatchv1.FlowBatch {
	b := batch(1, 0)
	b.Sequence, b.Deltas = seq, []*netwatchv1.FlowDelta{delta(i)}
	return b
}

// TestHelloBoundsTheSkip: a sensor with a small spool says so (spool_batches), and
// one that was cut off long says how far it got (last_sequence).
func TestHelloBoundsTheSkip(t *testing.T) {
	c := startCollector(t, "", nil)
	open := func(spool, last uint64) *sensorStream {
		conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { conn.Close() })
		stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(context.Background())
		require.NoError(t, err)
		require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: &netwatchv1.SensorHello{
			SensorId: "s1", BootId: "b", SpoolBatches: spool, LastSequence: last}}}))
		_, err = stream.Recv()
		require.NoError(t, err)
		return &sensorStream{t: t, conn: conn, stream: stream}
	}
	s := open(10, 0)
	s.send(numbered(10, 0))
	assert.Equal(t, uint64(10), s.ack())
	s.send(numbered(21, 1))
	_, err := s.stream.Recv()
	assert.Equal(t, codes.InvalidArgument, status.Code(err), "11 beyond the highest batch with a spool of 10")
	s = open(10, 5000)
	s.send(numbered(4991, 2)) // the oldest batch the spool kept after a long outage
	assert.Equal(t, uint64(4991), s.ack())
}

// TestReplaySkipsAnInvalidBatchAnOlderCollectorLogged: a log written by a build
// that did not validate holds a batch with a delta of 2^64-1 packets between two
// good ones. Replay skips and counts it (before: the store tried to allocate
// ceil(2^64/2^32) entries at every start) and applies the others.
func TestReplaySkipsAnInvalidBatchAnOlderCollectorLogged(t *testing.T) {
	dir := t.TempDir()
	bad := batch(2, 3)
	bad.Deltas[0].SrcPackets, bad.Deltas[0].SrcBytes = math.MaxUint64, math.MaxUint64
	at := time.Now().Add(-time.Minute).UnixNano()
	var seg []byte
	for _, b := range []*netwatchv1.FlowBatch{batch(1, 3), bad, batch(3, 3)} {
		r := record{kind: recBatch, at: at, seq: b.GetSequence(), sensorID: "old", bootID: "boot-a", body: marshal(b)}
		seg = append(seg, r.frame()...)
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o640))
	c := startCollector(t, dir, nil)
	assert.Equal(t, uint64(1), c.svc.ReplaySkipped())
	flows, packets, _ := c.totals()
	assert.Equal(t, 6, flows)
	assert.Equal(t, uint64(1+2+3+7+8+9), packets)
	assert.Less(t, c.store.Stats().BucketEntries, 20)
}

// TestStoreArithmeticSaturates: the store itself, given deltas validation would
// refuse (Apply has other callers), adds at most one bucket entry a delta and
// saturates its counters instead of wrapping.
func TestStoreArithmeticSaturates(t *testing.T) {
	d := batch(1, 1).Deltas[0]
	d.LastSeen = timestamppb.New(validateNow)
	t.Run("entries", func(t *testing.T) {
		st := store.New(store.DefaultConfig())
		d := proto.Clone(d).(*netwatchv1.FlowDelta)
		d.SrcPackets, d.SrcBytes = 1<<40, 1<<50 // before: 256 entries (1024 for the bytes)
		st.Apply("s1", []*netwatchv1.FlowDelta{d}, validateNow)
		assert.Equal(t, 1, st.Stats().BucketEntries, "one entry a delta")
		st.Apply("s1", []*netwatchv1.FlowDelta{d}, validateNow)
		assert.Equal(t, 2, st.Stats().BucketEntries, "at most one more a delta")
	})
	t.Run("counters", func(t *testing.T) {
		st := store.New(store.DefaultConfig())
		d := proto.Clone(d).(*netwatchv1.FlowDelta)
		d.SrcPackets, d.SrcBytes, d.DstPackets, d.DstBytes = math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64
		for range 3 {
			st.Apply("s1", []*netwatchv1.FlowDelta{d}, validateNow)
		}
		s := st.Stats()
		assert.LessOrEqual(t, s.BucketEntries, 3)
		assert.Equal(t, uint64(math.MaxUint64), s.Packets)
		var f store.Flow
		st.Scan(func(*store.Flow) bool { return true }, func(x store.Flow) { f = x })
		assert.Equal(t, []uint64{math.MaxUint64, math.MaxUint64, math.MaxUint64, math.MaxUint64}, []uint64{f.SrcPackets, f.SrcBytes, f.DstPackets, f.DstBytes})
	})
}

// FuzzValidateBatch: arbitrary bytes, unmarshaled as a FlowBatch, are validated
// without a panic; an error names a field (and a delta that exists); a batch that
// passes is applied, twice, to a store whose bucket entries stay within one per
// delta applied, so memory is bounded by the message's size whatever its counters
// say, and whose totals are the batch's (saturated: 2^61 bytes a delta are valid).
func FuzzValidateBatch(f *testing.F) {
	for _, b := range []*netwatchv1.FlowBatch{batch(1, 3), numbered(7, 1), {Sequence: 1}} {
		b.CreatedAt = timestamppb.New(validateNow)
		data, err := proto.Marshal(b)
		require.NoError(f, err)
		f.Add(data)
	}
	huge := batch(2, 2)
	huge.Deltas[1].SrcPackets, huge.Deltas[1].SrcBytes = 1<<40-1, (1<<40-1)<<20
	huge.Deltas[0].DstPackets, huge.Deltas[0].DstBytes = math.MaxUint64, math.MaxUint64
	data, err := proto.Marshal(huge)
	require.NoError(f, err)
	f.Add(data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b := &netwatchv1.FlowBatch{}
		if proto.Unmarshal(data, b) != nil {
			return
		}
		if err := ValidateBatch(b, validateNow); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field == "" || ve.Index >= len(b.GetDeltas()) {
				t.Fatalf("%x: error %v does not name a field and an existing delta", data, err)
			}
			return
		}
		st := store.New(store.DefaultConfig())
		var packets, bytes uint64
		for range 2 {
			st.Apply("s", b.GetDeltas(), validateNow)
			for _, d := range b.GetDeltas() {
				packets = sat.Add(packets, d.GetSrcPackets()+d.GetDstPackets()) // each below 2^61: no overflow
				bytes = sat.Add(bytes, sat.Add(d.GetSrcBytes(), d.GetDstBytes()))
			}
		}
		s := st.Stats()
		if s.BucketEntries > 2*len(b.GetDeltas()) {
			t.Fatalf("%x: %d bucket entries for %d deltas applied", data, s.BucketEntries, 2*len(b.GetDeltas()))
		}
		if s.Rejected != 0 || s.Packets != packets || s.Bytes != bytes {
			t.Fatalf("%x: store counted %d packets, %d bytes, %d rejected; the batch twice holds %d, %d", data, s.Packets, s.Bytes, s.Rejected, packets, bytes)
		}
	})
}
