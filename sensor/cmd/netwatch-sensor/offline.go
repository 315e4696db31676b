package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"netwatch.dev/common/flagconfig"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/output"
	"netwatch.dev/sensor/internal/pcapfile"
)

// runOffline replays a capture file through the same decoder and flow table as live
// capture. Timestamps are the capture's own unless --rebase-time; --speed paces the
// replay against the wall clock; --loop starts over at the end, shifting time so it
// keeps moving forward.
func runOffline(ctx context.Context, cfg config, stdout, stderr io.Writer, log *slog.Logger) error {
	// Open the capture first: a file that is missing or not a capture fails alone.
	in, err := openInput(cfg.Read)
	if err != nil {
		return err
	}
	defer func() { in.Close() }()
	out := newOutputs(1, "file:"+cfg.Read)
	if cfg.Output == "jsonl" {
		out.jsonl = output.NewJSONL(stdout, cfg.SensorID)
	}
	exp, err := startExporter(cfg, out, log)
	if err != nil {
		return err
	}
	attachExporter(ctx, exp)
	sh, err := newShard(0, cfg, out)
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" && cfg.metricsExplicit {
		stopMetrics, err := serveMetrics(cfg.MetricsListen, out, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	flt, err := pcapfile.NewFilter(cfg.Capture.Filter) // --bpf, as libpcap applies it to a file
	if err != nil {
		return err
	}
	start := time.Now()
	out.start()
	var (
		offset  int64 // added to every timestamp
		packets uint64
		readErr error
		lastTS  int64
	)
	for loop := 0; ; loop++ {
		if loop > 0 {
			in.Close()
			if in, err = openInput(cfg.Read); err != nil {
				readErr = err
				break
			}
		}
		var first, last int64
		first, last, err = replayOnce(ctx, cfg, in.r, sh, flt, &offset, &packets)
		if err != nil {
			readErr = err
			break
		}
		lastTS = last + offset
		if !cfg.Loop || ctx.Err() != nil || first == 0 {
			break
		}
		// Next round: continue time from where this one ended (plus one export
		// interval, so flows of one round do not merge with the next).
		offset += last - first + int64(cfg.ExportInterval)
	}
	packets += flt.Dropped() // the summary counts every record read
	if lastTS != 0 {
		sh.export(lastTS)
	}
	sh.flush()
	out.stop()
	if out.jsonl != nil {
		if err := out.jsonl.Flush(); err != nil {
			return fmt.Errorf("write flows: %w", err)
		}
	}
	if err := out.firstErr(); err != nil {
		return err
	}
	// Offline, every batch must reach the collector: at the end of the file wait for
	// all acknowledgements, as long as it takes (Ctrl-C gives up, and the exit status,
	// exitUndelivered, says so). Interrupted earlier (Ctrl-C, SIGTERM), give the collector 5 s, as live.
	drainCtx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		drainCtx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
	} else if exp != nil {
		if p := exp.Pending(); p.Batches > 0 {
			log.Info("end of capture: waiting for the collector to acknowledge every batch (SIGTERM or Ctrl-C gives up)",
				"collector", cfg.Collector, "pending_batches", p.Batches)
		}
	}
	if err := stopExporter(drainCtx, exp, cfg.Collector, log); err != nil {
		return err
	}
	elapsed := time.Since(start)
	st := out.stats()
	log.Info("read done", "file", cfg.Read, "packets", packets, "flows_written", jsonlWritten(out),
		"elapsed", elapsed.Round(time.Millisecond), "packets_per_second", int64(float64(packets)/max(elapsed.Seconds(), 1e-9)),
		"decode_errors", fmtCounters(st.GetDecodeErrors()), "non_ip", fmtCounters(st.GetNonIp()), filteredAttr(flt))
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return fmt.Errorf("read %s: %w (the flows decoded before it were kept and written)", cfg.Read, readErr)
	}
	return nil
}

func jsonlWritten(o *outputs) uint64 {
	if o.jsonl == nil {
		return 0
	}
	return o.jsonl.Written()
}

// input is an open capture: a file, or standard input for "-".
type input struct {
	f *os.File
	r *pcapfile.Reader
}

// openInput opens the capture and reads its header. Standard input may be a pipe:
// the reader only reads forward. Errors are about --read.
func openInput(path string) (*input, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, &flagconfig.FieldError{Field: "Read", Err: err}
		}
	}
	r, err := pcapfile.NewReader(f)
	if err != nil {
		if path != "-" {
			f.Close()
		}
		return nil, &flagconfig.FieldError{Field: "Read", Err: err}
	}
	return &input{f: f, r: r}, nil
}

func (in *input) Close() {
	if in != nil && in.f != os.Stdin {
		in.f.Close()
	}
}

// replayOnce reads the capture once, skipping what flt rejects. It returns the first
// and last capture timestamps.
func replayOnce(ctx context.Context, cfg config, r *pcapfile.Reader, sh *shard, flt *pcapfile.Filter, offset *int64, packets *uint64) (first, last int64, err error) {
	var (
		rec       pcapfile.Record
		wallStart time.Time
	)
	for n := 0; ; n++ {
		if n&4095 == 0 && ctx.Err() != nil {
			return first, last, ctx.Err()
		}
		if err := r.Next(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return first, last, nil
			}
			return first, last, err
		}
		if pass, err := flt.Match(&rec); !pass {
			if err != nil {
				return first, last, fmt.Errorf("packet %d: %w", r.Packets(), err)
			}
			continue
		}
		if first == 0 {
			first = rec.Timestamp
			wallStart = time.Now()
			if cfg.RebaseTime && *offset == 0 {
				*offset = wallStart.UnixNano() - first
			}
		}
		last = max(last, rec.Timestamp)
		if cfg.Speed > 0 {
			due := wallStart.Add(time.Duration(float64(rec.Timestamp-first) / cfg.Speed))
			if wait := time.Until(due); wait > time.Millisecond {
				select {
				case <-time.After(wait):
				case <-ctx.Done():
					return first, last, ctx.Err()
				}
			}
		}
		ts := rec.Timestamp + *offset
		*packets++
		sh.add(rec.LinkType, rec.Data, ts, 0, false)
		sh.maybeExport(ts)
	}
}

// filteredAttr is the summary's count of records --bpf dropped (nothing without --bpf).
func filteredAttr(f *pcapfile.Filter) slog.Attr {
	if f == nil {
		return slog.Attr{}
	}
	return slog.Uint64("filtered", f.Dropped())
}

func fmtCounters(cs []*netwatchv1.CounterValue) string {
	s := ""
	for _, c := range cs {
		if c.GetValue() == 0 {
			continue
		}
		if s != "" {
			s += ","
		}
		s += fmt.Sprintf("%s=%d", c.GetName(), c.GetValue())
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
