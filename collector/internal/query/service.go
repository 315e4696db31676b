// Package query implements netwatch.v1.QueryService over the flow store.
package query

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/enrich"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/procstat"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// Service answers queries. It is safe for concurrent use.
type Service struct {
	netwatchv1.UnimplementedQueryServiceServer
	store   *store.Store
	version string
	now     func() time.Time
	sensors SensorRegistry  // nil until SetSensors; see sensors.go
	history *MetricsHistory // see history.go
	// problems are the collector's own faults (nil until SetProblems); see sensors.go
	problems func() []Problem
	sampler  sampler
	// topCache, when set, keeps top-talkers answers briefly (CacheTopTalkers).
	topCache *topCache
	// enricher names addresses (nil until SetEnricher: nothing known).
	enricher enrich.Enricher
}

// New builds a Service; now is the clock (time.Now in production).
func New(st *store.Store, version string, now func() time.Time) *Service {
	return &Service{store: st, version: version, now: now, history: NewMetricsHistory(st.Config().Retention)}
}

// GetHealth reports the collector's health, with the reasons it is not healthy (see
// addSensorHealth).
func (s *Service) GetHealth(context.Context, *netwatchv1.GetHealthRequest) (*netwatchv1.GetHealthResponse, error) {
	resp := &netwatchv1.GetHealthResponse{Timestamp: timestamppb.New(s.now()), Version: s.version}
	s.addSensorHealth(resp)
	return resp, nil
}

// ListFlows filters, sorts and pages the stored flows.
func (s *Service) ListFlows(_ context.Context, req *netwatchv1.ListFlowsRequest) (*netwatchv1.ListFlowsResponse, error) {
	fq, err := ParseFlowQuery(req)
	if err != nil {
		return nil, err
	}
	page, total := s.store.Query(fq.Filter(s.now(), s.store.Config().Retention), fq.Order(), fq.Offset, fq.Limit)
	resp := &netwatchv1.ListFlowsResponse{
		Flows: make([]*netwatchv1.NetworkFlow, 0, len(page)),
		Pagination: &netwatchv1.Pagination{
			TotalCount: uint64(total), HasMore: fq.Offset+len(page) < total,
			Limit: uint32(fq.Limit), Offset: uint64(fq.Offset),
		},
	}
	for i := range page {
		resp.Flows = append(resp.Flows, ToNetworkFlow(&page[i]))
	}
	return resp, nil
}

// GetMetrics is GET /api/v1/metrics: Metrics, or with sensor SensorMetrics.
func (s *Service) GetMetrics(_ context.Context, req *netwatchv1.GetMetricsRequest) (*netwatchv1.GetMetricsResponse, error) {
	if id := req.GetSensor(); id != "" {
		m, err := s.SensorMetrics(id)
		if err != nil {
			return nil, err
		}
		return &netwatchv1.GetMetricsResponse{Metrics: m}, nil
	}
	return &netwatchv1.GetMetricsResponse{Metrics: s.Metrics()}, nil
}

// Metrics are the collector-wide metrics now: the newest point of the once-a-second
// history (CPU and memory of the collector plus the sensors', ingest rates, the
// sensors' drops and errors), with the stored flows and the collector's memory read
// now.
func (s *Service) Metrics() *netwatchv1.SystemMetrics {
	m := &netwatchv1.SystemMetrics{Timestamp: timestamppb.New(s.now())}
	if p, _, ok := s.history.Latest(""); ok {
		fillPoint(m, p)
	}
	m.MemoryUsage = max(m.MemoryUsage, procstat.RSS())
	m.ActiveFlows = uint64(s.store.Len())
	return m
}

// SensorMetrics are what sensor id last reported (its registry entry, rates from its
// history); an unknown sensor is NOT_FOUND naming the parameter.
func (s *Service) SensorMetrics(id string) (*netwatchv1.SystemMetrics, error) {
	var m *netwatchv1.SystemMetrics
	if s.sensors != nil {
		for _, v := range s.sensors.Sensors() {
			if v.GetSensorId() == id {
				m = v.GetMetrics()
				if m == nil {
					m = &netwatchv1.SystemMetrics{Timestamp: v.GetLastBatchAt()}
				}
				break
			}
		}
	}
	p, at, ok := s.history.Latest(id)
	switch {
	case m == nil && !ok:
		return nil, paramStatus(codes.NotFound, "sensor", "no sensor %q within the retention window", id)
	case m == nil:
		m = &netwatchv1.SystemMetrics{Timestamp: timestamppb.New(at)}
		fillPoint(m, p)
	case ok:
		m.PacketsPerSecond, m.BytesPerSecond = p.PacketsPerSecond, p.BytesPerSecond
	}
	return m, nil
}

func fillPoint(m *netwatchv1.SystemMetrics, p MetricsPoint) {
	m.CpuUsage, m.MemoryUsage, m.ActiveFlows = p.CPU, p.Memory, p.ActiveFlows
	m.PacketsPerSecond, m.BytesPerSecond = p.PacketsPerSecond, p.BytesPerSecond
	m.DroppedPackets, m.CaptureErrors = p.Dropped, p.Errors
}

// Filter is q's filters for the store, the one test of every flow query (ListFlows,
// the CSV download, live subscriptions); flows received before now minus the
// retention are left out even if Expire has not run yet.
func (q *FlowQuery) Filter(now time.Time, retention time.Duration) store.Filter {
	return store.Filter{
		Src: q.Src, Dst: q.Dst, Protocol: q.Protocol, Port: q.Port, Start: q.Start, End: q.End,
		Sensor: q.Sensor, Status: q.Status, ReceivedSince: now.Add(-retention).UnixNano(),
	}
}

// Order is q's sort order for the store.
func (q *FlowQuery) Order() store.Order {
	by := store.ByLastSeen
	switch q.SortBy {
	case SortBytes:
		by = store.ByBytes
	case SortPackets:
		by = store.ByPackets
	case SortDuration:
		by = store.ByDuration
	case SortFirstSeen:
		by = store.ByFirstSeen
	}
	return store.Order{By: by, Desc: q.Desc}
}

// FlowView is the stored flow as the contract's flow view, from which every
// encoding of it (gRPC and REST, CSV, WebSocket) is made.
func FlowView(f *store.Flow) restjson.Flow {
	return restjson.Flow{
		SensorID: f.SensorID, Protocol: f.Protocol, Src: f.Src, Dst: f.Dst,
		SrcPort: f.SrcPort, DstPort: f.DstPort, VLAN: f.VLAN,
		FirstSeen: f.FirstSeen, LastSeen: f.LastSeen,
		SrcPackets: f.SrcPackets, SrcBytes: f.SrcBytes, DstPackets: f.DstPackets, DstBytes: f.DstBytes,
		SrcTCPFlags: f.SrcTCPFlags, DstTCPFlags: f.DstTCPFlags,
		Status: f.Status, EndReason: f.EndReason,
	}
}

// ToNetworkFlow is the API message of a stored flow.
func ToNetworkFlow(f *store.Flow) *netwatchv1.NetworkFlow {
	v := FlowView(f)
	return v.Proto()
}

// StreamFlows parses req like ListFlows (the same errors) and calls fn with the view
// of every matching flow in the requested order, chunk at a time, ignoring limit and
// offset (which are still validated): the CSV download. fn runs with no store lock
// held and must not keep the slice.
func (s *Service) StreamFlows(req *netwatchv1.ListFlowsRequest, chunk int, fn func([]restjson.Flow) error) error {
	fq, err := ParseFlowQuery(req)
	if err != nil {
		return err
	}
	out := make([]restjson.Flow, 0, chunk)
	return s.store.Stream(fq.Filter(s.now(), s.store.Config().Retention), fq.Order(), chunk, func(flows []store.Flow) error {
		out = out[:0]
		for i := range flows {
			out = append(out, FlowView(&flows[i]))
		}
		return fn(out)
	})
}
