package query

import (
	"context"
	"slices"
	"time"

	"netwatch.dev/collector/internal/store"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// ListProtocols is GET /api/v1/protocols: Protocols over the duration parameter
// (default 5m, from 1m to 60m, as top-talkers).
func (s *Service) ListProtocols(_ context.Context, req *netwatchv1.ListProtocolsRequest) (*netwatchv1.ListProtocolsResponse, error) {
	window, err := parseWindow("duration", req.GetDuration(), defaultTopDuration, MinWindow, MaxWindow)
	if err != nil {
		return nil, err
	}
	return s.Protocols(window), nil
}

// Protocols sums by protocol the flows seen since now - window: those a flow query
// with time_start = now - window selects (last packet at or after it, retention
// bound included; a flow stamped ahead of the collector's clock, as a replay at full
// speed is, counts too). A flow counts whole (its lifetime bytes and packets). Most
// bytes first, ties by protocol number. It scans the store.
func (s *Service) Protocols(window time.Duration) *netwatchv1.ListProtocolsResponse {
	now := s.now()
	fq := FlowQuery{Protocol: -1, Port: -1, Start: now.Add(-window).UnixNano()}
	var sums [256]struct{ bytes, packets, flows uint64 }
	s.store.Select(fq.Filter(now, s.store.Config().Retention, nil), func(f store.Flow) {
		p := &sums[f.Protocol]
		p.bytes += f.SrcBytes + f.DstBytes
		p.packets += f.SrcPackets + f.DstPackets
		p.flows++
	})
	resp := &netwatchv1.ListProtocolsResponse{Window: formatDuration(window), Protocols: []*netwatchv1.ProtocolShare{}}
	for p := range sums {
		if sums[p].flows > 0 {
			resp.Protocols = append(resp.Protocols, &netwatchv1.ProtocolShare{
				Protocol: uint32(p), Name: flowmeta.ProtocolName(uint8(p)),
				Bytes: sums[p].bytes, Packets: sums[p].packets, Flows: sums[p].flows,
			})
		}
	}
	slices.SortStableFunc(resp.Protocols, func(a, b *netwatchv1.ProtocolShare) int {
		switch {
		case a.Bytes > b.Bytes:
			return -1
		case a.Bytes < b.Bytes:
			return 1
		}
		return int(a.Protocol) - int(b.Protocol)
	})
	return resp
}
