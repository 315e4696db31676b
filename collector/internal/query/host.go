package query

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/enrich"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/sat"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

const (
	defaultHostLimit = 10
	// MaxHostLimit is the most peers, services and applications a host view lists.
	MaxHostLimit = 50
	// UnknownApplication names, in a host's applications, the flows without a label.
	UnknownApplication = "unknown"
)

// GetHost is GET /api/v1/hosts/{ip}: one address over the window ending now (packet
// time, widened to whole buckets like top talkers). An address with no traffic in the
// window is an answer with zero totals and empty lists (its names, AS and country
// still given), not NOT_FOUND: the host view of a name seen in DNS but silent is
// still a view.
func (s *Service) GetHost(_ context.Context, req *netwatchv1.GetHostRequest) (*netwatchv1.GetHostResponse, error) {
	a, err := parseHostAddr(req.GetIp())
	if err != nil {
		return nil, err
	}
	window, err := parseWindow("duration", req.GetDuration(), defaultTopDuration, MinWindow, MaxWindow)
	if err != nil {
		return nil, err
	}
	limit := defaultHostLimit
	if v := req.GetLimit(); v != "" {
		if limit, err = parseInt("limit", v, 1, MaxHostLimit); err != nil {
			return nil, err
		}
	}
	return s.Host(a, window, limit), nil
}

// parseHostAddr accepts an IPv4 or IPv6 address without a zone (IPv4-mapped IPv6 is
// the IPv4 address).
func parseHostAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, paramError("ip", "%q is not an IP address", v)
	}
	return a.Unmap(), nil
}

type hostTotals struct {
	bytes, packets, flows uint64
}

func (t *hostTotals) add(bytes, packets uint64) {
	t.bytes = sat.Add(t.bytes, bytes)
	t.packets = sat.Add(t.packets, packets)
	t.flows++
}

type serviceKey struct {
	protocol uint8
	port     uint16
	served   bool
}

type serviceSum struct {
	hostTotals
	apps map[string]*hostTotals // labelled flows only
}

// Host is the answer of GetHost for parameters already checked.
func (s *Service) Host(a netip.Addr, window time.Duration, limit int) *netwatchv1.GetHostResponse {
	now := s.now()
	from := now.Add(-window)
	e := s.Enricher()
	resp := &netwatchv1.GetHostResponse{
		Ip: a.String(), Names: []string{}, TimeWindow: formatDuration(window), GeneratedAt: timestamppb.New(now),
		Series: []*netwatchv1.HostPoint{}, Peers: []*netwatchv1.HostPeer{},
		Services: []*netwatchv1.HostService{}, Applications: []*netwatchv1.ApplicationShare{},
	}
	if e != nil {
		h := e.Lookup(a)
		resp.Asn, resp.AsName, resp.Country = h.ASN, h.ASName, h.Country
		resp.Names = append(resp.Names, e.Names(a)...)
	}
	for _, p := range s.store.HostSeries(a, from, now) {
		resp.Series = append(resp.Series, &netwatchv1.HostPoint{
			Timestamp: timestamppb.New(time.Unix(0, p.Start)), Bytes: p.Bytes, Packets: p.Packets,
		})
	}
	summarize(resp, e, limit, func(fn func(store.HostFlow)) { s.store.HostWindow(a, from, now, fn) })
	return resp
}

// summarize adds to resp the totals, peers, services and applications of the host
// flows each reports, the lists ranked and cut to limit.
func summarize(resp *netwatchv1.GetHostResponse, e enrich.Enricher, limit int, each func(fn func(store.HostFlow))) {
	peers := map[netip.Addr]*hostTotals{}
	services := map[serviceKey]*serviceSum{}
	apps := map[string]*hostTotals{}
	each(func(hf store.HostFlow) {
		f := &hf.Flow
		resp.Bytes = sat.Add(resp.Bytes, hf.Bytes)
		resp.Packets = sat.Add(resp.Packets, hf.Packets)
		resp.FlowCount++
		peer := f.Src
		if hf.Initiated {
			resp.FlowsInitiated++
			peer = f.Dst
		}
		get(peers, peer).add(hf.Bytes, hf.Packets)
		sk := serviceKey{f.Protocol, f.DstPort, !hf.Initiated}
		ss := services[sk]
		if ss == nil {
			ss = &serviceSum{apps: map[string]*hostTotals{}}
			services[sk] = ss
		}
		ss.add(hf.Bytes, hf.Packets)
		label := f.Application
		if label != "" {
			get(ss.apps, label).add(hf.Bytes, hf.Packets)
		} else {
			label = UnknownApplication
		}
		get(apps, label).add(hf.Bytes, hf.Packets)
	})
	for _, p := range ranked(peers, limit, func(x, y netip.Addr) int { return x.Compare(y) }) {
		hp := &netwatchv1.HostPeer{Ip: p.key.String(), Bytes: p.bytes, Packets: p.packets, Flows: p.flows}
		if e != nil {
			h := e.Lookup(p.key)
			hp.Name, hp.Asn, hp.AsName, hp.Country = h.Name, h.ASN, h.ASName, h.Country
		}
		resp.Peers = append(resp.Peers, hp)
	}
	svcTotals := make(map[serviceKey]*hostTotals, len(services))
	for k, v := range services {
		svcTotals[k] = &v.hostTotals
	}
	for _, sv := range ranked(svcTotals, limit, compareService) {
		resp.Services = append(resp.Services, &netwatchv1.HostService{
			Protocol: uint32(sv.key.protocol), ProtocolName: flowmeta.ProtocolName(sv.key.protocol),
			Port: uint32(sv.key.port), Application: mostSeen(services[sv.key].apps),
			Bytes: sv.bytes, Flows: sv.flows, Served: sv.key.served,
		})
	}
	for _, ap := range ranked(apps, limit, cmp.Compare[string]) {
		resp.Applications = append(resp.Applications, &netwatchv1.ApplicationShare{
			Application: ap.key, Bytes: ap.bytes, Flows: ap.flows,
		})
	}
}

func get[K comparable](m map[K]*hostTotals, k K) *hostTotals {
	t := m[k]
	if t == nil {
		t = &hostTotals{}
		m[k] = t
	}
	return t
}

type rankedEntry[K any] struct {
	key K
	hostTotals
}

// ranked is m's entries by bytes, then packets, then flows (most first), then key,
// the first limit.
func ranked[K comparable](m map[K]*hostTotals, limit int, keyCmp func(a, b K) int) []rankedEntry[K] {
	out := make([]rankedEntry[K], 0, len(m))
	for k, v := range m {
		out = append(out, rankedEntry[K]{k, *v})
	}
	slices.SortFunc(out, func(x, y rankedEntry[K]) int {
		if c := cmp.Compare(y.bytes, x.bytes); c != 0 {
			return c
		}
		if c := cmp.Compare(y.packets, x.packets); c != 0 {
			return c
		}
		if c := cmp.Compare(y.flows, x.flows); c != 0 {
			return c
		}
		return keyCmp(x.key, y.key)
	})
	return out[:min(limit, len(out))]
}

// compareService orders services of equal traffic: by protocol, port, then the
// host's own (served) first.
func compareService(a, b serviceKey) int {
	if c := cmp.Compare(a.protocol, b.protocol); c != 0 {
		return c
	}
	if c := cmp.Compare(a.port, b.port); c != 0 {
		return c
	}
	switch {
	case a.served == b.served:
		return 0
	case a.served:
		return -1
	}
	return 1
}

// mostSeen is the label of the most flows (ties: most bytes, then name); "" when no
// flow had one.
func mostSeen(apps map[string]*hostTotals) string {
	best, bt := "", hostTotals{}
	for l, t := range apps {
		if best == "" || t.flows > bt.flows || t.flows == bt.flows && (t.bytes > bt.bytes || t.bytes == bt.bytes && l < best) {
			best, bt = l, *t
		}
	}
	return best
}
