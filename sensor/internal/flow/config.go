package flow

import (
	"time"

	"netwatch.dev/common/flagconfig"
)

// Config configures a Table. Durations are wall-clock lengths compared with
// packet timestamps (offline) or the wall clock (live), both in unix nanos.
// Zero values are not defaults: start from DefaultConfig.
type Config struct {
	// IdleTimeout ends a flow that has seen no packet for this long
	// (EndReason IdleTimeout). Default 30s; must be > 0.
	IdleTimeout time.Duration
	// ActiveTimeout cuts a long-lived flow into interim records: once a
	// flow has been exported for this long since its record started, its
	// next delta carries EndReason ActiveTimeout and a new record starts;
	// the flow itself stays in the table. Default 60s; must be > 0.
	ActiveTimeout time.Duration
	// FinLinger keeps a TCP flow that saw FIN in both directions or a RST
	// for this long (late ACKs, retransmitted FINs still count) before it
	// is removed with EndReason FIN or RST. Default 2s; 0 removes it at
	// the next Export.
	FinLinger time.Duration
	// MaxFlows bounds the table. When it is full, a new flow evicts the
	// longest idle of 8 flows sampled round the table (EndReason Evicted,
	// counted in Stats.Evicted; see Table.victim). Default 1,000,000; must
	// be >= 1.
	MaxFlows int
	// MaxFragments bounds the table that attributes non-first IP
	// fragments to the ports of their first fragment; when full the oldest
	// entry is overwritten. Default 65,536; must be >= 1.
	MaxFragments int
	// FragmentTimeout forgets a first fragment after this long, like Linux
	// net.ipv4.ipfrag_time (30s). Default 30s; 0 never forgets (the
	// oracle's behaviour, bounded only by MaxFragments).
	FragmentTimeout time.Duration
	// MaxPendingEvicted bounds the buffer of deltas of evicted flows kept
	// for the next Export. If it overflows, the final delta of an evicted
	// flow is lost and counted in Stats.EvictedLost. Default 65,536; must
	// be >= 1.
	MaxPendingEvicted int
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		IdleTimeout:       30 * time.Second,
		ActiveTimeout:     60 * time.Second,
		FinLinger:         2 * time.Second,
		MaxFlows:          1_000_000,
		MaxFragments:      65_536,
		FragmentTimeout:   30 * time.Second,
		MaxPendingEvicted: 65_536,
	}
}

// maxTableFlows keeps entry indices within int32 and the index within memory
// reason.
const maxTableFlows = 1 << 30

// Check reports the first invalid field, by name (a *flagconfig.FieldError).
func (c Config) Check() error {
	switch {
	case c.IdleTimeout <= 0:
		return flagconfig.Fieldf("IdleTimeout", "must be > 0, got %v", c.IdleTimeout)
	case c.ActiveTimeout <= 0:
		return flagconfig.Fieldf("ActiveTimeout", "must be > 0, got %v", c.ActiveTimeout)
	case c.FinLinger < 0:
		return flagconfig.Fieldf("FinLinger", "must be >= 0, got %v", c.FinLinger)
	case c.MaxFlows < 1 || c.MaxFlows > maxTableFlows:
		return flagconfig.Fieldf("MaxFlows", "must be in [1, %d], got %d", maxTableFlows, c.MaxFlows)
	case c.MaxFragments < 1 || c.MaxFragments > maxTableFlows:
		return flagconfig.Fieldf("MaxFragments", "must be in [1, %d], got %d", maxTableFlows, c.MaxFragments)
	case c.FragmentTimeout < 0:
		return flagconfig.Fieldf("FragmentTimeout", "must be >= 0, got %v", c.FragmentTimeout)
	case c.MaxPendingEvicted < 1:
		return flagconfig.Fieldf("MaxPendingEvicted", "must be >= 1, got %d", c.MaxPendingEvicted)
	}
	return nil
}
