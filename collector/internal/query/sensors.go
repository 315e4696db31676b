package query

import (
	"context"
	"fmt"
	"time"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// SensorRegistry is what the query service reads about sensors (the ingest
// service's registry).
type SensorRegistry interface {
	// Sensors lists every sensor connected or heard from within the retention window.
	Sensors() []*netwatchv1.Sensor
}

// SetSensors gives the service its sensor registry; call it before serving.
func (s *Service) SetSensors(r SensorRegistry) { s.sensors = r }

// Problem is a fault of the collector itself the health reports (the ingest
// service's durable log, its data directory, its replay).
type Problem struct {
	Reason string
	// Unhealthy makes the status "unhealthy"; otherwise it is at least "degraded".
	Unhealthy bool
	// Incomplete: acknowledged data was lost (GetHealthResponse.incomplete).
	Incomplete bool
}

// SetProblems gives the service the source of the collector's own faults; call it
// before serving.
func (s *Service) SetProblems(f func() []Problem) { s.problems = f }

// ListSensors is GET /api/v1/sensors: Sensors.
func (s *Service) ListSensors(context.Context, *netwatchv1.ListSensorsRequest) (*netwatchv1.ListSensorsResponse, error) {
	return &netwatchv1.ListSensorsResponse{Sensors: s.Sensors()}, nil
}

// Sensors is the registry, sorted by sensor id (empty, not nil, without one).
func (s *Service) Sensors() []*netwatchv1.Sensor {
	if s.sensors == nil {
		return []*netwatchv1.Sensor{}
	}
	return s.sensors.Sensors()
}

// Health thresholds.
const (
	// DropWindow is how far back the health looks for packet drops.
	DropWindow = 5 * time.Minute
	// NearCapPercent of --max-flows stored makes the health "degraded": evictions
	// of the oldest-idle flows are near (or happening).
	NearCapPercent = 90
)

// Health statuses.
const (
	StatusHealthy   = "healthy"
	StatusDegraded  = "degraded"
	StatusUnhealthy = "unhealthy"
)

// addSensorHealth fills the health from the registry and the store, with a reason for
// every problem found:
//   - "unhealthy" when the collector has an Unhealthy problem of its own (see
//     SetProblems), or nothing is being captured: no sensor connected, or every
//     connected sensor stale or its interface not up;
//   - "degraded" when some part is missing or lossy: a stale sensor, an interface not
//     up, packets dropped in the last DropWindow, spool loss reported within the
//     retention window (the window is then incomplete), the store at
//     NearCapPercent of --max-flows, or a problem of the collector's own;
//   - "healthy" otherwise.
func (s *Service) addSensorHealth(r *netwatchv1.GetHealthResponse) {
	r.Reasons = []string{}
	var sensors []*netwatchv1.Sensor
	if s.sensors != nil {
		sensors = s.sensors.Sensors()
	}
	worst := netwatchv1.InterfaceStatus_INTERFACE_STATUS_UNSPECIFIED
	capturing := 0
	for _, v := range sensors {
		id := v.GetSensorId()
		if v.GetStale() {
			r.SensorsStale++
			r.Reasons = append(r.Reasons, fmt.Sprintf("sensor %s is stale: no batch for three export intervals", id))
		}
		if lost := v.GetLostFlows(); lost > 0 || v.GetLostPackets() > 0 {
			r.Incomplete = true
			r.Reasons = append(r.Reasons, fmt.Sprintf("sensor %s lost %d flow updates (%d packets) from a full spool: the window is incomplete", id, lost, v.GetLostPackets()))
		}
		if n := s.history.DroppedIncrease(id, s.now(), DropWindow); n > 0 {
			r.Reasons = append(r.Reasons, fmt.Sprintf("sensor %s dropped %d packets in the last %s", id, n, formatDuration(DropWindow)))
		}
		if !v.GetConnected() {
			continue
		}
		r.SensorsConnected++
		ifs := v.GetMetrics().GetInterfaceStatus()
		// UP < DOWN < ERROR: the larger value is the worse state.
		worst = max(worst, ifs)
		if ifs > netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP {
			r.Reasons = append(r.Reasons, fmt.Sprintf("sensor %s: interface %s is %s", id, v.GetInterface(), interfaceWords(ifs)))
		}
		if !v.GetStale() && ifs <= netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP {
			capturing++
		}
	}
	r.InterfaceStatus = worst
	r.CaptureActive = capturing > 0
	var own []string
	unhealthy := false
	if s.problems != nil {
		for _, p := range s.problems() {
			own = append(own, p.Reason)
			unhealthy = unhealthy || p.Unhealthy
			r.Incomplete = r.Incomplete || p.Incomplete
		}
	}
	if st, limit := s.store.Len(), s.store.Config().MaxFlows; st*100 >= limit*NearCapPercent {
		r.Reasons = append(r.Reasons, fmt.Sprintf("store holds %d flows, %d%% of --max-flows %d: the oldest-idle flows are evicted beyond it", st, st*100/limit, limit))
	}
	switch {
	case unhealthy:
		r.Status = StatusUnhealthy
	case r.SensorsConnected == 0:
		r.Status = StatusUnhealthy
		r.Reasons = append([]string{"no sensor connected: nothing is being captured"}, r.Reasons...)
	case capturing == 0:
		r.Status = StatusUnhealthy
		r.Reasons = append([]string{"no connected sensor is capturing"}, r.Reasons...)
	case len(r.Reasons) > 0 || len(own) > 0:
		r.Status = StatusDegraded
	default:
		r.Status = StatusHealthy
	}
	r.Reasons = append(own, r.Reasons...) // the collector's own faults first
}

// interfaceWords says an interface state in a health reason ("... is down",
// "... is in error").
func interfaceWords(v netwatchv1.InterfaceStatus) string {
	switch v {
	case netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP:
		return "up"
	case netwatchv1.InterfaceStatus_INTERFACE_STATUS_DOWN:
		return "down"
	case netwatchv1.InterfaceStatus_INTERFACE_STATUS_ERROR:
		return "in error"
	}
	return "unknown"
}
