// Package export is the last stage of the sensor: it numbers the batches of flow
// deltas the capture loop submits, keeps them in a bounded spool and streams them
// to the collector's SensorService until each is acknowledged (the collector
// acknowledges a batch once it is durable). A broken stream is reopened with jittered
// exponential backoff and every unacknowledged batch is sent again; the collector
// applies each (sensor, boot, sequence) once. When the spool is full the oldest
// batches are dropped and what they held is reported to the collector as SpoolLoss.
package export

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/common/tlsfiles"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/wirelimits"
)

// welcomeTimeout bounds the wait for the collector's answer to the hello.
const welcomeTimeout = 15 * time.Second

// minItemSize is what a spooled batch counts at least (room for its sequence and
// loss): SpoolBytes / minItemSize bounds the batches the spool holds, which the hello
// tells the collector (spool_batches).
const minItemSize = 64

// helloText is s as the collector accepts it: printable UTF-8 (others become '?'),
// at most wirelimits.MaxTextBytes bytes.
func helloText(s string) string {
	var b []byte
	for _, r := range s {
		if !wirelimits.TextRune(r) {
			r = '?'
		}
		if len(b)+utf8.RuneLen(r) > wirelimits.MaxTextBytes {
			break
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// item is one spooled batch.
type item struct {
	seq                   uint64
	batch                 *netwatchv1.FlowBatch
	size                  int64
	flows, packets, bytes uint64
	created               time.Time
}

// Loss is what the spool dropped since the sensor started. Flows counts flow
// updates (deltas) in the dropped batches, not distinct flows: a flow updated in
// several dropped batches counts once in each (SpoolLoss.flows says the same).
type Loss struct {
	Batches, Flows, Packets, Bytes uint64
	// FirstLost and LastLost bound the time the dropped batches covered.
	FirstLost, LastLost time.Time
}

// Stats are the exporter's counters, cumulative since New.
type Stats struct {
	BatchesSubmitted, BatchesSent, BatchesAcked, BatchesDropped uint64
	// BatchesRejected counts batches the collector refused as invalid: dropped (and
	// counted in BatchesDropped and Loss too) rather than sent again forever.
	BatchesRejected uint64
	// SpoolBatches and SpoolBytes are waiting for an acknowledgement now.
	SpoolBatches int
	SpoolBytes   int64
	Connected    bool
	// Connects counts successful stream openings (hello answered).
	Connects uint64
	Loss     Loss
}

// Exporter streams batches to the collector. Submit is safe to call from any
// goroutine; it never blocks on the network.
type Exporter struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	creds  credentials.TransportCredentials
	bootID string
	start  time.Time

	mu         sync.Mutex
	spool      []*item // by sequence
	spoolBytes int64
	seq        uint64
	loss       Loss
	stats      Stats
	changed    chan struct{} // closed and replaced whenever the spool shrinks
	wake       chan struct{} // a new batch for the sender
	token      string        // Config.Token, replaced by SetToken
	retry      chan struct{} // SetToken: end the backoff wait now

	cancel context.CancelFunc
	done   chan struct{}
}

// New validates cfg, loads the TLS files and builds the exporter; it starts nothing.
// now is the clock (time.Now in production).
func New(cfg Config, log *slog.Logger, now func() time.Time) (*Exporter, error) {
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	creds, err := transportCredentials(cfg)
	if err != nil {
		return nil, err
	}
	var b [8]byte
	rand.Read(b[:])
	return &Exporter{cfg: cfg, log: log, now: now, creds: creds, bootID: hex.EncodeToString(b[:]), start: now(),
		changed: make(chan struct{}), wake: make(chan struct{}, 1), token: cfg.Token, retry: make(chan struct{}, 1)}, nil
}

// SetToken replaces the bearer token (Config.Token) while exporting. A stream that
// is open stays open: the collector checks the token when a stream opens. A sensor
// waiting to retry after a refusal retries now.
func (e *Exporter) SetToken(tok string) {
	e.mu.Lock()
	e.token = tok
	e.mu.Unlock()
	select {
	case e.retry <- struct{}{}:
	default:
	}
}

func transportCredentials(cfg Config) (credentials.TransportCredentials, error) {
	if cfg.CAFile == "" {
		return insecure.NewCredentials(), nil
	}
	pool, err := tlsfiles.CertPool("CAFile", cfg.CAFile)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{RootCAs: pool, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	if cfg.CertFile != "" {
		cert, err := tlsfiles.KeyPair("CertFile", cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(tc), nil
}

// BootID is this process's random boot id; batch numbers are per boot.
func (e *Exporter) BootID() string { return e.bootID }

// Start starts the sender goroutine.
func (e *Exporter) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel, e.done = cancel, make(chan struct{})
	go e.run(ctx)
}

// Stop waits until every submitted batch is acknowledged or ctx ends, then stops
// the sender. It returns an error naming what was not acknowledged.
func (e *Exporter) Stop(ctx context.Context) error {
	err := e.Drain(ctx)
	if e.cancel != nil {
		e.cancel()
		<-e.done
	}
	return err
}

// Drain waits until every submitted batch is acknowledged or ctx ends.
func (e *Exporter) Drain(ctx context.Context) error {
	for {
		e.mu.Lock()
		n, ch := len(e.spool), e.changed
		e.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("export: %d batches not acknowledged by the collector: %w", n, ctx.Err())
		}
	}
}

// Pending is what the spool holds now: batches submitted and not acknowledged,
// with the flow updates, packets and IP-layer bytes in them; FirstLost and
// LastLost bound the time they cover. After Stop it is what the collector never
// acknowledged: the spool is in memory, so it ends with the process.
func (e *Exporter) Pending() Loss {
	e.mu.Lock()
	defer e.mu.Unlock()
	var p Loss
	for _, it := range e.spool {
		if p.Batches == 0 || it.created.Add(-e.cfg.Interval).Before(p.FirstLost) {
			p.FirstLost = it.created.Add(-e.cfg.Interval)
		}
		if it.created.After(p.LastLost) {
			p.LastLost = it.created
		}
		p.Batches++
		p.Flows += it.flows
		p.Packets += it.packets
		p.Bytes += it.bytes
	}
	return p
}

// Stats returns the counters.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.stats
	s.SpoolBatches, s.SpoolBytes, s.Loss = len(e.spool), e.spoolBytes, e.loss
	return s
}

// Submit numbers the deltas of one export interval as the next batch, spools it and
// returns; it never waits for the network. dns (at most 8192, what the collector
// accepts in a batch) goes with the deltas. The exporter keeps deltas, dns and
// stats: the caller must not change them afterwards. A batch larger than the
// message cap is split into several, sharing deltas and dns.
func (e *Exporter) Submit(deltas []*netwatchv1.FlowDelta, dns []*netwatchv1.DnsObservation, stats *netwatchv1.SensorStats) {
	now := e.now()
	created := timestamppb.New(now)
	var items []*item
	for _, c := range e.split(deltas, dns, stats) {
		b := &netwatchv1.FlowBatch{CreatedAt: created, Deltas: c.deltas, Dns: c.dns, Stats: stats}
		it := &item{batch: b, size: int64(proto.Size(b)) + minItemSize, flows: uint64(len(c.deltas)), created: now} // + sequence and loss
		for _, d := range c.deltas {
			it.packets += d.GetSrcPackets() + d.GetDstPackets()
			it.bytes += d.GetSrcBytes() + d.GetDstBytes()
		}
		items = append(items, it)
	}
	e.mu.Lock()
	for _, it := range items {
		e.seq++
		it.seq, it.batch.Sequence = e.seq, e.seq
		e.stats.BatchesSubmitted++
		for len(e.spool) > 0 && e.spoolBytes+it.size > e.cfg.SpoolBytes {
			old := e.spool[0]
			e.spool = e.spool[1:]
			e.spoolBytes -= old.size
			e.dropLocked(old)
		}
		if it.size > e.cfg.SpoolBytes { // larger than the whole spool: lost at once
			e.dropLocked(it)
			continue
		}
		e.spool = append(e.spool, it)
		e.spoolBytes += it.size
		// Cumulative loss so far, including what was just dropped to make room.
		if e.loss.Batches > 0 {
			it.batch.Loss = &netwatchv1.SpoolLoss{Batches: e.loss.Batches, Flows: e.loss.Flows, Packets: e.loss.Packets,
				Bytes: e.loss.Bytes, FirstLost: timestamppb.New(e.loss.FirstLost), LastLost: timestamppb.New(e.loss.LastLost)}
		}
	}
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// chunk is one message's share of a Submit.
type chunk struct {
	deltas []*netwatchv1.FlowDelta
	dns    []*netwatchv1.DnsObservation
}

// split cuts deltas and dns into chunks that each fit in a message with room to
// spare: as many as the total size needs, each with an even share of both.
func (e *Exporter) split(deltas []*netwatchv1.FlowDelta, dns []*netwatchv1.DnsObservation, stats *netwatchv1.SensorStats) []chunk {
	limit := e.cfg.MaxMessageBytes / 2
	size := proto.Size(stats) + 128
	for _, o := range dns {
		size += proto.Size(o) + 4
	}
	for _, d := range deltas {
		size += proto.Size(d) + 4
	}
	if size <= limit || len(deltas)+len(dns) <= 1 {
		return []chunk{{deltas, dns}}
	}
	n := (size + limit - 1) / limit
	perD, perO := (len(deltas)+n-1)/n, (len(dns)+n-1)/n
	var out []chunk
	for len(deltas) > 0 || len(dns) > 0 {
		k, m := min(perD, len(deltas)), min(perO, len(dns))
		out = append(out, chunk{deltas[:k:k], dns[:m:m]})
		deltas, dns = deltas[k:], dns[m:]
	}
	return out
}

// dropLocked counts a batch the spool could not keep. It is usually one never sent;
// if it was sent just before the link broke the collector may still have applied it,
// and the loss then over-counts it.
func (e *Exporter) dropLocked(it *item) {
	if e.loss.Batches == 0 || it.created.Add(-e.cfg.Interval).Before(e.loss.FirstLost) {
		e.loss.FirstLost = it.created.Add(-e.cfg.Interval)
	}
	if it.created.After(e.loss.LastLost) {
		e.loss.LastLost = it.created
	}
	e.loss.Batches++
	e.loss.Flows += it.flows
	e.loss.Packets += it.packets
	e.loss.Bytes += it.bytes
	e.stats.BatchesDropped++
	e.signalLocked()
}

func (e *Exporter) signalLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// removeThroughLocked drops spooled batches up to seq (the collector holds them).
func (e *Exporter) removeThroughLocked(seq uint64) {
	i := 0
	for ; i < len(e.spool) && e.spool[i].seq <= seq; i++ {
		e.spoolBytes -= e.spool[i].size
	}
	if i > 0 {
		e.spool = e.spool[i:]
		e.signalLocked()
	}
}

// rejection is the BatchRejection detail of a stream's end, or nil.
func rejection(err error) *netwatchv1.BatchRejection {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil
	}
	for _, d := range st.Details() {
		if r, ok := d.(*netwatchv1.BatchRejection); ok {
			return r
		}
	}
	return nil
}

// rejectLocked drops a batch the collector refused as invalid, counted as loss.
func (e *Exporter) rejectLocked(seq uint64) {
	i := sort.Search(len(e.spool), func(i int) bool { return e.spool[i].seq >= seq })
	if i < len(e.spool) && e.spool[i].seq == seq {
		it := e.spool[i]
		e.spoolBytes -= it.size
		e.spool = append(e.spool[:i], e.spool[i+1:]...)
		e.stats.BatchesRejected++
		e.dropLocked(it)
	}
}

// ackLocked removes an acknowledged batch.
func (e *Exporter) ackLocked(seq uint64) {
	i := sort.Search(len(e.spool), func(i int) bool { return e.spool[i].seq >= seq })
	if i < len(e.spool) && e.spool[i].seq == seq {
		e.spoolBytes -= e.spool[i].size
		if i == 0 { // the usual case: acks come in order
			e.spool = e.spool[1:]
		} else {
			e.spool = append(e.spool[:i], e.spool[i+1:]...)
		}
		e.stats.BatchesAcked++
		e.signalLocked()
	}
}

// nextLocked is the first spooled batch after seq.
func (e *Exporter) nextLocked(after uint64) *item {
	i := sort.Search(len(e.spool), func(i int) bool { return e.spool[i].seq > after })
	if i < len(e.spool) {
		return e.spool[i]
	}
	return nil
}

// run is the sender: one session after another, with backoff in between. It logs
// state changes only: connected, and the first failure after being connected (or
// at start).
func (e *Exporter) run(ctx context.Context) {
	defer close(e.done)
	attempt := 0
	logged := false // "link down" already said since the last "connected"
	said := ""      // the misconfiguration last explained since the last "connected"
	for ctx.Err() == nil {
		welcomed, err := e.session(ctx)
		if ctx.Err() != nil {
			return
		}
		if rej := rejection(err); rej != nil {
			// The collector refused one batch: a bad one is dropped (sending it again
			// would be refused again, forever), one numbered too far ahead is sent
			// again on a new stream, whose hello says how far this boot got.
			if !rej.GetRetryable() {
				e.mu.Lock()
				e.rejectLocked(rej.GetSequence())
				e.mu.Unlock()
			}
			e.log.Error("collector refused a batch", "collector", e.cfg.Collector, "sequence", rej.GetSequence(),
				"reason", rej.GetReason(), "dropped", !rej.GetRetryable())
			attempt, logged, said = 0, false, ""
			select {
			case <-ctx.Done():
				return
			case <-time.After(e.backoff(0)):
			}
			continue
		}
		if welcomed {
			attempt, logged, said = 0, false, ""
		}
		e.mu.Lock()
		e.stats.Connected = false
		spooled := len(e.spool)
		e.mu.Unlock()
		delay := e.backoff(attempt)
		hint := ""
		if !welcomed {
			hint = e.diagnose(ctx, err)
		}
		switch code := status.Code(err); {
		case hint != "":
			// The sensor and the collector disagree on TLS: retrying soon will not help.
			delay = e.cfg.BackoffMax
			if hint != said {
				e.log.Error("cannot talk to the collector: "+hint+"; retrying every "+e.cfg.BackoffMax.String(),
					"collector", e.cfg.Collector, "err", status.Convert(err).Message(), "code", code.String())
				said, logged = hint, true
			} else {
				e.log.Debug("collector still unreachable", "err", err, "retry_in", delay)
			}
		case code == codes.Unauthenticated, code == codes.PermissionDenied, code == codes.AlreadyExists, code == codes.InvalidArgument:
			// Retrying soon will not help: say so once and wait the longest.
			delay = e.cfg.BackoffMax
			if !logged {
				e.log.Error("collector refused this sensor; retrying every "+e.cfg.BackoffMax.String(),
					"collector", e.cfg.Collector, "err", status.Convert(err).Message(), "code", status.Code(err).String())
				logged = true
			}
		default:
			if !logged {
				e.log.Warn("collector link down; spooling batches and retrying", "collector", e.cfg.Collector,
					"err", err, "spooled_batches", spooled)
				logged = true
			} else {
				e.log.Debug("collector still unreachable", "err", err, "retry_in", delay)
			}
		}
		attempt++
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		case <-e.retry:
		}
	}
}

// backoff is min*2^attempt capped at max, with jitter: a uniform delay in [d/2, d].
func (e *Exporter) backoff(attempt int) time.Duration {
	d := e.cfg.BackoffMin
	for range attempt {
		if d >= e.cfg.BackoffMax/2 {
			d = e.cfg.BackoffMax
			break
		}
		d *= 2
	}
	d = min(d, e.cfg.BackoffMax)
	return d/2 + time.Duration(mrand.Int64N(int64(d/2)+1))
}

// session runs one stream until it breaks. welcomed reports whether the collector
// accepted the hello.
func (e *Exporter) session(ctx context.Context) (welcomed bool, err error) {
	conn, err := grpc.NewClient(e.cfg.Collector,
		grpc.WithTransportCredentials(e.creds),
		// The gRPC client pings at most every 10 s; with a 5 s timeout a dead
		// collector is noticed within 15 s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
		grpc.WithDefaultCallOptions(grpc.UseCompressor(gzip.Name), grpc.MaxCallSendMsgSize(e.cfg.MaxMessageBytes)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: e.cfg.BackoffMin, Multiplier: 2, Jitter: 0.2, MaxDelay: e.cfg.BackoffMax},
			MinConnectTimeout: 10 * time.Second}),
	)
	if err != nil {
		return false, fmt.Errorf("collector %s: %w", e.cfg.Collector, err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.mu.Lock()
	token := e.token
	e.mu.Unlock()
	if token != "" {
		sctx = metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+token)
	}
	stream, err := netwatchv1.NewSensorServiceClient(conn).Ingest(sctx)
	if err != nil {
		return false, err
	}
	e.mu.Lock()
	last := e.seq
	e.mu.Unlock()
	hello := &netwatchv1.SensorHello{
		SensorId: e.cfg.SensorID, Hostname: helloText(e.cfg.Hostname), Interface: helloText(e.cfg.Interface), Version: helloText(e.cfg.Version),
		BootId: e.bootID, ExportIntervalMs: uint32(e.cfg.Interval / time.Millisecond), StartedAt: timestamppb.New(e.start),
		SpoolBatches: uint64(e.cfg.SpoolBytes) / minItemSize, LastSequence: last,
	}
	if err := stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Hello{Hello: hello}}); err != nil {
		_, rerr := stream.Recv()
		return false, errors.Join(err, rerr)
	}
	timer := time.AfterFunc(welcomeTimeout, cancel)
	resp, err := stream.Recv()
	timer.Stop()
	if err != nil {
		return false, err
	}
	if resp.GetWelcome() == nil {
		return false, errors.New("collector answered the hello without a welcome")
	}
	applied := resp.GetWelcome().GetAppliedThrough()

	e.mu.Lock()
	e.removeThroughLocked(applied)
	e.stats.Connected = true
	e.stats.Connects++
	spooled := len(e.spool)
	e.mu.Unlock()
	e.log.Info("connected to collector", "collector", e.cfg.Collector, "boot", e.bootID,
		"applied_through", applied, "resending_batches", spooled)

	recvErr := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			if a := resp.GetAck(); a != nil {
				e.mu.Lock()
				e.ackLocked(a.GetSequence())
				e.mu.Unlock()
			}
		}
	}()
	sent := applied
	for {
		e.mu.Lock()
		next := e.nextLocked(sent)
		e.mu.Unlock()
		if next == nil {
			select {
			case <-e.wake:
				continue
			case err := <-recvErr:
				return true, err
			case <-ctx.Done():
				return true, ctx.Err()
			}
		}
		// Never hold the lock while sending: Send blocks when the collector is slow.
		if err := stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: next.batch}}); err != nil {
			cancel()
			return true, errors.Join(err, <-recvErr)
		}
		sent = next.seq
		e.mu.Lock()
		e.stats.BatchesSent++
		e.mu.Unlock()
	}
}
