package query

import (
	"context"

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

// ListSensors is GET /api/v1/sensors: the registry, sorted by sensor id.
func (s *Service) ListSensors(context.Context, *netwatchv1.ListSensorsRequest) (*netwatchv1.ListSensorsResponse, error) {
	resp := &netwatchv1.ListSensorsResponse{Sensors: []*netwatchv1.Sensor{}}
	if s.sensors != nil {
		resp.Sensors = s.sensors.Sensors()
	}
	return resp, nil
}

// addSensorHealth fills the sensor part of the health: "healthy" needs a connected,
// capturing sensor, none stale, no interface down and no reported loss in the
// retention window (the window is then incomplete).
func (s *Service) addSensorHealth(r *netwatchv1.GetHealthResponse) {
	if s.sensors == nil {
		return
	}
	worst := netwatchv1.InterfaceStatus_INTERFACE_STATUS_UNSPECIFIED
	for _, v := range s.sensors.Sensors() {
		if v.GetStale() {
			r.SensorsStale++
		}
		if v.GetLostFlows() > 0 || v.GetLostPackets() > 0 || v.GetLostBytes() > 0 {
			r.Incomplete = true
		}
		if !v.GetConnected() {
			continue
		}
		r.SensorsConnected++
		if !v.GetStale() {
			r.CaptureActive = true
		}
		// UP < DOWN < ERROR: the larger value is the worse state.
		worst = max(worst, v.GetMetrics().GetInterfaceStatus())
	}
	r.InterfaceStatus = worst
	if r.CaptureActive && r.SensorsStale == 0 && !r.Incomplete && worst <= netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP {
		r.Status = "healthy"
	}
}
