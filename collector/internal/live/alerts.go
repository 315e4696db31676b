package live

import (
	"fmt"
	"slices"
	"time"

	"netwatch.dev/common/flagconfig"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// AlertConfig holds the alert thresholds. Zero values are not defaults: start
// from DefaultAlertConfig.
type AlertConfig struct {
	// BandwidthBits raises high_bandwidth when the collector-wide ingest rate exceeds
	// it, in bits per second; 0 turns the alert off. Default 1 Gbit/s. It clears below
	// 90 % of the threshold.
	BandwidthBits uint64
	// CPUPercent raises sensor_cpu when a sensor reports more CPU than this (percent of
	// one core). Default 80. It clears below 90 % of the threshold.
	CPUPercent float64
	// StoreNearCap raises store_near_cap when the store holds more than this fraction
	// of --max-flows. Default 0.9.
	StoreNearCap float64
	// DropsQuiet clears sensor_drops after this long without new drops or loss.
	// Default 1 minute.
	DropsQuiet time.Duration
}

// DefaultAlertConfig is the documented default.
func DefaultAlertConfig() AlertConfig {
	return AlertConfig{BandwidthBits: 1_000_000_000, CPUPercent: 80, StoreNearCap: 0.9, DropsQuiet: time.Minute}
}

// Check explains what is wrong with c.
func (c AlertConfig) Check() error {
	switch {
	case c.CPUPercent <= 0:
		return flagconfig.Fieldf("CPUPercent", "%v must be above 0", c.CPUPercent)
	case c.StoreNearCap <= 0 || c.StoreNearCap > 1:
		return flagconfig.Fieldf("StoreNearCap", "%v is outside (0, 1]", c.StoreNearCap)
	case c.DropsQuiet <= 0:
		return flagconfig.Fieldf("DropsQuiet", "%v must be positive", c.DropsQuiet)
	}
	return nil
}

// Alert kinds.
const (
	AlertHighBandwidth      = "high_bandwidth"
	AlertSensorDrops        = "sensor_drops"
	AlertSensorStale        = "sensor_stale"
	AlertSensorDisconnected = "sensor_disconnected"
	AlertInterfaceDown      = "interface_down"
	AlertSensorCPU          = "sensor_cpu"
	AlertStoreNearCap       = "store_near_cap"
)

// Alert is the data of an "alert" message. State is "raised" when the condition
// starts (and for the active alerts a new client is sent) and "cleared" when it ends.
type Alert struct {
	ID        string    `json:"id"` // kind, or kind/sensor
	Kind      string    `json:"kind"`
	Severity  string    `json:"severity"` // "warning" or "critical"
	State     string    `json:"state"`
	Sensor    string    `json:"sensor,omitempty"`
	Message   string    `json:"message"`
	Value     float64   `json:"value"`
	Threshold float64   `json:"threshold"`
	Since     time.Time `json:"since"`
}

// alertState remembers the active alerts and what the previous evaluation saw, so
// only transitions are pushed. Owned by the hub goroutine, except activeMessages
// (under the hub's lock).
type alertState struct {
	cfg       AlertConfig
	active    map[string]*Alert
	drops     map[string]uint64    // sensor → drops and loss seen last time
	lastDrops map[string]time.Time // sensor → when they last grew
}

func newAlertState(cfg AlertConfig) *alertState {
	return &alertState{cfg: cfg, active: map[string]*Alert{}, drops: map[string]uint64{}, lastDrops: map[string]time.Time{}}
}

// evaluate compares the conditions now with the active alerts and returns the
// messages of the transitions.
func (a *alertState) evaluate(now time.Time, m *netwatchv1.SystemMetrics, sensors []*netwatchv1.Sensor, storeLen, maxFlows int) [][]byte {
	var out [][]byte
	seen := map[string]bool{}
	set := func(on bool, al Alert) {
		seen[al.ID] = true
		cur := a.active[al.ID]
		switch {
		case on && cur == nil:
			al.State, al.Since = "raised", now
			a.active[al.ID] = &al
			out = append(out, encodeJSON(typeAlert, now, al))
		case !on && cur != nil:
			c := *cur
			c.State, c.Message, c.Value = "cleared", "cleared: "+cur.Message, al.Value
			delete(a.active, al.ID)
			out = append(out, encodeJSON(typeAlert, now, c))
		}
	}
	// keep is the hysteresis: an active alert stays until the value falls below 90 %.
	keep := func(id string) bool { return a.active[id] != nil }

	if t := a.cfg.BandwidthBits; t > 0 && m != nil {
		bits := float64(m.GetBytesPerSecond()) * 8
		on := bits > float64(t) || (keep(AlertHighBandwidth) && bits > 0.9*float64(t))
		set(on, Alert{ID: AlertHighBandwidth, Kind: AlertHighBandwidth, Severity: "warning", Value: bits, Threshold: float64(t),
			Message: fmt.Sprintf("high bandwidth: %.0f bit/s over the %d bit/s threshold", bits, t)})
	}
	if maxFlows > 0 {
		frac := float64(storeLen) / float64(maxFlows)
		set(frac >= a.cfg.StoreNearCap, Alert{ID: AlertStoreNearCap, Kind: AlertStoreNearCap, Severity: "warning", Value: float64(storeLen), Threshold: a.cfg.StoreNearCap * float64(maxFlows),
			Message: fmt.Sprintf("flow store near its cap: %d of %d flows; the oldest-idle are evicted beyond it", storeLen, maxFlows)})
	}
	for _, s := range sensors {
		id := s.GetSensorId()
		sm := s.GetMetrics()
		set(!s.GetConnected(), Alert{ID: AlertSensorDisconnected + "/" + id, Kind: AlertSensorDisconnected, Severity: "critical", Sensor: id,
			Message: fmt.Sprintf("sensor %s is disconnected", id)})
		set(s.GetConnected() && s.GetStale(), Alert{ID: AlertSensorStale + "/" + id, Kind: AlertSensorStale, Severity: "warning", Sensor: id, Value: float64(s.GetLagMs()),
			Message: fmt.Sprintf("sensor %s is stale: no batch for more than three export intervals", id)})
		st := sm.GetInterfaceStatus()
		set(st == netwatchv1.InterfaceStatus_INTERFACE_STATUS_DOWN || st == netwatchv1.InterfaceStatus_INTERFACE_STATUS_ERROR,
			Alert{ID: AlertInterfaceDown + "/" + id, Kind: AlertInterfaceDown, Severity: "critical", Sensor: id,
				Message: fmt.Sprintf("sensor %s: interface %s is %s", id, s.GetInterface(), interfaceWord(st))})
		cpu := sm.GetCpuUsage()
		cpuID := AlertSensorCPU + "/" + id
		set(cpu > a.cfg.CPUPercent || (keep(cpuID) && cpu > 0.9*a.cfg.CPUPercent), Alert{ID: cpuID, Kind: AlertSensorCPU, Severity: "warning", Sensor: id, Value: cpu, Threshold: a.cfg.CPUPercent,
			Message: fmt.Sprintf("sensor %s uses %.0f %% CPU (threshold %.0f %%)", id, cpu, a.cfg.CPUPercent)})
		drops := s.GetKernelDrops() + s.GetLostPackets() + s.GetLostFlows()
		if prev, ok := a.drops[id]; drops > prev || (!ok && drops > 0) {
			a.lastDrops[id] = now
		}
		a.drops[id] = drops
		last, grew := a.lastDrops[id]
		set(grew && now.Sub(last) < a.cfg.DropsQuiet, Alert{ID: AlertSensorDrops + "/" + id, Kind: AlertSensorDrops, Severity: "critical", Sensor: id, Value: float64(drops),
			Message: fmt.Sprintf("sensor %s is dropping: %d kernel drops, %d packets and %d flow updates lost; the data is incomplete", id, s.GetKernelDrops(), s.GetLostPackets(), s.GetLostFlows())})
	}
	// A sensor that left the registry takes its alerts with it.
	for id, al := range a.active {
		if !seen[id] && al.Sensor != "" {
			set(false, *al)
		}
	}
	for id := range a.drops {
		if !slices.ContainsFunc(sensors, func(s *netwatchv1.Sensor) bool { return s.GetSensorId() == id }) {
			delete(a.drops, id)
			delete(a.lastDrops, id)
		}
	}
	return out
}

// activeMessages are the active alerts, oldest first, for a new client.
func (a *alertState) activeMessages(now time.Time) [][]byte {
	list := make([]*Alert, 0, len(a.active))
	for _, al := range a.active {
		list = append(list, al)
	}
	slices.SortFunc(list, func(x, y *Alert) int { return x.Since.Compare(y.Since) })
	out := make([][]byte, 0, len(list))
	for _, al := range list {
		out = append(out, encodeJSON(typeAlert, now, al))
	}
	return out
}

func interfaceWord(s netwatchv1.InterfaceStatus) string {
	if s == netwatchv1.InterfaceStatus_INTERFACE_STATUS_ERROR {
		return "in error"
	}
	return "down"
}
