package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/export"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/output"
	"netwatch.dev/sensor/internal/procstat"
)

// exporter is what the sensor hands each export interval's deltas to (the collector
// link). Submit must not block capture.
type exporter interface {
	Submit(deltas []*netwatchv1.FlowDelta, stats *netwatchv1.SensorStats)
}

// shard is one worker's decoder and flow table; only its own goroutine touches them.
// Decoded packets are handed to the table in batches (AddBatch overlaps the cache
// misses of a batch's lookups); sync hands over a partial batch.
type shard struct {
	dec   decode.Decoder
	pkts  [flow.BatchSize]decode.Packet
	ts    [flow.BatchSize]int64
	n     int
	table *flow.Table
	out   *outputs
	id    int

	exportEvery int64
	lastExport  int64
}

func newShard(id int, cfg config, out *outputs) (*shard, error) {
	t, err := flow.New(cfg.Flow)
	if err != nil {
		return nil, err
	}
	return &shard{id: id, table: t, out: out, exportEvery: int64(cfg.ExportInterval)}, nil
}

// add decodes one frame and counts it into the table.
func (s *shard) add(link decode.LinkType, data []byte, ts int64, vlan uint16, vlanValid bool) {
	var r decode.Result
	if vlanValid {
		r = s.dec.DecodeVLAN(link, data, vlan, &s.pkts[s.n])
	} else {
		r = s.dec.Decode(link, data, &s.pkts[s.n])
	}
	if r.IsIP() {
		s.ts[s.n] = ts
		if s.n++; s.n == len(s.pkts) {
			s.sync()
		}
	}
}

// sync adds the batched packets to the table.
func (s *shard) sync() {
	s.table.AddBatch(s.pkts[:s.n], s.ts[:s.n])
	s.n = 0
}

// maybeExport exports when an export interval has passed since the previous export.
func (s *shard) maybeExport(now int64) {
	if s.lastExport == 0 {
		s.lastExport = now
		return
	}
	if now-s.lastExport >= s.exportEvery {
		s.export(now)
	}
}

func (s *shard) export(now int64) {
	s.sync()
	s.lastExport = now
	s.out.publish(s.id, s.dec.Counters, s.table.Stats())
	s.out.deliver(func(emit func(*flow.Delta)) { s.table.Export(now, emit) })
}

// flush ends every flow (sensor stopped or end of file).
func (s *shard) flush() {
	s.sync()
	s.out.publish(s.id, s.dec.Counters, s.table.Stats())
	s.out.deliver(func(emit func(*flow.Delta)) { s.table.Flush(flow.EndSensorStopped, emit) })
}

// outputs fans deltas out to the JSON-lines writer and the collector link, and keeps
// the shards' latest counters for the sensor's stats.
type outputs struct {
	mu       sync.Mutex
	jsonl    *output.JSONL
	exporter exporter
	captured func() captureCounters // kernel and ring counters (live), nil offline
	iface    string
	dec      []decode.Counters
	tables   []flow.Stats
	cpu      procstat.Sampler
	err      error
	protos   []*netwatchv1.FlowDelta
}

// captureCounters are the capture's own counters.
type captureCounters struct {
	kernelPackets, kernelDrops, freezes uint64
	frames, wireBytes                   uint64
	status                              netwatchv1.InterfaceStatus
}

func newOutputs(shards int, iface string) *outputs {
	return &outputs{dec: make([]decode.Counters, shards), tables: make([]flow.Stats, shards), iface: iface}
}

func (o *outputs) publish(id int, dec decode.Counters, tab flow.Stats) {
	o.mu.Lock()
	o.dec[id], o.tables[id] = dec, tab
	o.mu.Unlock()
}

// deliver runs an export under the lock: table exports are short (the deltas of one
// interval), and one lock keeps JSON lines whole and batches in order.
func (o *outputs) deliver(export func(emit func(*flow.Delta))) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.protos = o.protos[:0]
	export(func(d *flow.Delta) {
		if o.jsonl != nil {
			if err := o.jsonl.Add(d); err != nil && o.err == nil {
				o.err = fmt.Errorf("write flows: %w", err)
			}
		}
		if o.exporter != nil {
			o.protos = append(o.protos, output.FlowDelta(d))
		}
	})
	if o.exporter != nil {
		o.exporter.Submit(o.protos, o.statsLocked(time.Now(), true))
		o.protos = nil // the exporter owns the slice now
	}
}

// stats is the sensor's SensorStats now, without the CPU share (which is measured
// between two batches).
func (o *outputs) stats() *netwatchv1.SensorStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.statsLocked(time.Time{}, false)
}

func (o *outputs) statsLocked(now time.Time, sampleCPU bool) *netwatchv1.SensorStats {
	st := &netwatchv1.SensorStats{Interface: o.iface}
	var frames uint64
	byResult := map[string]uint64{}
	nonIP := map[string]uint64{}
	for _, c := range o.dec {
		frames += c.Frames
		for r := decode.ResultMalformed; r < decode.Result(len(c.ByResult)); r++ {
			byResult[r.String()] += c.ByResult[r]
		}
		for k, n := range c.NonIPKind {
			nonIP[decode.NonIPKind(k).String()] += n
		}
	}
	for _, t := range o.tables {
		st.FlowsActive += uint64(t.Flows)
		st.FlowsEvicted += t.Evicted
		st.Bytes += t.Bytes
	}
	st.Packets = frames
	st.DecodeErrors = counters(byResult)
	st.NonIp = counters(nonIP)
	if o.captured != nil {
		c := o.captured()
		st.KernelPackets, st.KernelDrops, st.QueueFreezes = c.kernelPackets, c.kernelDrops, c.freezes
		st.InterfaceStatus = c.status
	}
	if sampleCPU {
		st.CpuPercent, st.RssBytes = o.cpu.Sample(now)
	} else {
		st.RssBytes = procstat.RSS()
	}
	return st
}

func counters(m map[string]uint64) []*netwatchv1.CounterValue {
	out := make([]*netwatchv1.CounterValue, 0, len(m))
	for _, name := range sortedKeys(m) {
		out = append(out, &netwatchv1.CounterValue{Name: name, Value: m[name]})
	}
	return out
}

// startExporter connects the sensor to its collector when one is configured.
func startExporter(cfg config, out *outputs, log *slog.Logger) (*export.Exporter, error) {
	if cfg.Collector == "" {
		return nil, nil
	}
	exp, err := export.New(cfg.Export, log, time.Now)
	if err != nil {
		return nil, err
	}
	exp.Start()
	out.exporter = exp
	log.Info("exporting", "collector", cfg.Collector, "sensor_id", cfg.SensorID, "boot_id", exp.BootID())
	return exp, nil
}

// stopExporter waits for the collector to acknowledge every batch, at most until ctx ends.
func stopExporter(ctx context.Context, exp *export.Exporter, collector string, log *slog.Logger) error {
	if exp == nil {
		return nil
	}
	err := exp.Stop(ctx)
	st := exp.Stats()
	log.Info("export stopped", "batches_acked", st.BatchesAcked, "batches_dropped", st.BatchesDropped, "spooled", st.SpoolBatches)
	if err != nil {
		return fmt.Errorf("collector %s: %d batches were not acknowledged: %w", collector, st.SpoolBatches, err)
	}
	return nil
}
