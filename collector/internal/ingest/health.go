package ingest

import "errors"

// Problem is a fault of the collector itself (not of one sensor) that its health
// reports for as long as it lasts.
type Problem struct {
	// Reason is one sentence naming what is wrong and where, e.g.
	// "data dir /var/lib/netwatch: no space left on device".
	Reason string
	// Unhealthy: the collector cannot take sensors' batches or answer for them now
	// (health "unhealthy", /readyz 503). Otherwise the health is "degraded".
	Unhealthy bool
	// Incomplete: acknowledged data was lost; the window the API answers for is
	// incomplete.
	Incomplete bool
}

// Problems lists the collector's own faults now. Each kind of fault (the log's
// damage, the data directory, the replay) adds its own call here.
func (s *Service) Problems() []Problem {
	var out []Problem
	out = append(out, s.replayProblems()...)
	out = append(out, s.walProblems()...)
	return out
}

// Ready is nil when the collector can take sensors and queries: no Unhealthy
// problem (the log is replayed, the data directory writable). It does not depend
// on sensors being connected.
func (s *Service) Ready() error {
	for _, p := range s.Problems() {
		if p.Unhealthy {
			return errors.New(p.Reason)
		}
	}
	return nil
}
