// Package pipeline is the sensor's packet path and its lifecycle: a live capture
// (AF_PACKET on an interface) or a capture file → decoder → flow tables (one per
// capture worker) → outputs (JSON lines, the collector link), and the Prometheus
// endpoint.
//
// New validates and builds everything (flow tables, the exporter with its TLS
// files, the open capture file or the checked capture configuration, the outputs)
// and starts nothing; Start opens the capture, starts the exporter, listens for
// metrics and starts capturing or reading; Stop stops them in reverse order and
// waits. A step that fails undoes the steps before it.
package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/export"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/output"
	"netwatch.dev/sensor/internal/pcapfile"
)

// Config of a pipeline. Start from the components' DefaultConfig functions for
// Capture, Flow and Export. Errors name the fields (*flagconfig.FieldError).
type Config struct {
	// Read is the capture file (pcap or pcapng; "-": standard input) to read
	// instead of capturing live on Capture.Interface.
	Read string
	// Output "jsonl" prints the flows as JSON lines on New's stdout; empty: none.
	Output string
	// Speed paces a Read against the wall clock (1: the capture's own timing,
	// 10: ten times as fast); 0: as fast as possible.
	Speed float64
	// Loop reads the file again at its end, forever; each round's time follows the
	// previous round's (one export interval later).
	Loop bool
	// RebaseTime shifts the timestamps of a Read so it starts now.
	RebaseTime bool
	// MetricsListen is the address of the Prometheus /metrics endpoint; empty: none.
	MetricsListen string
	// Deltas, when set, receives the deltas of every export (and of the final
	// flush) on the writer goroutine, after the JSON lines and the collector link; it
	// must not keep the slice. Exports then carry the deltas of the flows that go on,
	// as they do for a collector.
	Deltas func([]flow.Delta)
	// CommunityIDSeed seeds the flows' Community IDs (FlowDelta.community_id and
	// the JSON lines' communityId); 0 is the spec's default.
	CommunityIDSeed uint16

	// Capture: live, the interface, its rings and workers; both modes: Filter (--bpf).
	Capture capture.Config
	Flow    flow.Config
	// Export is the collector link when Export.Collector is set; Export.Interval is
	// how often flows are exported in either case, and Export.SensorID names the
	// sensor in JSON lines too.
	Export export.Config
}

// StopTimeout is how long Run gives the collector to acknowledge what it lacks
// when capture stops (live) or the read is interrupted.
const StopTimeout = 5 * time.Second

// Pipeline is a sensor's pipeline, built (New) or running (Start).
type Pipeline struct {
	cfg        Config
	log        *slog.Logger
	out        *outputs
	shards     []*shard
	exp        *export.Exporter // nil without a collector
	expStopped bool
	in         *input           // the capture file (Read)
	flt        *pcapfile.Filter // Capture.Filter on the file's records (Read)

	capt        *capture.Capture // live, opened by Start
	stopMetrics func()

	started time.Time
	cancel  context.CancelFunc
	done    chan struct{}
	// Set by the capturing or reading goroutine before it closes done:
	runErr  error
	ended   bool   // the capture or the file ended by itself (not by Start's ctx or Stop)
	packets uint64 // records read from the file
}

// New validates cfg and builds the pipeline: it opens the capture file and reads
// its header (Read), or checks the capture configuration, the interface and the
// permission to open packet sockets (live); it builds the outputs and the exporter
// (loading its TLS files) and allocates the flow tables. It starts nothing. What it
// built is released by Stop after Start, or by Close.
func New(cfg Config, log *slog.Logger, stdout io.Writer) (_ *Pipeline, err error) {
	switch {
	case cfg.Output != "" && cfg.Output != "jsonl":
		return nil, flagconfig.Fieldf("Output", "%q is not supported (use jsonl)", cfg.Output)
	case cfg.Export.Interval <= 0:
		return nil, flagconfig.Fieldf("Export.Interval", "must be > 0, got %v", cfg.Export.Interval)
	}
	p := &Pipeline{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			p.release()
		}
	}()
	workers, iface := cfg.Capture.Workers, cfg.Capture.Interface
	if cfg.Read != "" {
		// The capture file first: a file that is missing or not a capture fails alone.
		if p.in, err = openInput(cfg.Read); err != nil {
			return nil, err
		}
		// --bpf, as libpcap applies it to a file.
		if p.flt, err = pcapfile.NewFilter(cfg.Capture.Filter); err != nil {
			return nil, &flagconfig.FieldError{Field: "Capture.Filter", Err: err}
		}
		workers, iface = 1, "file:"+cfg.Read
	} else if err = capture.Preflight(cfg.Capture); err != nil {
		return nil, flagconfig.Under("Capture", err)
	}
	p.out = newOutputs(workers, iface)
	p.out.deltas = cfg.Deltas
	p.out.seed, p.out.keepDNS = cfg.CommunityIDSeed, cfg.Export.Collector != ""
	if cfg.Output == "jsonl" {
		p.out.jsonl = output.NewJSONL(stdout, cfg.Export.SensorID, cfg.CommunityIDSeed)
	}
	if cfg.Export.Collector != "" {
		if p.exp, err = export.New(cfg.Export, log, time.Now); err != nil {
			return nil, flagconfig.Under("Export", err)
		}
	}
	for i := range workers {
		sh, err := newShard(i, cfg, p.out)
		if err != nil {
			return nil, err
		}
		p.shards = append(p.shards, sh)
	}
	return p, nil
}

// Exporter is the collector link (nil without Export.Collector); it exports from Start on.
func (p *Pipeline) Exporter() *export.Exporter { return p.exp }

// Close releases what New built (the flow tables, the capture file) without
// starting: --check builds what a run would and closes it. Not after Start.
func (p *Pipeline) Close() error { return p.release() }

// Start opens the capture (live), starts the exporter, listens for metrics and
// captures or reads until ctx ends, the capture file ends, the capture fails or
// Stop. When a step fails Start undoes the steps before it and releases what New
// built: the pipeline then holds nothing (no Stop, no Close). Start may be called
// once.
func (p *Pipeline) Start(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			p.release()
		}
	}()
	live := p.cfg.Read == ""
	if live {
		capt, err := capture.Open(p.cfg.Capture)
		if err != nil {
			return flagconfig.Under("Capture", err)
		}
		p.capt = capt
		p.out.captured = func() captureCounters { return countersOf(capt.Stats()) }
	}
	p.startExporter()
	if p.cfg.MetricsListen != "" {
		if p.stopMetrics, err = serveMetrics(p.cfg.MetricsListen, p.out.stats, p.log); err != nil {
			return err
		}
	}
	if live {
		c := p.cfg.Capture
		p.log.Info("capturing", "interface", c.Interface, "workers", c.Workers,
			"ring_bytes_per_worker", c.BlockSize*c.NumBlocks, "filter", c.Filter)
	}
	p.started = time.Now()
	p.out.start()
	ctx, p.cancel = context.WithCancel(ctx)
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		if live {
			p.runErr = p.capt.Run(ctx, func(worker int) capture.Handler { return liveHandler{p.shards[worker]} })
		} else {
			p.runErr = p.replay(ctx)
		}
		p.ended = ctx.Err() == nil
	}()
	return nil
}

// Done is closed when capturing or reading has ended: at the end of the capture
// file (or where it broke), when the capture failed, or when Start's ctx ended.
func (p *Pipeline) Done() <-chan struct{} { return p.done }

// Stop stops capturing or reading if it has not ended, ends every flow (end reason
// sensor-stopped) and writes it out, waits for the collector to acknowledge every
// batch at most until ctx ends, then stops the exporter, the metrics endpoint and
// the capture (reverse order of Start) and closes the capture file. It returns the
// run's error: the capture's or the file's, a write error, or an *UndeliveredError
// when the collector lacks data.
func (p *Pipeline) Stop(ctx context.Context) error {
	if p.cancel == nil { // not started, or Start failed
		return p.Close()
	}
	p.cancel()
	<-p.done
	// No worker or reader touches its shard any more.
	for _, sh := range p.shards {
		sh.flush()
	}
	p.out.stop()
	var err error
	if p.cfg.Read == "" {
		err = p.stopLive(ctx)
	} else {
		err = p.stopRead(ctx)
	}
	p.release()
	return err
}

// Run is Start, then Stop once capturing or reading has ended: live when ctx ends,
// reading at the end of the file (or when ctx ends). At the end of the file the
// collector gets as long as it takes to acknowledge every batch (ctx ending gives
// up); live, or with the read interrupted, it gets StopTimeout.
func (p *Pipeline) Run(ctx context.Context) error {
	if err := p.Start(ctx); err != nil {
		return err
	}
	<-p.Done()
	drain := ctx
	if p.cfg.Read == "" || ctx.Err() != nil {
		var cancel context.CancelFunc
		drain, cancel = context.WithTimeout(context.Background(), StopTimeout)
		defer cancel()
	}
	return p.Stop(drain)
}

// release undoes, in reverse order, whatever of Start and New is still held: the
// metrics endpoint, the exporter, the capture, the flow tables, the capture file.
// It may run more than once; it returns the errors of releasing the flow tables.
func (p *Pipeline) release() error {
	if p.stopMetrics != nil {
		p.stopMetrics()
		p.stopMetrics = nil
	}
	p.abortExporter()
	if p.capt != nil {
		p.capt.Close()
		p.capt = nil
	}
	var errs []error
	for _, sh := range p.shards {
		errs = append(errs, sh.table.Close())
	}
	p.in.Close()
	p.in = nil
	return errors.Join(errs...)
}

// Counters are each flow table's decoder and table counters (one per capture
// worker; one reading a file) as of its latest export; after Stop, the final ones.
func (p *Pipeline) Counters() ([]decode.Counters, []flow.Stats) {
	o := p.out
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]decode.Counters(nil), o.dec...), append([]flow.Stats(nil), o.tables...)
}
