// Package metrics serves the sensor's counters in the Prometheus text format
// (version 0.0.4), through common/promtext: a few counters do not need a metrics
// library, and the sensor binary stays lean.
package metrics

import (
	"bufio"
	"net/http"
	"strconv"

	"netwatch.dev/common/procstat"
	"netwatch.dev/common/promtext"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Handler serves /metrics from a snapshot function.
func Handler(snapshot func() *netwatchv1.SensorStats) http.Handler {
	return promtext.Handler(func(w *promtext.Writer) { write(w, snapshot()) })
}

// Write writes st in the text format. Every series is always present, zero or not.
func Write(w *bufio.Writer, st *netwatchv1.SensorStats) { write(promtext.New(w), st) }

func write(w *promtext.Writer, st *netwatchv1.SensorStats) {
	labelled := func(name, help, label string, cs []*netwatchv1.CounterValue) {
		w.Family(name, "counter", help)
		for _, c := range cs {
			w.Sample(name, promtext.Uint(c.GetValue()), promtext.Label{Name: label, Value: c.GetName()})
		}
	}
	w.Counter("netwatch_sensor_packets_total", "Frames the sensor decoded.", st.GetPackets())
	w.Counter("netwatch_sensor_ip_bytes_total", "IP-layer bytes of the packets counted into flows.", st.GetBytes())
	w.Counter("netwatch_sensor_kernel_packets_total", "Frames the kernel offered to the capture rings (PACKET_STATISTICS tp_packets).", st.GetKernelPackets())
	w.Counter("netwatch_sensor_kernel_drops_total", "Frames the kernel dropped because a ring was full (tp_drops).", st.GetKernelDrops())
	w.Counter("netwatch_sensor_queue_freezes_total", "Times the kernel froze a ring's block queue (tp_freeze_q_cnt).", st.GetQueueFreezes())
	labelled("netwatch_sensor_decode_errors_total", "Frames that could not be decoded, by kind.", "kind", st.GetDecodeErrors())
	labelled("netwatch_sensor_non_ip_frames_total", "Frames that were not IP, by kind.", "kind", st.GetNonIp())
	labelled("netwatch_sensor_inspect_events_total", "Payload inspection events (malformed TLS or DNS, DNS observations dropped...), by kind.", "kind", st.GetInspect())
	w.Gauge("netwatch_sensor_flows_active", "Flows in the flow tables.", st.GetFlowsActive())
	w.Counter("netwatch_sensor_flows_evicted_total", "Flows evicted from a full flow table.", st.GetFlowsEvicted())
	w.Family("netwatch_sensor_interface_up", "gauge", "1 when the capture interface is up and running.")
	w.Sample("netwatch_sensor_interface_up", promtext.Bool(st.GetInterfaceStatus() == netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP))
	w.Family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
	w.Sample("process_cpu_seconds_total", strconv.FormatFloat(procstat.CPUTime().Seconds(), 'f', 2, 64))
	w.Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", st.GetRssBytes())
}
