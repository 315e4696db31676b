package query

import (
	"context"
	"math"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/common/procstat"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// MetricsPoint is one second of SystemMetrics, as recorded.
type MetricsPoint struct {
	CPU              float64 // percent of one core
	Memory           uint64  // resident bytes
	ActiveFlows      uint64
	PacketsPerSecond uint64
	BytesPerSecond   uint64
	Dropped, Errors  uint64 // cumulative
}

// point is a MetricsPoint in the ring: 48 bytes (timestamp, CPU, memory, flows, rates,
// and 64-bit cumulative drop and error counters, which 32 bits would wrap). t is the unix
// second, 0 for a slot never written.
type point struct {
	t           uint32
	cpu         float32
	flows, pps  uint32 // saturated at 2^32-1
	mem, bps    uint64
	drops, errs uint64
}

func sat32(v uint64) uint32 { return uint32(min(v, math.MaxUint32)) }

// series is one ring of per-second points, indexed by unix second modulo its size.
type series struct {
	pts  []point
	last int64 // unix second of the newest point
}

// MetricsHistory keeps a point per second per series (collector-wide, and one per
// sensor) for a fixed span, and answers downsampled queries. Safe for concurrent use.
type MetricsHistory struct {
	span   int // seconds kept
	mu     sync.Mutex
	series map[string]*series // "" is the collector-wide series
}

// NewMetricsHistory keeps span (rounded up to a second, at least an hour so every
// history duration can be answered) of points per series.
func NewMetricsHistory(span time.Duration) *MetricsHistory {
	span = max(span, time.Hour)
	return &MetricsHistory{span: int((span + time.Second - 1) / time.Second), series: map[string]*series{}}
}

// Record stores the collector-wide point of the second now falls in; a second
// recorded twice keeps the later point.
func (h *MetricsHistory) Record(now time.Time, p MetricsPoint) { h.RecordSensor(now, "", p) }

// RecordSensor stores one sensor's point of the second now falls in.
func (h *MetricsHistory) RecordSensor(now time.Time, sensorID string, p MetricsPoint) {
	sec := now.Unix()
	if sec <= 0 || sec > math.MaxUint32 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[sensorID]
	if s == nil {
		s = &series{pts: make([]point, h.span)}
		h.series[sensorID] = s
	}
	s.pts[sec%int64(h.span)] = point{
		t: uint32(sec), cpu: float32(p.CPU), flows: sat32(p.ActiveFlows), pps: sat32(p.PacketsPerSecond),
		mem: p.Memory, bps: p.BytesPerSecond, drops: p.Dropped, errs: p.Errors,
	}
	s.last = max(s.last, sec)
}

// Latest is the newest point of a series and its second, for GET /api/v1/metrics.
func (h *MetricsHistory) Latest(sensorID string) (MetricsPoint, time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[sensorID]
	if s == nil {
		return MetricsPoint{}, time.Time{}, false
	}
	p := &s.pts[s.last%int64(h.span)]
	if int64(p.t) != s.last {
		return MetricsPoint{}, time.Time{}, false
	}
	return MetricsPoint{
		CPU: float64(p.cpu), Memory: p.mem, ActiveFlows: uint64(p.flows), PacketsPerSecond: uint64(p.pps),
		BytesPerSecond: p.bps, Dropped: p.drops, Errors: p.errs,
	}, time.Unix(s.last, 0).UTC(), true
}

// DroppedIncrease is how much a series' cumulative drops grew over the seconds
// (now-window, now]: the newest point's drops minus the oldest's in that span (0 with
// fewer than two points, or when the counter went back, e.g. a sensor restart).
func (h *MetricsHistory) DroppedIncrease(sensorID string, now time.Time, window time.Duration) uint64 {
	end := now.Unix()
	start := end - int64(window/time.Second) + 1
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[sensorID]
	if s == nil {
		return 0
	}
	var first, last *point
	for sec := max(start, 1); sec <= end; sec++ {
		p := &s.pts[sec%int64(h.span)]
		if int64(p.t) != sec {
			continue
		}
		if first == nil {
			first = p
		}
		last = p
	}
	if first == nil || last.drops < first.drops {
		return 0
	}
	return last.drops - first.drops
}

// forget drops the series not recorded since before cutoff (unix seconds).
func (h *MetricsHistory) forget(cutoff int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, s := range h.series {
		if id != "" && s.last < cutoff {
			delete(h.series, id)
		}
	}
}

// Query returns the series' points of the seconds (now-duration, now], downsampled to
// one per interval, oldest first. Intervals are aligned to multiples of interval in
// unix time and stamped with their start; one with no recorded second is left out.
// Downsampling: cpu, packets and bytes per second are averaged over the recorded
// seconds; memory is the maximum (the peak matters for a memory cap); active flows,
// drops and errors are the last value (a gauge and two cumulative counters).
func (h *MetricsHistory) Query(sensorID string, now time.Time, duration, interval time.Duration) []*netwatchv1.SystemMetrics {
	iv := max(int64(interval/time.Second), 1)
	end := now.Unix()
	start := end - int64(duration/time.Second) + 1
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.series[sensorID]
	out := []*netwatchv1.SystemMetrics{}
	if s == nil {
		return out
	}
	var (
		cur          *netwatchv1.SystemMetrics
		group, n     int64
		cpu          float64
		pps, bps     uint64
		flushPending = func() {
			if cur != nil {
				cur.CpuUsage = cpu / float64(n)
				cur.PacketsPerSecond = pps / uint64(n)
				cur.BytesPerSecond = bps / uint64(n)
				out = append(out, cur)
				cur = nil
			}
		}
	)
	for sec := start; sec <= end; sec++ {
		if sec <= 0 {
			continue
		}
		p := &s.pts[sec%int64(h.span)]
		if int64(p.t) != sec {
			continue
		}
		if g := sec - sec%iv; cur == nil || g != group {
			flushPending()
			group, n, cpu, pps, bps = g, 0, 0, 0, 0
			cur = &netwatchv1.SystemMetrics{Timestamp: timestamppb.New(time.Unix(g, 0))}
		}
		n++
		cpu += float64(p.cpu)
		pps += uint64(p.pps)
		bps += p.bps
		cur.MemoryUsage = max(cur.MemoryUsage, p.mem)
		cur.ActiveFlows, cur.DroppedPackets, cur.CaptureErrors = uint64(p.flows), p.drops, p.errs
	}
	flushPending()
	return out
}

// History is the service's metrics history, for the app's once-a-second recorder.
func (s *Service) History() *MetricsHistory { return s.history }

// GetMetricsHistory is GET /api/v1/metrics/history.
func (s *Service) GetMetricsHistory(_ context.Context, req *netwatchv1.GetMetricsHistoryRequest) (*netwatchv1.GetMetricsHistoryResponse, error) {
	duration, err := parseChoice("duration", req.GetDuration(), 15*time.Minute, 5*time.Minute, 15*time.Minute, time.Hour)
	if err != nil {
		return nil, err
	}
	interval, err := parseChoice("interval", req.GetInterval(), 5*time.Second, time.Second, 5*time.Second, 30*time.Second, time.Minute)
	if err != nil {
		return nil, err
	}
	return &netwatchv1.GetMetricsHistoryResponse{
		Metrics:  s.history.Query(req.GetSensor(), s.now(), duration, interval),
		Interval: formatDuration(interval),
		Duration: formatDuration(duration),
	}, nil
}

// parseChoice reads a duration that must be one of choices; empty is def.
func parseChoice(param, v string, def time.Duration, choices ...time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	for _, c := range choices {
		if err == nil && d == c {
			return d, nil
		}
	}
	names := ""
	for i, c := range choices {
		if i > 0 {
			names += ", "
		}
		names += formatDuration(c)
	}
	return 0, paramError(param, "%q is not one of %s", v, names)
}

// sampler turns the store's cumulative counters and the runtime's CPU time into
// per-second rates between two samples.
type sampler struct {
	mu             sync.Mutex
	at             time.Time
	packets, bytes uint64
	cpuSeconds     float64
	havePrevious   bool
}

// cpuUsed is the CPU time this process has used (user + system, from /proc), in
// seconds. (The Go runtime's /cpu/classes metrics are estimates refreshed only at
// garbage collections: between two GCs they stand still and the collector read 0 %.)
func (sm *sampler) cpuUsed() float64 { return procstat.CPUTime().Seconds() }

// SampleMetrics records the points of the second now falls in; the app calls it once
// a second. The collector-wide point is: CPU of the collector process (the Go
// runtime's estimate) plus the sensors' reported CPU; memory of the collector (RSS)
// plus the sensors'; the stored flows; packets and bytes per second applied to the
// store since the previous call; the sensors' cumulative drops and errors summed. Each
// sensor in the registry with metrics gets its own point, as it reported it.
func (s *Service) SampleMetrics(now time.Time) {
	st := s.store.Stats()
	sm := &s.sampler
	sm.mu.Lock()
	cpu := sm.cpuUsed()
	p := MetricsPoint{Memory: procstat.RSS(), ActiveFlows: uint64(st.Flows)}
	if sm.havePrevious {
		if secs := now.Sub(sm.at).Seconds(); secs > 0 {
			p.PacketsPerSecond = uint64(float64(st.Packets-sm.packets) / secs)
			p.BytesPerSecond = uint64(float64(st.Bytes-sm.bytes) / secs)
			p.CPU = max(cpu-sm.cpuSeconds, 0) / secs * 100
		}
	}
	sm.at, sm.packets, sm.bytes, sm.cpuSeconds, sm.havePrevious = now, st.Packets, st.Bytes, cpu, true
	sm.mu.Unlock()

	if s.sensors != nil {
		for _, sensor := range s.sensors.Sensors() {
			m := sensor.GetMetrics()
			if m == nil {
				continue
			}
			p.CPU += m.GetCpuUsage()
			p.Memory += m.GetMemoryUsage()
			p.Dropped += m.GetDroppedPackets()
			p.Errors += m.GetCaptureErrors()
			s.history.RecordSensor(now, sensor.GetSensorId(), MetricsPoint{
				CPU: m.GetCpuUsage(), Memory: m.GetMemoryUsage(), ActiveFlows: m.GetActiveFlows(),
				PacketsPerSecond: m.GetPacketsPerSecond(), BytesPerSecond: m.GetBytesPerSecond(),
				Dropped: m.GetDroppedPackets(), Errors: m.GetCaptureErrors(),
			})
		}
	}
	s.history.Record(now, p)
	if now.Unix()%60 == 0 {
		s.history.forget(now.Add(-time.Duration(s.history.span) * time.Second).Unix())
	}
}
