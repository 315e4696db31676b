// Package query implements netwatch.v1.QueryService over the flow store.
package query

import (
	"context"
	"net/netip"
	"sync/atomic"
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
	// enricher names addresses (SetEnricher); nil: nothing is known.
	enricher atomic.Pointer[enricherBox]
}

type enricherBox struct{ e enrich.Enricher }

// SetEnricher makes e the source of the names, AS and country of the flows' and
// hosts' addresses, and of the host, asn and country filters. Nil (the default)
// leaves those fields empty and makes those filters match nothing (they are still
// validated).
func (s *Service) SetEnricher(e enrich.Enricher) {
	if e == nil {
		s.enricher.Store(nil)
		return
	}
	s.enricher.Store(&enricherBox{e})
}

// Enricher is what SetEnricher set (nil if nothing).
func (s *Service) Enricher() enrich.Enricher {
	if b := s.enricher.Load(); b != nil {
		return b.e
	}
	return nil
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
	page, total := s.store.Query(s.FlowFilter(fq, s.now()), fq.Order(), fq.Offset, fq.Limit)
	resp := &netwatchv1.ListFlowsResponse{
		Flows: make([]*netwatchv1.NetworkFlow, 0, len(page)),
		Pagination: &netwatchv1.Pagination{
			TotalCount: uint64(total), HasMore: fq.Offset+len(page) < total,
			Limit: uint32(fq.Limit), Offset: uint64(fq.Offset),
		},
	}
	e := s.Enricher()
	for i := range page {
		v := EnrichedView(&page[i], e)
		resp.Flows = append(resp.Flows, v.Proto())
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
// retention are left out even if Expire has not run yet. The host, asn and country
// filters become predicates on addresses answered by e; with a nil e they match
// nothing.
func (q *FlowQuery) Filter(now time.Time, retention time.Duration, e enrich.Enricher) store.Filter {
	f := store.Filter{
		Src: q.Src, Dst: q.Dst, Protocol: q.Protocol, Port: q.Port, Start: q.Start, End: q.End,
		Sensor: q.Sensor, Status: q.Status, ReceivedSince: now.Add(-retention).UnixNano(),
		CommunityID: q.CommunityID, Application: q.Application, ServerName: q.ServerName,
	}
	if q.Host == "" && !q.HasASN && q.Country == "" {
		return f
	}
	if e == nil {
		return append1(f, func(netip.Addr) bool { return false })
	}
	if q.Host != "" {
		f = append1(f, e.NameMatcher(q.Host))
	}
	if q.HasASN {
		asn := q.ASN
		f = append1(f, func(a netip.Addr) bool { return e.Lookup(a).ASN == asn })
	}
	if q.Country != "" {
		cc := q.Country
		f = append1(f, func(a netip.Addr) bool { return e.Lookup(a).Country == cc })
	}
	return f
}

func append1(f store.Filter, p func(netip.Addr) bool) store.Filter {
	f.Hosts = append(f.Hosts, p)
	return f
}

// FlowFilter is fq's store filter at now with the service's retention and enricher:
// what ListFlows, the CSV download and live subscriptions select.
func (s *Service) FlowFilter(fq *FlowQuery, now time.Time) store.Filter {
	return fq.Filter(now, s.store.Config().Retention, s.Enricher())
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
		CommunityID: f.CommunityID, ServerName: f.ServerName, Application: f.Application,
	}
}

// EnrichedView is FlowView with what e knows of each address (name, AS, country);
// a nil e leaves those empty.
func EnrichedView(f *store.Flow, e enrich.Enricher) restjson.Flow {
	v := FlowView(f)
	if e != nil {
		src, dst := e.Lookup(f.Src), e.Lookup(f.Dst)
		v.SrcName, v.SrcASN, v.SrcASName, v.SrcCountry = src.Name, src.ASN, src.ASName, src.Country
		v.DstName, v.DstASN, v.DstASName, v.DstCountry = dst.Name, dst.ASN, dst.ASName, dst.Country
	}
	return v
}

// View is the flow view of f with the service's enricher: what every API answer
// carries.
func (s *Service) View(f *store.Flow) restjson.Flow { return EnrichedView(f, s.Enricher()) }

// NetworkFlow is the API message of a stored flow, enriched (View).
func (s *Service) NetworkFlow(f *store.Flow) *netwatchv1.NetworkFlow {
	v := s.View(f)
	return v.Proto()
}

// ToNetworkFlow is the API message of a stored flow without enrichment (the
// flow's own fields only); Service.NetworkFlow adds names, AS and country.
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
	e := s.Enricher()
	return s.store.Stream(s.FlowFilter(fq, s.now()), fq.Order(), chunk, func(flows []store.Flow) error {
		out = out[:0]
		for i := range flows {
			out = append(out, EnrichedView(&flows[i], e))
		}
		return fn(out)
	})
}
