// Package store holds the collector's flows: every flow record updated within the
// retention window, built by applying the sensors' deltas in place.
package store

import (
	"net/netip"
	"sync"
	"time"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Config of the store.
type Config struct {
	// Retention is how long a flow stays after the collector last received an update
	// for it. Default 60 minutes; must be at least one minute.
	Retention time.Duration
}

// DefaultConfig is the documented default.
func DefaultConfig() Config { return Config{Retention: 60 * time.Minute} }

// Key identifies one flow record: the sensor, the oriented 5-tuple and the flow's
// first packet time (a 5-tuple that is reused after its flow ended is a new record).
type Key struct {
	SensorID  string
	Protocol  uint8
	Src, Dst  netip.Addr
	SrcPort   uint16
	DstPort   uint16
	FirstSeen int64 // unix nanos
}

// Flow is one stored flow record with its totals.
type Flow struct {
	Key
	ID                       string
	VLAN                     uint16
	SrcPackets, SrcBytes     uint64
	DstPackets, DstBytes     uint64
	LastSeen                 int64 // unix nanos
	SrcTCPFlags, DstTCPFlags uint8
	Status                   netwatchv1.FlowStatus
	EndReason                netwatchv1.EndReason
	// ReceivedAt is when the collector last applied a delta to this flow (unix nanos):
	// retention counts from here, not from the packets' own time.
	ReceivedAt int64
}

// Store is safe for concurrent use.
type Store struct {
	cfg   Config
	mu    sync.RWMutex
	flows map[Key]*Flow
}

// New builds an empty store.
func New(cfg Config) *Store {
	return &Store{cfg: cfg, flows: make(map[Key]*Flow)}
}

// Apply adds one sensor's deltas, received at now.
func (s *Store) Apply(sensorID string, deltas []*netwatchv1.FlowDelta, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range deltas {
		k, ok := keyOf(sensorID, d)
		if !ok {
			continue
		}
		f := s.flows[k]
		if f == nil {
			f = &Flow{Key: k, ID: flowmeta.ID(k.SensorID, k.Protocol, k.Src, k.SrcPort, k.Dst, k.DstPort, k.FirstSeen), VLAN: uint16(d.GetVlanId())}
			s.flows[k] = f
		}
		f.SrcPackets += d.GetSrcPackets()
		f.SrcBytes += d.GetSrcBytes()
		f.DstPackets += d.GetDstPackets()
		f.DstBytes += d.GetDstBytes()
		if ls := d.GetLastSeen().AsTime().UnixNano(); ls > f.LastSeen {
			f.LastSeen = ls
		}
		f.SrcTCPFlags |= uint8(d.GetSrcTcpFlags())
		f.DstTCPFlags |= uint8(d.GetDstTcpFlags())
		f.Status = d.GetStatus()
		if d.GetEndReason() != netwatchv1.EndReason_END_REASON_UNSPECIFIED {
			f.EndReason = d.GetEndReason()
		}
		f.ReceivedAt = now.UnixNano()
	}
}

// Expire drops flows whose last update is older than the retention window.
func (s *Store) Expire(now time.Time) (removed int) {
	cutoff := now.Add(-s.cfg.Retention).UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, f := range s.flows {
		if f.ReceivedAt < cutoff {
			delete(s.flows, k)
			removed++
		}
	}
	return removed
}

// Len is the number of stored flows.
func (s *Store) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.flows)
}

// Scan calls fn with a copy of every stored flow that match accepts.
func (s *Store) Scan(match func(*Flow) bool, fn func(Flow)) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, f := range s.flows {
		if match(f) {
			fn(*f)
		}
	}
}

func keyOf(sensorID string, d *netwatchv1.FlowDelta) (Key, bool) {
	k := d.GetKey()
	src, ok1 := netip.AddrFromSlice(k.GetSrcAddr())
	dst, ok2 := netip.AddrFromSlice(k.GetDstAddr())
	if !ok1 || !ok2 || k.GetProtocol() > 255 || k.GetSrcPort() > 65535 || k.GetDstPort() > 65535 {
		return Key{}, false
	}
	return Key{
		SensorID: sensorID, Protocol: uint8(k.GetProtocol()),
		Src: src, Dst: dst, SrcPort: uint16(k.GetSrcPort()), DstPort: uint16(k.GetDstPort()),
		FirstSeen: d.GetFirstSeen().AsTime().UnixNano(),
	}, true
}
