package pipeline

import (
	"fmt"
	"slices"
	"sync"
	"time"

	"netwatch.dev/common/flagconfig"
	"netwatch.dev/common/procstat"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/flow"
	"netwatch.dev/sensor/internal/inspect"
	"netwatch.dev/sensor/internal/output"
)

// exporter is what the sensor hands each export interval's deltas to (the collector
// link). Submit must not block capture.
type exporter interface {
	Submit(deltas []*netwatchv1.FlowDelta, dns []*netwatchv1.DnsObservation, stats *netwatchv1.SensorStats)
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
	insp  inspect.Inspector
	// finds are the batch's packets in which the inspector found something,
	// their server names copied (the frames are gone by sync) into names.
	finds []finding
	names []byte
	out   *outputs
	id    int

	exportEvery int64
	lastExport  int64
	// wholeRecords: nothing needs deltas of flows that go on (JSON lines only, no
	// collector), so exports emit only the records that end.
	wholeRecords bool
}

func newShard(id int, cfg Config, out *outputs) (*shard, error) {
	t, err := flow.New(cfg.Flow)
	if err != nil {
		return nil, flagconfig.Under("Flow", err)
	}
	return &shard{id: id, table: t, out: out, exportEvery: int64(cfg.Export.Interval),
		wholeRecords: cfg.Export.Collector == "" && cfg.Deltas == nil,
		// At most one finding per batched packet, with a name of at most
		// 253 bytes: these never grow (each batch's findings are usually few).
		finds: make([]finding, 0, flow.BatchSize), names: make([]byte, 0, flow.BatchSize*253)}, nil
}

// finding is what the inspector found in packet i of the batch; its name is
// shard.names[off:off+n].
type finding struct {
	i, off uint32
	n      uint16
	app    flowmeta.App
}

// add decodes one frame, inspects its payload while the frame is valid and
// counts it into the table.
func (s *shard) add(link decode.LinkType, data []byte, ts int64, vlan uint16, vlanValid bool) {
	var r decode.Result
	p := &s.pkts[s.n]
	if vlanValid {
		r = s.dec.DecodeVLAN(link, data, vlan, p)
	} else {
		r = s.dec.Decode(link, data, p)
	}
	if r.IsIP() {
		if s.insp.Pending() || inspect.Candidate(p, data) { // inlined: bulk payloads stop here
			if app, name := s.insp.Inspect(p, data, ts); app != flowmeta.AppNone {
				s.found(app, name)
			}
		}
		s.ts[s.n] = ts
		if s.n++; s.n == len(s.pkts) {
			s.sync()
		}
	}
}

// found records a finding in the batch's current packet.
func (s *shard) found(app flowmeta.App, name []byte) {
	s.finds = append(s.finds, finding{i: uint32(s.n), off: uint32(len(s.names)), n: uint16(len(name)), app: app})
	s.names = append(s.names, name...)
}

// sync adds the batched packets to the table, then the findings among them.
func (s *shard) sync() {
	s.table.AddBatch(s.pkts[:s.n], s.ts[:s.n])
	for _, f := range s.finds {
		s.table.Annotate(&s.pkts[f.i], f.app, s.names[f.off:f.off+uint32(f.n)])
	}
	s.finds, s.names = s.finds[:0], s.names[:0]
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
	s.out.publish(s.id, s.dec.Counters, s.table.Stats(), &s.insp)
	b := s.out.buffer()
	if s.wholeRecords {
		s.table.ExportEnded(now, b.add)
	} else {
		s.table.Export(now, b.add)
	}
	s.drainDNS(b)
	s.out.work <- b
}

// drainDNS moves the DNS answers the inspector collected into b, for the next
// batch to the collector; without a collector they are dropped (uncounted:
// nothing would take them).
func (s *shard) drainDNS(b *deltaBatch) {
	if s.out.keepDNS {
		s.insp.DrainDNS(b.addDNS)
	} else {
		s.insp.DrainDNS(discardDNS)
	}
}

func discardDNS(*inspect.DNSAnswer) {}

// flush ends every flow (sensor stopped or end of file) and releases the table: it
// is the shard's last use.
func (s *shard) flush() {
	s.sync()
	st := s.table.Stats()
	s.out.publish(s.id, s.dec.Counters, st, &s.insp)
	b := s.out.buffer()
	b.deltas = slices.Grow(b.deltas, st.Flows) // one delta a flow: no regrowing copies
	s.table.Flush(flow.EndSensorStopped, b.add)
	s.drainDNS(b)
	s.out.work <- b
	if err := s.table.Close(); err != nil {
		s.out.setErr(err)
	}
}

// MaxDNSPerBatch bounds the DNS observations of one FlowBatch (what the collector
// accepts); one export of a shard gives one batch, and the answers beyond it are
// dropped and counted (dns_observations_dropped in SensorStats.inspect).
const MaxDNSPerBatch = 8192

// deltaBatch is one export of one shard: the deltas copied out of the table, and
// the DNS answers drained from the inspector.
type deltaBatch struct {
	deltas     []flow.Delta
	dns        []inspect.DNSAnswer
	dnsDropped uint64
}

func (b *deltaBatch) add(d *flow.Delta) { b.deltas = append(b.deltas, *d) }

func (b *deltaBatch) addDNS(a *inspect.DNSAnswer) {
	if len(b.dns) >= MaxDNSPerBatch {
		b.dnsDropped++
		return
	}
	b.dns = append(b.dns, *a)
}

// reset empties b for reuse (dropping its references to names).
func (b *deltaBatch) reset() {
	b.deltas = b.deltas[:0]
	clear(b.dns)
	b.dns = b.dns[:0]
	b.dnsDropped = 0
}

// outputs fans deltas out to the JSON-lines writer and the collector link, and keeps
// the shards' latest counters for the sensor's stats.
//
// A capture worker must get back to its ring quickly: at 2 Mpps a 16 MiB ring holds
// well under 100 ms of 64-byte frames. So a worker only copies its export's deltas
// into a batch (tens of nanoseconds a flow) and hands it to the writer goroutine,
// which turns them into JSON lines or protobufs and submits them. The work queue is
// short, so a writer that falls behind slows the workers (and the kernel's drop
// counter says so) instead of growing memory.
type outputs struct {
	mu       sync.Mutex // guards the counters below and err
	jsonl    *output.JSONL
	exporter exporter
	deltas   func([]flow.Delta)     // Config.Deltas
	captured func() captureCounters // kernel and ring counters (live), nil offline
	iface    string
	dec      []decode.Counters
	tables   []flow.Stats
	insp     [][]inspect.Counter // each shard's inspector counters
	// dnsDropped: DNS answers beyond MaxDNSPerBatch in a shard's export.
	dnsDropped uint64
	cpu        procstat.Sampler
	err        error

	// seed is the Community ID seed (Config.CommunityIDSeed); keepDNS: the
	// shards hand their DNS answers over (there is a collector to send them to).
	// Both are set before the shards start.
	seed    uint16
	keepDNS bool

	work    chan *deltaBatch
	free    chan *deltaBatch
	stopped chan struct{}
}

// captureCounters are the capture's own counters.
type captureCounters struct {
	kernelPackets, kernelDrops, freezes uint64
	status                              netwatchv1.InterfaceStatus
}

func newOutputs(shards int, iface string) *outputs {
	return &outputs{
		dec: make([]decode.Counters, shards), tables: make([]flow.Stats, shards), insp: make([][]inspect.Counter, shards), iface: iface,
		work: make(chan *deltaBatch, 4), free: make(chan *deltaBatch, 4+shards), stopped: make(chan struct{}),
	}
}

// start runs the writer; close the work queue with stop.
func (o *outputs) start() {
	go func() {
		defer close(o.stopped)
		for b := range o.work {
			o.write(b)
			b.reset()
			select {
			case o.free <- b:
			default:
			}
		}
	}()
}

// stop waits until every handed-over export is written. No shard may export after it.
func (o *outputs) stop() {
	close(o.work)
	<-o.stopped
}

func (o *outputs) buffer() *deltaBatch {
	select {
	case b := <-o.free:
		return b
	default:
		return &deltaBatch{}
	}
}

// publish keeps a shard's counters; it runs on the shard's goroutine (the only one
// that may call its inspector).
func (o *outputs) publish(id int, dec decode.Counters, tab flow.Stats, insp *inspect.Inspector) {
	o.mu.Lock()
	o.dec[id], o.tables[id] = dec, tab
	o.insp[id] = insp.Counters(o.insp[id][:0])
	o.mu.Unlock()
}

// write runs on the writer goroutine: it computes what the capture workers leave
// out (the Community IDs, the messages) and hands the batch on.
func (o *outputs) write(b *deltaBatch) {
	deltas := b.deltas
	if b.dnsDropped > 0 {
		o.mu.Lock()
		o.dnsDropped += b.dnsDropped
		o.mu.Unlock()
	}
	var protos []*netwatchv1.FlowDelta
	if o.exporter != nil {
		protos = make([]*netwatchv1.FlowDelta, 0, len(deltas)) // the exporter owns it after Submit
	}
	for i := range deltas {
		d := &deltas[i]
		if o.jsonl != nil {
			if err := o.jsonl.Add(d); err != nil {
				o.setErr(fmt.Errorf("write flows: %w", err))
			}
		}
		if o.exporter != nil {
			protos = append(protos, output.FlowDelta(d, o.seed))
		}
	}
	if o.exporter != nil {
		var dns []*netwatchv1.DnsObservation
		if len(b.dns) > 0 {
			dns = make([]*netwatchv1.DnsObservation, 0, len(b.dns))
			for i := range b.dns {
				if m := output.DNSObservation(&b.dns[i]); m != nil {
					dns = append(dns, m)
				}
			}
		}
		o.exporter.Submit(protos, dns, o.statsNow(time.Now(), true))
	}
	if o.deltas != nil {
		o.deltas(deltas)
	}
}

func (o *outputs) setErr(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

func (o *outputs) firstErr() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// stats is the sensor's SensorStats now, without the CPU share (which is measured
// between two batches).
func (o *outputs) stats() *netwatchv1.SensorStats {
	return o.statsNow(time.Time{}, false)
}

// statsNow builds the SensorStats; sampleCPU measures the CPU share since the previous
// sample (once per batch, on the writer goroutine).
func (o *outputs) statsNow(now time.Time, sampleCPU bool) *netwatchv1.SensorStats {
	o.mu.Lock()
	defer o.mu.Unlock()
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
	insp := map[string]uint64{"dns_observations_dropped": o.dnsDropped}
	for _, cs := range o.insp {
		for _, c := range cs {
			insp[c.Name] += c.Value
		}
	}
	st.Inspect = counters(insp)
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
