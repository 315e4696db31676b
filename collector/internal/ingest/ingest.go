// Package ingest is the collector's end of the sensor link: the SensorService
// stream, the registry of sensors and the durable log that makes an acknowledged
// batch survive a crash.
//
// Every accepted batch goes through one path: it is appended to the log (group
// commit), and once its record is durable the committer applies it to the store and
// the dedup marks, in log order, and only then does the stream acknowledge it. Replay
// at start runs the same apply, so memory and disk never disagree. A batch is keyed
// by (sensor id, boot id, sequence): one at or below the boot's mark is acknowledged
// again but not applied.
package ingest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // sensors compress their batches
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/peerlog"
	"netwatch.dev/collector/internal/ratelog"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/sat"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Config of the ingest service. Zero values are not defaults: start from
// DefaultConfig.
type Config struct {
	// DataDir holds the durable log; empty means memory only (a warning is logged).
	DataDir string
	// SegmentBytes: the log moves to a new segment, and snapshots, beyond this size.
	// Default 64 MiB.
	SegmentBytes int64
	// SnapshotEvery: a non-empty segment older than this is also closed and
	// snapshotted, so the log stays bounded by the retention window. Default 10 minutes.
	SnapshotEvery time.Duration
	// Retention: sensors, dedup marks and flows older than this are not kept in
	// snapshots nor listed. Default 60 minutes.
	Retention time.Duration
	// MaxSensors caps the registry; a new sensor beyond it is refused. Default 1024.
	MaxSensors int
	// Tokens, when not empty, maps sensor id to the bearer token it must present.
	Tokens map[string]string
	// Version is sent to sensors in the welcome.
	Version string
	// MaxPendingDeltas bounds the deltas received from all sensors together that
	// wait for the log and the store (decoded, about 850 bytes each). A stream whose
	// next batch does not fit stops reading, so gRPC flow control holds its sensor
	// back: after an outage, a hundred sensors resending their spools at once cost
	// this much memory, not their spools' worth. Default 65,536 (about 55 MB): some
	// 20-60 ms of the committer's work, which keeps it busy; more does not ingest
	// faster (bench: 100 sensors, with and without the log).
	MaxPendingDeltas int64
	// HelloTimeout: a stream that has not sent its hello this long after it opened
	// is closed (a stream holds a connection, and so a file descriptor). Default 10 s.
	HelloTimeout time.Duration
	// DNS, when set, is given the DNS observations of each batch applied (after
	// the store), on the committer goroutine. nil: they are ignored.
	DNS func(sensorID string, obs []*netwatchv1.DnsObservation)
}

// DefaultConfig is the documented default.
func DefaultConfig() Config {
	return Config{
		DataDir: "./netwatch-data", SegmentBytes: 64 << 20, SnapshotEvery: 10 * time.Minute,
		Retention: 60 * time.Minute, MaxSensors: 1024, Version: "dev", MaxPendingDeltas: 1 << 16,
		HelloTimeout: 10 * time.Second,
	}
}

// Check validates c; errors name the field.
func (c Config) Check() error {
	switch {
	case c.SegmentBytes < 1<<10:
		return flagconfig.Fieldf("SegmentBytes", "%d is below the minimum of 1024", c.SegmentBytes)
	case c.SnapshotEvery < time.Second:
		return flagconfig.Fieldf("SnapshotEvery", "%v is below the minimum of 1s", c.SnapshotEvery)
	case c.Retention < time.Minute:
		return flagconfig.Fieldf("Retention", "%v is below the minimum of 1m", c.Retention)
	case c.MaxSensors < 1:
		return flagconfig.Fieldf("MaxSensors", "%d must be at least 1", c.MaxSensors)
	case c.MaxPendingDeltas < 1:
		return flagconfig.Fieldf("MaxPendingDeltas", "%d must be at least 1", c.MaxPendingDeltas)
	case c.HelloTimeout <= 0:
		return flagconfig.Fieldf("HelloTimeout", "%v must be positive", c.HelloTimeout)
	}
	for id, tok := range c.Tokens {
		if id == "" || tok == "" {
			return flagconfig.Fieldf("Tokens", "empty sensor id or token")
		}
	}
	return nil
}

// ServerOptions are the gRPC server options the sensor link needs: a message size
// cap, keepalives that drop a dead sensor within 10 s, a ping policy that lets
// sensors ping every 10 s (the gRPC client minimum) and closes a client that pings
// more often, at most 64 streams per connection, and connection lifetimes:
//
//   - a connection must finish its TLS handshake and HTTP/2 preface within 10 s
//     (grpc-go's default is 120 s: a flood of silent TCP connections held them);
//   - a connection that carries no stream for 5 minutes is closed (idle): a query
//     client reconnects by itself, a sensor always has its stream open;
//   - a connection older than an hour (±10 %) is told to go away (GOAWAY): it takes
//     no new stream, but the grace is unbounded, so a sensor's stream, which lasts
//     as long as the sensor runs, goes on, and the connection closes when its last
//     stream ends. A bounded grace would cut every sensor off once an hour: it would
//     reconnect and resend its unacknowledged batches (deduplicated), losing
//     nothing, but each cut is a gap in its live view and a warning on both sides
//     for no gain: what bounds the descriptors is the per-address cap of the
//     listener, the hello deadline (HelloTimeout) and the idle limit.
func ServerOptions(maxMessageBytes int) []grpc.ServerOption {
	return serverOptions(maxMessageBytes, defaultLifetimes)
}

// lifetimes are the connection limits of ServerOptions (shorter in tests).
type lifetimes struct {
	handshake, idle, age time.Duration
}

var defaultLifetimes = lifetimes{handshake: 10 * time.Second, idle: 5 * time.Minute, age: time.Hour}

func serverOptions(maxMessageBytes int, l lifetimes) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.MaxConcurrentStreams(64),
		grpc.ConnectionTimeout(l.handshake),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 5 * time.Second, Timeout: 5 * time.Second,
			MaxConnectionIdle: l.idle, MaxConnectionAge: l.age /* MaxConnectionAgeGrace 0: unbounded */}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
}

// bootState is the dedup mark of one (sensor, boot).
type bootState struct {
	accepted uint64 // highest sequence appended to the log
	applied  uint64 // highest sequence durable and applied
	lastAt   time.Time
	loss     *netwatchv1.SpoolLoss // latest cumulative loss of this boot
}

// sensorEntry is the registry entry of one sensor id.
type sensorEntry struct {
	hello          *netwatchv1.SensorHello
	sess           *session
	connectedSince time.Time
	lastSeen       time.Time // latest connect, disconnect or batch
	lastBatchAt    time.Time
	lagMs          int64
	batches        uint64
	stats          *netwatchv1.SensorStats
	// rejected counts the batches refused as invalid; lastRejection says why the
	// latest was, at lastRejectionAt.
	rejected        uint64
	lastRejection   string
	lastRejectionAt time.Time
}

// session is one live stream.
type session struct {
	sensorID, bootID string
	// spoolBatches and lastSequence are the hello's (spool_batches 0 taken as
	// DefaultSpoolBatches): they bound how far ahead a batch number may be.
	spoolBatches, lastSequence uint64
	cancel                     context.CancelFunc
	done                       chan struct{}
	dead                       bool // guarded by Service.mu: replaced or ended, appends no more
	stopping                   bool // guarded by Service.mu: ended by EndStreams, not replaced
}

// Service implements netwatchv1.SensorServiceServer.
type Service struct {
	netwatchv1.UnimplementedSensorServiceServer
	cfg   Config
	log   *slog.Logger
	store *store.Store
	now   func() time.Time
	// tokens is Config.Tokens, replaced by SetTokens.
	tokens atomic.Pointer[map[string]string]

	mu      sync.Mutex
	sensors map[string]*sensorEntry
	boots   map[[2]string]*bootState
	wal     *wal
	unlock  func()              // releases the data directory
	pending *semaphore.Weighted // deltas received and not yet applied (MaxPendingDeltas)
	// lastPrune is when the registry was last pruned (pruneLocked), guarded by mu.
	lastPrune time.Time
	// refusals logs refused streams, once per peer per 30 s.
	refusals *peerlog.Log

	pendingNow, pendingPeak atomic.Int64
	replay                  replayState

	// The durable log's losses and write failures, for the health and the metrics.
	losses    *lossBook
	walHealth *walHealth
	stopLoss  chan struct{}
	// rejectedBatches counts batches refused as invalid (all sensors), and
	// replaySkipped the log records replay skipped because they fail validation.
	rejectedBatches, replaySkipped atomic.Uint64
	rejectLog                      *ratelog.Limiter[string] // one line per sensor a minute
}

// RejectedBatches is how many batches were refused as invalid since start.
func (s *Service) RejectedBatches() uint64 { return s.rejectedBatches.Load() }

// ReplaySkipped is how many batch records of the log the replay at start skipped
// because they fail validation (written by an older collector that did not check).
func (s *Service) ReplaySkipped() uint64 { return s.replaySkipped.Load() }

// PendingDeltas is how many received deltas wait for the log and the store now,
// and the most that ever did (at most Config.MaxPendingDeltas).
func (s *Service) PendingDeltas() (now, peak int64) {
	return s.pendingNow.Load(), s.pendingPeak.Load()
}

func (s *Service) holdPending(n int64) {
	v := s.pendingNow.Add(n)
	for p := s.pendingPeak.Load(); v > p && !s.pendingPeak.CompareAndSwap(p, v); p = s.pendingPeak.Load() {
	}
}

// New validates cfg and builds the service; it starts nothing and reads no file.
func New(cfg Config, st *store.Store, log *slog.Logger, now func() time.Time) (*Service, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, log: log, store: st, now: now, pending: semaphore.NewWeighted(cfg.MaxPendingDeltas),
		sensors: make(map[string]*sensorEntry), boots: make(map[[2]string]*bootState),
		losses: &lossBook{dir: cfg.DataDir, log: log}, walHealth: &walHealth{},
		rejectLog: ratelog.New[string](time.Minute, now),
		refusals:  peerlog.New(log, 30*time.Second, now)}
	s.tokens.Store(&cfg.Tokens)
	return s, nil
}

// SetTokens replaces the sensors' tokens (see Config.Tokens) while serving: streams
// opened from now on are checked against them; open streams stay.
func (s *Service) SetTokens(tokens map[string]string) error {
	c := s.cfg
	c.Tokens = tokens
	if err := c.Check(); err != nil {
		return err
	}
	s.tokens.Store(&tokens)
	return nil
}

// Preflight checks, changing nothing that stays, that Start can use the data
// directory: it is a directory where a file can be created (one is, and removed),
// or, when it does not exist yet, its nearest existing parent is.
func (s *Service) Preflight() error {
	if s.cfg.DataDir == "" {
		return nil
	}
	dir := s.cfg.DataDir
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return flagconfig.Fieldf("DataDir", "%s is not a directory", dir)
			}
			break
		}
		if parent := filepath.Dir(dir); errors.Is(err, fs.ErrNotExist) && parent != dir {
			dir = parent
			continue
		}
		return &flagconfig.FieldError{Field: "DataDir", Err: err}
	}
	f, err := os.CreateTemp(dir, ".netwatch-check-*")
	if err != nil {
		return flagconfig.Fieldf("DataDir", "cannot write in %s: %w", dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// Start replays the data directory into the store and starts the committer.
func (s *Service) Start() error { return s.StartContext(context.Background()) }

// StartContext is Start; cancelling ctx interrupts the replay of the data directory
// (the collector was asked to stop while replaying): it returns ctx's error, having
// released the directory, and nothing was written to it but a torn tail's truncation
// and, for damaged files found before, their move to corrupt/ (see damage.go).
// Until it has returned nil, Problems reports the replay's progress and Ingest
// refuses streams (Unavailable); queries may run meanwhile, on what is loaded.
func (s *Service) StartContext(ctx context.Context) error {
	var next uint64
	if s.cfg.DataDir == "" {
		s.log.Warn("no data directory: flows are kept in memory only and a collector restart loses them; acknowledged batches are not durable")
	} else {
		if err := s.Open(); err != nil {
			return err
		}
		unlock := s.release
		var err error
		s.replay.total.Store(replayBytes(s.cfg.DataDir))
		start := time.Now()
		var batches, flows int
		var records int
		next, err = recoverDir(s.cfg.DataDir, s.log, s.losses, s.now(), func(p []byte, _ bool) error {
			s.replay.read.Add(frameHeader + int64(len(p)))
			if records++; records%1024 == 0 && ctx.Err() != nil {
				return fmt.Errorf("replay of %s interrupted: %w", s.cfg.DataDir, context.Cause(ctx))
			}
			r, err := parseRecord(p)
			if err != nil {
				s.log.Warn("durable log: unreadable record skipped", "err", err)
				return errSkipRecord
			}
			switch r.kind {
			case recBatch:
				b := &netwatchv1.FlowBatch{}
				if err := proto.Unmarshal(r.body, b); err != nil {
					s.log.Warn("durable log: undecodable batch skipped", "sensor", r.sensorID, "err", err)
					return errSkipRecord
				}
				// The same checks as a live batch, against the clock it was received
				// at: a log written before they existed may hold a batch that would
				// make the store allocate without bound.
				if err := ValidateBatch(b, time.Unix(0, r.at)); err != nil {
					s.replaySkipped.Add(1)
					if ok, suppressed := s.rejectLog.Allow("replay"); ok {
						s.log.Warn("durable log: invalid batch skipped", "sensor", r.sensorID, "boot", r.bootID,
							"sequence", r.seq, "err", err, "suppressed", suppressed)
					}
					return nil
				}
				batches++
				s.applyBatch(r.sensorID, r.bootID, b, time.Unix(0, r.at))
			case recFlow: // a snapshot from before recFlowBuckets
				d := &netwatchv1.FlowDelta{}
				if err := proto.Unmarshal(r.body, d); err != nil {
					s.log.Warn("durable log: undecodable snapshot flow skipped", "sensor", r.sensorID, "err", err)
					return errSkipRecord
				}
				flows++
				s.store.Apply(r.sensorID, []*netwatchv1.FlowDelta{d}, time.Unix(0, r.at))
			case recFlowBuckets:
				d, buckets, err := parseFlowBuckets(r.body)
				if err != nil {
					s.log.Warn("durable log: undecodable snapshot flow skipped", "sensor", r.sensorID, "err", err)
					return errSkipRecord
				}
				flows++
				s.store.Restore(r.sensorID, d, time.Unix(0, r.at), buckets)
			case recMark:
				loss := &netwatchv1.SpoolLoss{}
				if len(r.body) > 0 && proto.Unmarshal(r.body, loss) != nil {
					loss = nil
				}
				s.mu.Lock()
				bs := s.bootLocked(r.sensorID, r.bootID)
				bs.accepted, bs.applied, bs.lastAt, bs.loss = r.seq, r.seq, time.Unix(0, r.at), loss
				e := s.entryLocked(r.sensorID)
				e.lastSeen = later(e.lastSeen, bs.lastAt)
				s.mu.Unlock()
			}
			return nil
		})
		if err == nil && ctx.Err() != nil {
			err = fmt.Errorf("replay of %s interrupted: %w", s.cfg.DataDir, context.Cause(ctx))
		}
		if err != nil {
			unlock()
			return err
		}
		s.log.Info("durable log replayed", "dir", s.cfg.DataDir, "snapshot_flows", flows, "batches", batches,
			"flows", s.store.Len(), "took", time.Since(start).Round(time.Millisecond))
	}
	w, err := openWAL(walConfig{Dir: s.cfg.DataDir, SegmentBytes: s.cfg.SegmentBytes, SnapshotEvery: s.cfg.SnapshotEvery, Health: s.walHealth},
		next, s.log, s.now, s.capture)
	if err != nil {
		s.release()
		return err
	}
	s.wal = w
	go w.run()
	s.replay.ended.Store(true)
	if s.cfg.DataDir != "" {
		s.losses.refresh()
		s.stopLoss = make(chan struct{})
		go s.watchLosses(s.stopLoss, lossCheckEvery)
	}
	return nil
}

// Open creates and locks the data directory, so that what would stop the
// collector there (a file in the way, no permission, another collector using it)
// is found before it listens. StartContext opens it when Open was not called.
// Release it with Stop (or by a failed StartContext).
func (s *Service) Open() error {
	if s.cfg.DataDir == "" || s.unlock != nil {
		return nil
	}
	if err := os.MkdirAll(s.cfg.DataDir, 0o750); err != nil {
		return &flagconfig.FieldError{Field: "DataDir", Err: err}
	}
	unlock, err := lockDir(s.cfg.DataDir)
	if err != nil {
		return err
	}
	s.unlock = unlock
	return nil
}

// release unlocks the data directory if it is locked.
func (s *Service) release() {
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
}

// EndStreams ends every live sensor stream (they never end by themselves); what
// they queued is still committed and applied.
func (s *Service) EndStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.sensors {
		if e.sess != nil {
			e.sess.stopping = true
			e.sess.cancel()
		}
	}
}

// Stop ends the live streams, commits what is queued and closes the log. Call it
// after the gRPC server has stopped.
func (s *Service) Stop() error {
	s.EndStreams()
	if s.wal == nil {
		s.release() // opened, never started
		return nil
	}
	err := s.wal.close()
	if s.stopLoss != nil {
		close(s.stopLoss)
		s.stopLoss = nil
	}
	s.release()
	return err
}

// WALStats reports group commit so far.
func (s *Service) WALStats() WALStats { return s.wal.stats() }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (s *Service) bootLocked(sensorID, bootID string) *bootState {
	k := [2]string{sensorID, bootID}
	bs := s.boots[k]
	if bs == nil {
		bs = &bootState{}
		s.boots[k] = bs
	}
	return bs
}

func (s *Service) entryLocked(sensorID string) *sensorEntry {
	e := s.sensors[sensorID]
	if e == nil {
		e = &sensorEntry{hello: &netwatchv1.SensorHello{SensorId: sensorID}}
		s.sensors[sensorID] = e
	}
	return e
}

// applyBatch applies a durable batch once: to the store, the dedup mark and the
// registry. It runs on the committer goroutine (or during replay).
func (s *Service) applyBatch(sensorID, bootID string, b *netwatchv1.FlowBatch, at time.Time) {
	s.mu.Lock()
	bs := s.bootLocked(sensorID, bootID)
	if b.GetSequence() <= bs.applied {
		s.mu.Unlock()
		return
	}
	bs.applied = b.GetSequence()
	bs.accepted = max(bs.accepted, bs.applied)
	bs.lastAt = at
	if b.GetLoss() != nil {
		bs.loss = b.GetLoss()
	}
	e := s.entryLocked(sensorID)
	e.lastBatchAt, e.lastSeen = at, later(e.lastSeen, at)
	e.batches++
	if b.GetStats() != nil {
		e.stats = b.GetStats()
	}
	if c := b.GetCreatedAt(); c != nil {
		e.lagMs = at.Sub(c.AsTime()).Milliseconds()
	}
	s.mu.Unlock()
	s.store.Apply(sensorID, b.GetDeltas(), at)
	if s.cfg.DNS != nil && len(b.GetDns()) > 0 {
		s.cfg.DNS(sensorID, b.GetDns())
	}
}

// capture is the snapshot of the state, taken on the committer goroutine.
func (s *Service) capture() func(io.Writer) error {
	now := s.now()
	cutoff := now.Add(-s.cfg.Retention).UnixNano()
	// Each flow with its traffic per bucket (buckets[lo:hi]), so that window
	// questions stay exact across a restart. Copied here, encoded by the writer.
	type snapFlow struct {
		f      store.Flow
		lo, hi int
	}
	// Sized up front: at a million flows, growing by appends would leave garbage
	// of about the copy's size again while the snapshot is written.
	st := s.store.Stats()
	flows := make([]snapFlow, 0, st.Flows+st.Flows/64+16)
	buckets := make([]store.BucketTraffic, 0, st.BucketEntries+st.BucketEntries/64+16)
	s.store.ScanBuckets(func(f *store.Flow) bool { return f.ReceivedAt >= cutoff }, func(f store.Flow, b []store.BucketTraffic) {
		lo := len(buckets)
		buckets = append(buckets, b...)
		flows = append(flows, snapFlow{f, lo, len(buckets)})
	})
	var marks []record
	s.mu.Lock()
	for k, bs := range s.boots {
		if bs.lastAt.UnixNano() < cutoff {
			if e := s.sensors[k[0]]; e == nil || e.sess == nil || e.sess.bootID != k[1] {
				delete(s.boots, k) // forgotten with the flows it fed
			}
			continue
		}
		var body []byte
		if bs.loss != nil {
			body = marshal(bs.loss)
		}
		marks = append(marks, record{kind: recMark, at: bs.lastAt.UnixNano(), seq: bs.applied, sensorID: k[0], bootID: k[1], body: body})
	}
	s.mu.Unlock()
	return func(w io.Writer) error {
		var buf []byte
		var payload, body []byte
		for i := range flows {
			fl := &flows[i]
			body = flowBucketsBody(body[:0], &fl.f, buckets[fl.lo:fl.hi])
			r := record{kind: recFlowBuckets, at: fl.f.ReceivedAt, sensorID: fl.f.SensorID, body: body}
			payload = r.appendPayload(payload[:0])
			buf = appendFrame(buf[:0], payload)
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
		for i := range marks {
			if _, err := w.Write(marks[i].frame()); err != nil {
				return err
			}
		}
		return nil
	}
}

// bearer is the stream's bearer token ("" when it has none).
func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("authorization"); len(v) > 0 {
		return strings.TrimPrefix(v[0], "Bearer ")
	}
	return ""
}

// authorizeOpen checks, when tokens are configured, that a stream that opens
// carries one of them, before anything of it is read: a stream without a valid
// token holds nothing of the collector for longer than that. Which sensor the
// token is for is checked after the hello (authorize).
func (s *Service) authorizeOpen(ctx context.Context) error {
	tokens := *s.tokens.Load()
	if len(tokens) == 0 {
		return nil
	}
	got := []byte(bearer(ctx))
	known := 0
	for _, tok := range tokens { // every one, in constant time each
		known |= subtle.ConstantTimeCompare(got, []byte(tok))
	}
	if known != 1 {
		return status.Error(codes.Unauthenticated, "missing or unknown bearer token (check --token on the sensor and --sensor-token-file on the collector)")
	}
	return nil
}

// authorize checks the sensor's bearer token when tokens are configured.
func (s *Service) authorize(ctx context.Context, sensorID string) error {
	tokens := *s.tokens.Load()
	if len(tokens) == 0 {
		return nil
	}
	want, ok := tokens[sensorID]
	got := bearer(ctx)
	if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return status.Errorf(codes.Unauthenticated, "sensor %q: missing or wrong bearer token (check --token on the sensor and --sensor-token-file on the collector)", sensorID)
	}
	return nil
}

// attach registers sess as the live stream of its sensor id and returns the boot's
// applied mark. A live stream of another boot refuses it; one of the same boot is
// replaced (the sensor reconnected before the collector noticed the old one died).
func (s *Service) attach(ctx context.Context, sess *session, hello *netwatchv1.SensorHello) (uint64, error) {
	for {
		s.mu.Lock()
		e := s.sensors[sess.sensorID]
		if e != nil && e.sess != nil {
			old := e.sess
			if old.bootID != sess.bootID {
				s.mu.Unlock()
				return 0, status.Errorf(codes.AlreadyExists,
					"sensor id %q is already connected (boot %s, since %s); each sensor needs its own --sensor-id",
					sess.sensorID, old.bootID, e.connectedSince.UTC().Format(time.RFC3339))
			}
			old.dead = true
			e.sess = nil
			s.mu.Unlock()
			old.cancel()
			select {
			case <-old.done:
			case <-time.After(10 * time.Second):
				return 0, status.Errorf(codes.Unavailable, "sensor %q: previous stream of this boot did not end", sess.sensorID)
			}
			continue // another stream may have attached meanwhile
		}
		if e == nil {
			if err := s.roomLocked(); err != nil {
				s.mu.Unlock()
				return 0, err
			}
		}
		if err := s.store.AdmitSensor(sess.sensorID); err != nil {
			s.mu.Unlock()
			return 0, status.Errorf(codes.ResourceExhausted, "sensor %q refused: %v", sess.sensorID, err)
		}
		e = s.entryLocked(sess.sensorID)
		e.sess, e.hello = sess, hello
		now := s.now()
		e.connectedSince, e.lastSeen = now, now
		bs := s.bootLocked(sess.sensorID, sess.bootID)
		pending := bs.accepted > bs.applied
		s.mu.Unlock()
		if pending { // a replaced stream's batches are still committing: wait for them
			if err := s.wal.append(nil, nil, nil).wait(ctx); err != nil {
				if err == ctx.Err() {
					return 0, status.Errorf(codes.Unavailable, "sensor %q: stream ended while the durable log could not write", sess.sensorID)
				}
				return 0, status.Errorf(codes.Unavailable, "durable log: %v", err)
			}
		}
		s.mu.Lock()
		applied := bs.applied
		s.mu.Unlock()
		return applied, nil
	}
}

// forgetAfter is how long after it was last heard from a disconnected sensor is
// forgotten: the retention, and a minute for the store to drop its last flows (it
// expires them every --cleanup-interval, at most a minute).
func (s *Service) forgetAfter() time.Duration { return s.cfg.Retention + time.Minute }

// roomLocked makes room in the registry for a new sensor id, or says why there is
// none. It prunes the registry when it is full, and at most once a minute anyway
// (the dedup marks of a sensor that reboots often add up).
func (s *Service) roomLocked() error {
	now := s.now()
	if len(s.sensors) >= s.cfg.MaxSensors || now.Sub(s.lastPrune) >= time.Minute {
		s.pruneLocked(now)
	}
	if len(s.sensors) < s.cfg.MaxSensors {
		return nil
	}
	connected := 0
	var first time.Time // when the first remembered one is forgotten
	for _, e := range s.sensors {
		if e.sess != nil {
			connected++
		} else if t := e.lastSeen.Add(s.forgetAfter()); first.IsZero() || t.Before(first) {
			first = t
		}
	}
	msg := fmt.Sprintf("collector holds its maximum of %d sensors (--max-sensors): %d connected, %d disconnected and remembered while their flows may be in the %v retention window",
		s.cfg.MaxSensors, connected, len(s.sensors)-connected, s.cfg.Retention)
	if !first.IsZero() {
		msg += "; the first of them is forgotten at " + first.UTC().Format(time.RFC3339)
	}
	return status.Error(codes.ResourceExhausted, msg)
}

// pruneLocked forgets the sensors that are disconnected and were last heard from
// more than forgetAfter ago, and the dedup marks (of any sensor) that old but of
// the boot of a live stream.
//
// Forgetting them is safe. Every flow of a sensor was last updated by one of its
// batches, applied at or before its lastSeen; so none is in the retention window
// any more, and the store has dropped them (the minute of forgetAfter). A mark's
// time is that of the last batch it applied, so the marks of such a sensor are as
// old. Without its mark a batch of that boot would be applied again if resent: the
// sensor can only resend a batch it holds unacknowledged, i.e. one applied whose
// ack was lost more than the retention ago; what that batch added has left the
// store with its flows, so nothing is counted twice in what the collector holds.
// A restart already forgets them: a snapshot keeps no mark older than the
// retention (capture). A mark with batches still being committed is kept.
func (s *Service) pruneLocked(now time.Time) {
	s.lastPrune = now
	cutoff := now.Add(-s.forgetAfter())
	for id, e := range s.sensors {
		if e.sess == nil && e.lastSeen.Before(cutoff) {
			delete(s.sensors, id)
		}
	}
	for k, bs := range s.boots {
		if !bs.lastAt.Before(cutoff) || bs.accepted != bs.applied {
			continue
		}
		if e := s.sensors[k[0]]; e == nil || e.sess == nil || e.sess.bootID != k[1] {
			delete(s.boots, k)
		}
	}
}

func (s *Service) detach(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.dead = true
	if e := s.sensors[sess.sensorID]; e != nil && e.sess == sess {
		e.sess = nil
		e.lastSeen = s.now()
	}
}

type pendingAck struct {
	seq   uint64
	entry *walEntry  // nil for a duplicate
	boot  *bootState // the batch's boot, whose marks a failed log write puts back (notApplied)
	// waitApplied: the batch was logged by another stream (a replaced one) and is
	// acknowledged only if the boot's applied mark reaches seq once entry is done. A
	// batch this stream logged is applied when its entry is done without error.
	waitApplied bool
}

// Ingest serves one sensor stream. With tokens, one of them must come with the
// stream; the hello must come within HelloTimeout. A refused stream is logged.
func (s *Service) Ingest(stream netwatchv1.SensorService_IngestServer) (err error) {
	welcomed := false
	defer func() {
		if !welcomed && err != nil {
			s.logRefusal(stream.Context(), err)
		}
	}()
	if !s.replay.ended.Load() {
		return status.Error(codes.Unavailable, replayingMessage)
	}
	if err := s.authorizeOpen(stream.Context()); err != nil {
		return err
	}
	first, err := s.recvHello(stream)
	if err != nil {
		return err
	}
	hello := first.GetHello()
	if hello == nil {
		return status.Error(codes.InvalidArgument, "the first message of a stream must be a hello")
	}
	if err := ValidateHello(hello, s.now()); err != nil { // logged by logRefusal
		return status.Errorf(codes.InvalidArgument, "hello: %v", err)
	}
	if err := s.authorize(stream.Context(), hello.GetSensorId()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	sess := &session{sensorID: hello.GetSensorId(), bootID: hello.GetBootId(), cancel: cancel, done: make(chan struct{}),
		spoolBatches: hello.GetSpoolBatches(), lastSequence: hello.GetLastSequence()}
	if sess.spoolBatches == 0 {
		sess.spoolBatches = DefaultSpoolBatches
	}
	defer close(sess.done)
	applied, err := s.attach(ctx, sess, hello)
	if err != nil {
		return err
	}
	defer s.detach(sess)
	log := s.log.With("sensor", sess.sensorID, "boot", sess.bootID)
	log.Info("sensor connected", "hostname", hello.GetHostname(), "interface", hello.GetInterface(),
		"version", hello.GetVersion(), "applied_through", applied)
	if err := stream.Send(&netwatchv1.IngestResponse{Message: &netwatchv1.IngestResponse_Welcome{
		Welcome: &netwatchv1.IngestWelcome{AppliedThrough: applied, CollectorVersion: s.cfg.Version}}}); err != nil {
		return err
	}
	welcomed = true

	// The receiver appends to the log; this goroutine acknowledges in order once
	// durable. The pending budget (all streams) and the bounded channel (this one)
	// are the flow control: a slow log stops the reads, and gRPC then slows the sensor.
	pending := make(chan pendingAck, 256)
	recvErr := make(chan error, 1)
	go func() {
		defer close(pending)
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			b := req.GetBatch()
			if b == nil || b.GetSequence() == 0 {
				recvErr <- status.Error(codes.InvalidArgument, "expected a batch with a sequence number >= 1")
				return
			}
			if err := ValidateBatch(b, s.now()); err != nil {
				recvErr <- s.reject(sess, b.GetSequence(), err.Error(), false)
				return
			}
			weight := min(max(int64(len(b.GetDeltas())), 1), s.cfg.MaxPendingDeltas)
			if s.pending.Acquire(ctx, weight) != nil {
				return // the stream is ending
			}
			s.holdPending(weight)
			p, err := s.accept(sess, b, weight)
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case pending <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			stopping := sess.stopping
			s.mu.Unlock()
			if stopping {
				log.Info("sensor stream ended: collector stopping")
				return status.Error(codes.Unavailable, "collector stopping")
			}
			if stream.Context().Err() != nil { // the sensor went away (or its link did)
				log.Info("sensor disconnected", "err", context.Cause(stream.Context()))
				return stream.Context().Err()
			}
			log.Info("sensor stream replaced by a newer stream of the same boot")
			return status.Error(codes.Aborted, "stream replaced by a newer stream of the same sensor boot")
		case p, ok := <-pending:
			if !ok {
				var err error
				select {
				case err = <-recvErr: // sent before pending was closed
				default:
					// The receiver stopped because ctx ended (it sends no error then):
					// the ctx.Done case says why. Waiting on recvErr would hang.
					pending = nil
					continue
				}
				if errors.Is(err, io.EOF) {
					log.Info("sensor disconnected")
					return nil
				}
				log.Info("sensor disconnected", "err", err)
				return err
			}
			if p.entry != nil {
				// Not acknowledged until durable; while the log cannot write (a full
				// disk) this waits, and a stream that ends meanwhile goes at once.
				if err := p.entry.wait(ctx); err != nil {
					if err == ctx.Err() {
						continue // the ctx.Done case says why
					}
					s.notApplied(p)
					return status.Errorf(codes.Unavailable, "durable log: %v", err)
				}
			}
			if p.waitApplied {
				s.mu.Lock()
				applied := p.boot.applied
				s.mu.Unlock()
				if applied < p.seq {
					return s.notApplied(p)
				}
			}
			if err := stream.Send(&netwatchv1.IngestResponse{Message: &netwatchv1.IngestResponse_Ack{Ack: &netwatchv1.BatchAck{Sequence: p.seq}}}); err != nil {
				// The sensor went away while its batch was being committed: the
				// stream is gone before the receiver noticed.
				log.Info("sensor disconnected", "err", err)
				return err
			}
		}
	}
}

// recvHello reads the stream's first message, waiting at most HelloTimeout for it.
// On a timeout the Recv goroutine ends with the stream (the handler returns).
func (s *Service) recvHello(stream netwatchv1.SensorService_IngestServer) (*netwatchv1.IngestRequest, error) {
	type result struct {
		m   *netwatchv1.IngestRequest
		err error
	}
	got := make(chan result, 1)
	go func() {
		m, err := stream.Recv()
		got <- result{m, err}
	}()
	t := time.NewTimer(s.cfg.HelloTimeout)
	defer t.Stop()
	select {
	case r := <-got:
		return r.m, r.err
	case <-t.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no hello within %v of opening the stream", s.cfg.HelloTimeout)
	}
}

// refusalReasons name the refusals of a stream before its welcome, by code; other
// errors (the client went away, the collector stops) are not refusals.
var refusalReasons = map[codes.Code]string{
	codes.Unauthenticated:   "bad token",
	codes.DeadlineExceeded:  "no hello in time",
	codes.InvalidArgument:   "bad hello",
	codes.ResourceExhausted: "over the sensor cap",
	codes.AlreadyExists:     "sensor id in use",
	codes.PermissionDenied:  "not allowed",
}

// logRefusal logs a stream refused before its welcome, with the peer's address, at
// most once per peer per 30 s.
func (s *Service) logRefusal(ctx context.Context, err error) {
	st := status.Convert(err)
	reason, ok := refusalReasons[st.Code()]
	if !ok {
		return
	}
	addr := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	s.refusals.Refused(slog.LevelWarn, addr, "refused sensor stream", reason, "err", st.Message(), "code", st.Code().String())
}

// accept dedups a batch and appends a new one to the log. The dedup check and the
// append happen under the lock so a stream that replaces this one sees either the
// batch or its mark, never neither. weight is what the batch holds of the pending
// budget: given back once the batch is applied (or failed), or at once if it is
// not appended.
func (s *Service) accept(sess *session, b *netwatchv1.FlowBatch, weight int64) (pendingAck, error) {
	release := func() {
		s.pendingNow.Add(-weight)
		s.pending.Release(weight)
	}
	seq := b.GetSequence()
	at := s.now()
	var frame []byte
	if s.cfg.DataDir != "" {
		r := record{kind: recBatch, at: at.UnixNano(), seq: seq, sensorID: sess.sensorID, bootID: sess.bootID, body: marshal(b)}
		frame = r.frame()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess.dead {
		release()
		return pendingAck{}, status.Error(codes.Aborted, "stream replaced")
	}
	bs := s.bootLocked(sess.sensorID, sess.bootID)
	if seq <= bs.applied { // a resend of a batch applied before
		release()
		return pendingAck{seq: seq}, nil
	}
	if seq <= bs.accepted {
		// Logged and not yet applied (a replaced stream's): acknowledged once the
		// log has committed what is queued, and only if that applied it.
		release()
		return pendingAck{seq: seq, entry: s.wal.append(nil, nil, nil), boot: bs, waitApplied: true}, nil
	}
	if high := max(bs.accepted, sess.lastSequence); seq > sat.Add(high, sess.spoolBatches) {
		release()
		return pendingAck{}, s.rejectLocked(sess, seq, fmt.Sprintf(
			"sequence %d is more than %d (the spool's capacity in batches) beyond %d, the highest batch of this boot",
			seq, sess.spoolBatches, high), true)
	}
	bs.accepted = seq
	e := s.wal.append(frame, func() { s.applyBatch(sess.sensorID, sess.bootID, b, at) }, release)
	return pendingAck{seq: seq, entry: e, boot: bs}, nil
}

// notApplied is what the acknowledging loop does with a batch that was logged but
// not applied (the log failed): the boot's accepted mark goes back below it, so a
// resend is logged again instead of being taken for a duplicate.
func (s *Service) notApplied(p pendingAck) error {
	s.mu.Lock()
	if bs := p.boot; bs != nil && bs.applied < p.seq {
		bs.accepted = min(bs.accepted, max(bs.applied, p.seq-1))
	}
	s.mu.Unlock()
	return status.Errorf(codes.Unavailable, "batch %d was not applied (the durable log failed); send it again", p.seq)
}

// reject counts a batch refused as invalid against its sensor, logs it (one line
// per sensor a minute) and returns the status that ends the stream: INVALID_ARGUMENT
// with a BatchRejection detail, so the sensor knows which batch and whether to send
// it again (retryable) or drop it.
func (s *Service) reject(sess *session, seq uint64, reason string, retryable bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejectLocked(sess, seq, reason, retryable)
}

func (s *Service) rejectLocked(sess *session, seq uint64, reason string, retryable bool) error {
	s.rejectedBatches.Add(1)
	if e := s.sensors[sess.sensorID]; e != nil {
		e.rejected++
		e.lastRejection, e.lastRejectionAt = fmt.Sprintf("batch %d: %s", seq, reason), s.now()
	}
	if ok, suppressed := s.rejectLog.Allow(sess.sensorID); ok {
		s.log.Warn("batch refused", "sensor", sess.sensorID, "boot", sess.bootID, "sequence", seq, "err", reason,
			"retryable", retryable, "suppressed", suppressed)
	}
	st := status.Newf(codes.InvalidArgument, "batch %d: %s", seq, reason)
	if d, err := st.WithDetails(protoadapt.MessageV1Of(&netwatchv1.BatchRejection{Sequence: seq, Reason: reason, Retryable: retryable})); err == nil {
		st = d
	}
	return st.Err()
}

// Sensors is the registry, sorted by id: every sensor connected or heard from
// within the retention window.
func (s *Service) Sensors() []*netwatchv1.Sensor {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*netwatchv1.Sensor, 0, len(s.sensors))
	for id, e := range s.sensors {
		if e.sess == nil && now.Sub(e.lastSeen) > s.cfg.Retention {
			continue
		}
		interval := time.Duration(e.hello.GetExportIntervalMs()) * time.Millisecond
		if interval <= 0 {
			interval = time.Second
		}
		quiet := e.lastBatchAt
		if e.sess != nil {
			quiet = later(quiet, e.connectedSince)
		}
		v := &netwatchv1.Sensor{
			SensorId: id, Hostname: e.hello.GetHostname(), Interface: e.hello.GetInterface(),
			Version: e.hello.GetVersion(), BootId: e.hello.GetBootId(), Connected: e.sess != nil,
			Stale: now.Sub(quiet) > 3*interval, LagMs: e.lagMs, Batches: e.batches,
			KernelDrops: e.stats.GetKernelDrops(), RejectedBatches: e.rejected, LastRejection: e.lastRejection,
		}
		if !e.lastRejectionAt.IsZero() {
			v.LastRejectionAt = timestamppb.New(e.lastRejectionAt)
		}
		if e.sess != nil {
			v.ConnectedSince = timestamppb.New(e.connectedSince)
		}
		if !e.lastBatchAt.IsZero() {
			v.LastBatchAt = timestamppb.New(e.lastBatchAt)
		}
		for k, bs := range s.boots {
			if k[0] == id && bs.loss != nil {
				v.LostFlows = sat.Add(v.LostFlows, bs.loss.GetFlows())
				v.LostPackets = sat.Add(v.LostPackets, bs.loss.GetPackets())
				v.LostBytes = sat.Add(v.LostBytes, bs.loss.GetBytes())
			}
		}
		if st := e.stats; st != nil {
			var errs uint64
			for _, c := range st.GetDecodeErrors() {
				errs = sat.Add(errs, c.GetValue())
			}
			v.Metrics = &netwatchv1.SystemMetrics{
				Timestamp: v.LastBatchAt, CpuUsage: st.GetCpuPercent(), MemoryUsage: st.GetRssBytes(),
				ActiveFlows: st.GetFlowsActive(), DroppedPackets: sat.Add(st.GetKernelDrops(), v.LostPackets),
				CaptureErrors: errs, InterfaceStatus: st.GetInterfaceStatus(),
			}
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *netwatchv1.Sensor) int { return strings.Compare(a.SensorId, b.SensorId) })
	return out
}

// Loss is one sensor boot's reported spool loss: the window it covers is incomplete.
type Loss struct {
	SensorID, BootID      string
	Flows, Packets, Bytes uint64
	FirstLost, LastLost   time.Time
}

// Losses lists every boot that reported spool loss within the retention window.
func (s *Service) Losses() []Loss {
	cutoff := s.now().Add(-s.cfg.Retention)
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Loss
	for k, bs := range s.boots {
		if bs.loss == nil || bs.loss.GetBatches() == 0 || bs.loss.GetLastLost().AsTime().Before(cutoff) {
			continue
		}
		out = append(out, Loss{SensorID: k[0], BootID: k[1], Flows: bs.loss.GetFlows(), Packets: bs.loss.GetPackets(),
			Bytes: bs.loss.GetBytes(), FirstLost: bs.loss.GetFirstLost().AsTime(), LastLost: bs.loss.GetLastLost().AsTime()})
	}
	return out
}
