package pipeline

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
	"netwatch.dev/sensor/internal/pcapfile"
)

// replay is the offline driver: it reads the capture file through the same decoder
// and flow table as live capture, skipping the records Capture.Filter rejects,
// until the end of the file (with Loop: forever), the first read error, or ctx
// ends. Timestamps are the capture's own unless RebaseTime; Speed paces the
// replay against the wall clock; Loop starts over at the end, shifting time so it
// keeps moving forward. At the end it exports at the newest timestamp read (flows
// past their timeouts end); Stop flushes the rest.
func (p *Pipeline) replay(ctx context.Context) error {
	sh := p.shards[0]
	var (
		offset  int64 // added to every timestamp
		readErr error
		lastTS  int64
	)
	for loop := 0; ; loop++ {
		if loop > 0 {
			p.in.Close()
			var err error
			if p.in, err = openInput(p.cfg.Read); err != nil {
				readErr = err
				break
			}
		}
		first, last, err := replayOnce(ctx, p.cfg, p.in.r, sh, p.flt, &offset, &p.packets)
		if err != nil {
			readErr = err
			break
		}
		lastTS = last + offset
		if !p.cfg.Loop || ctx.Err() != nil || first == 0 {
			break
		}
		// Next round: continue time from where this one ended (plus one export
		// interval, so flows of one round do not merge with the next).
		offset += last - first + int64(p.cfg.Export.Interval)
	}
	p.packets += p.flt.Dropped() // the summary counts every record read
	if lastTS != 0 {
		sh.export(lastTS)
	}
	return readErr
}

// stopRead is Stop's end of a read, once the flows are flushed: the JSON lines are
// flushed, the collector gets until ctx ends to acknowledge every batch, and the
// summary is logged.
func (p *Pipeline) stopRead(ctx context.Context) error {
	if p.out.jsonl != nil {
		if err := p.out.jsonl.Flush(); err != nil {
			return fmt.Errorf("write flows: %w", err)
		}
	}
	if err := p.out.firstErr(); err != nil {
		return err
	}
	if p.ended && p.exp != nil {
		if pend := p.exp.Pending(); pend.Batches > 0 {
			p.log.Info("end of capture: waiting for the collector to acknowledge every batch (SIGTERM or Ctrl-C gives up)",
				"collector", p.cfg.Export.Collector, "pending_batches", pend.Batches)
		}
	}
	if err := p.stopExporter(ctx); err != nil {
		return err
	}
	elapsed := time.Since(p.started)
	st := p.out.stats()
	p.log.Info("read done", "file", p.cfg.Read, "packets", p.packets, "flows_written", jsonlWritten(p.out),
		"elapsed", elapsed.Round(time.Millisecond), "packets_per_second", int64(float64(p.packets)/max(elapsed.Seconds(), 1e-9)),
		"decode_errors", fmtCounters(st.GetDecodeErrors()), "non_ip", fmtCounters(st.GetNonIp()), filteredAttr(p.flt))
	if p.runErr != nil && !errors.Is(p.runErr, context.Canceled) {
		return fmt.Errorf("read %s: %w (the flows decoded before it were kept and written)", p.cfg.Read, p.runErr)
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
func replayOnce(ctx context.Context, cfg Config, r *pcapfile.Reader, sh *shard, flt *pcapfile.Filter, offset *int64, packets *uint64) (first, last int64, err error) {
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
