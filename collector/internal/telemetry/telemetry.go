// Package telemetry serves the collector's Prometheus metrics (/metrics, text format
// 0.0.4), written with common/promtext like the sensor's: ingest, store, query latency and the
// sensors' lag and loss. Nothing is global: the app builds a Latency and a Handler.
package telemetry

import (
	"bufio"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/promtext"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// LatencyBuckets are the upper bounds (seconds) of the query latency histogram: the
// API's targets are 100 ms (p95) and 1 s for complex filters.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// Endpoint labels one series of the latency histogram.
type Endpoint struct {
	API  string // "rest" or "grpc"
	Name string // REST path or gRPC method
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative; the last is +Inf
	sum    float64
	count  uint64
}

// Latency is the query latency histogram, one series per endpoint. Safe for
// concurrent use.
type Latency struct {
	mu     sync.Mutex
	series map[Endpoint]*histogram
}

// NewLatency pre-creates the series of endpoints, so they export zero before any
// request.
func NewLatency(endpoints ...Endpoint) *Latency {
	l := &Latency{series: map[Endpoint]*histogram{}}
	for _, e := range endpoints {
		l.series[e] = &histogram{counts: make([]uint64, len(LatencyBuckets)+1)}
	}
	return l
}

// Observe records one request. Callers keep the set of endpoints bounded (map
// unknown paths to one label).
func (l *Latency) Observe(e Endpoint, d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(LatencyBuckets, s)
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.series[e]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(LatencyBuckets)+1)}
		l.series[e] = h
	}
	h.counts[i]++
	h.sum += s
	h.count++
}

// Sources are what /metrics reads at each scrape.
type Sources struct {
	Store   *store.Store
	Latency *Latency
	// Sensors is the ingest registry; nil: no sensor series.
	Sensors func() []*netwatchv1.Sensor
	// Counters are further collector counters by Prometheus name (e.g. requests
	// refused by the rate limit), each with its help text.
	Counters []Counter
	// Gauges are further collector gauges, read the same way.
	Gauges []Counter
	// RSS is the collector's resident memory in bytes; nil: not exported.
	RSS func() uint64
}

// Counter is a named, documented counter read at scrape time.
type Counter struct {
	Name, Help string
	Value      func() uint64
}

// Handler serves /metrics.
func Handler(src Sources) http.Handler {
	return promtext.Handler(func(w *promtext.Writer) { write(w, src) })
}

// Write writes every series of src in the text format.
func Write(w *bufio.Writer, src Sources) { write(promtext.New(w), src) }

func write(w *promtext.Writer, src Sources) {
	if src.Store != nil {
		st := src.Store.Stats()
		w.Counter("netwatch_collector_deltas_applied_total", "Flow deltas applied to the store (the ingest rate is its rate()).", st.Deltas)
		w.Counter("netwatch_collector_deltas_rejected_total", "Flow deltas refused by the store (unusable key, or sensor beyond the 65,535th).", st.Rejected)
		w.Counter("netwatch_collector_ingested_packets_total", "Packets (both directions) of the deltas applied.", st.Packets)
		w.Counter("netwatch_collector_ingested_bytes_total", "IP-layer bytes (both directions) of the deltas applied.", st.Bytes)
		w.Gauge("netwatch_collector_store_flows", "Flows held by the store.", uint64(st.Flows))
		w.Gauge("netwatch_collector_store_max_flows", "Flows the store holds at most (--max-flows).", uint64(src.Store.Config().MaxFlows))
		w.Gauge("netwatch_collector_store_bucket_entries", "Per-bucket traffic entries held for window questions.", uint64(st.BucketEntries))
		w.Gauge("netwatch_collector_store_hosts", "Distinct addresses of the stored flows (the host table: about 28 bytes each).", uint64(st.Hosts))
		w.Gauge("netwatch_collector_store_server_names", "Distinct server names (TLS SNI, HTTP Host) the stored flows hold (at most the store's MaxServerNames, 262,144).", uint64(st.ServerNames))
		w.Counter("netwatch_collector_store_names_refused_total", "Server names and application labels not stored because their table was full (the flow kept the one it had, or none).", st.NamesRefused)
		w.Counter("netwatch_collector_store_evictions_total", "Flows evicted because the store was at --max-flows.", st.Evicted)
		w.Counter("netwatch_collector_store_expired_total", "Flows dropped past the retention window.", st.Expired)
	}
	for _, c := range src.Counters {
		w.Counter(c.Name, c.Help, c.Value())
	}
	for _, g := range src.Gauges {
		w.Gauge(g.Name, g.Help, g.Value())
	}
	if src.RSS != nil {
		w.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", src.RSS())
	}
	if src.Sensors != nil {
		writeSensors(w, src.Sensors())
	}
	if src.Latency != nil {
		src.Latency.write(w)
	}
}

func writeSensors(w *promtext.Writer, sensors []*netwatchv1.Sensor) {
	type series struct {
		name, typ, help string
		value           func(*netwatchv1.Sensor) string
	}
	u := func(f func(*netwatchv1.Sensor) uint64) func(*netwatchv1.Sensor) string {
		return func(s *netwatchv1.Sensor) string { return promtext.Uint(f(s)) }
	}
	b := func(f func(*netwatchv1.Sensor) bool) func(*netwatchv1.Sensor) string {
		return func(s *netwatchv1.Sensor) string { return promtext.Bool(f(s)) }
	}
	for _, s := range []series{
		{"netwatch_collector_sensor_connected", "gauge", "1 when the sensor has an ingest stream open.", b((*netwatchv1.Sensor).GetConnected)},
		{"netwatch_collector_sensor_stale", "gauge", "1 when the sensor sent no batch for three export intervals.", b((*netwatchv1.Sensor).GetStale)},
		{"netwatch_collector_sensor_lag_seconds", "gauge", "How far behind the sensor's clock its latest batch arrived.", func(s *netwatchv1.Sensor) string {
			return promtext.Float(float64(s.GetLagMs()) / 1000)
		}},
		{"netwatch_collector_sensor_batches_total", "counter", "Batches received from the sensor.", u((*netwatchv1.Sensor).GetBatches)},
		{"netwatch_collector_sensor_kernel_drops_total", "counter", "Frames the sensor's kernel dropped (full capture ring), as it reported.", u((*netwatchv1.Sensor).GetKernelDrops)},
		{"netwatch_collector_sensor_lost_flows_total", "counter", "Flow updates (deltas, one per flow per batch; not distinct flows) the sensor dropped from a full spool.", u((*netwatchv1.Sensor).GetLostFlows)},
		{"netwatch_collector_sensor_lost_packets_total", "counter", "Packets of the flows the sensor dropped from a full spool.", u((*netwatchv1.Sensor).GetLostPackets)},
		{"netwatch_collector_sensor_rejected_batches_total", "counter", "Batches of the sensor refused as invalid (not logged, not applied).", u((*netwatchv1.Sensor).GetRejectedBatches)},
	} {
		w.Family(s.name, s.typ, s.help)
		for _, v := range sensors {
			w.Sample(s.name, s.value(v), promtext.Label{Name: "sensor", Value: v.GetSensorId()})
		}
	}
}

func (l *Latency) write(w *promtext.Writer) {
	const name = "netwatch_collector_query_duration_seconds"
	w.Family(name, "histogram", "Time to answer a query, by API and endpoint (REST: until the last byte of a CSV download).")
	l.mu.Lock()
	defer l.mu.Unlock()
	keys := make([]Endpoint, 0, len(l.series))
	for e := range l.series {
		keys = append(keys, e)
	}
	slices.SortFunc(keys, func(a, b Endpoint) int {
		if c := strings.Compare(a.API, b.API); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, e := range keys {
		h := l.series[e]
		w.Histogram(name, LatencyBuckets, h.counts, h.sum, h.count, promtext.Label{Name: "api", Value: e.API}, promtext.Label{Name: "endpoint", Value: e.Name})
	}
}
