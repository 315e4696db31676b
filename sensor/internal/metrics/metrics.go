// Package metrics serves the sensor's counters in the Prometheus text format
// (version 0.0.4). It is written by hand to keep the sensor binary lean: a few
// counters do not need a metrics library.
package metrics

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"

	"netwatch.dev/common/procstat"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// Handler serves /metrics from a snapshot function.
func Handler(snapshot func() *netwatchv1.SensorStats) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriter(w)
		Write(bw, snapshot())
		_ = bw.Flush()
	})
}

// Write writes st in the text format. Every series is always present, zero or not.
func Write(w *bufio.Writer, st *netwatchv1.SensorStats) {
	counter := func(name, help string, v uint64) {
		w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n" + name + " " + strconv.FormatUint(v, 10) + "\n")
	}
	gauge := func(name, help, value string) {
		w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " gauge\n" + name + " " + value + "\n")
	}
	labelled := func(name, help, label string, cs []*netwatchv1.CounterValue) {
		w.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " counter\n")
		for _, c := range cs {
			w.WriteString(name + "{" + label + "=\"" + escape(c.GetName()) + "\"} " + strconv.FormatUint(c.GetValue(), 10) + "\n")
		}
	}
	counter("netwatch_sensor_packets_total", "Frames the sensor decoded.", st.GetPackets())
	counter("netwatch_sensor_ip_bytes_total", "IP-layer bytes of the packets counted into flows.", st.GetBytes())
	counter("netwatch_sensor_kernel_packets_total", "Frames the kernel offered to the capture rings (PACKET_STATISTICS tp_packets).", st.GetKernelPackets())
	counter("netwatch_sensor_kernel_drops_total", "Frames the kernel dropped because a ring was full (tp_drops).", st.GetKernelDrops())
	counter("netwatch_sensor_queue_freezes_total", "Times the kernel froze a ring's block queue (tp_freeze_q_cnt).", st.GetQueueFreezes())
	labelled("netwatch_sensor_decode_errors_total", "Frames that could not be decoded, by kind.", "kind", st.GetDecodeErrors())
	labelled("netwatch_sensor_non_ip_frames_total", "Frames that were not IP, by kind.", "kind", st.GetNonIp())
	gauge("netwatch_sensor_flows_active", "Flows in the flow tables.", strconv.FormatUint(st.GetFlowsActive(), 10))
	counter("netwatch_sensor_flows_evicted_total", "Flows evicted from a full flow table.", st.GetFlowsEvicted())
	up := "0"
	if st.GetInterfaceStatus() == netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP {
		up = "1"
	}
	gauge("netwatch_sensor_interface_up", "1 when the capture interface is up and running.", up)
	w.WriteString("# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n# TYPE process_cpu_seconds_total counter\n")
	w.WriteString("process_cpu_seconds_total " + strconv.FormatFloat(procstat.CPUTime().Seconds(), 'f', 2, 64) + "\n")
	gauge("process_resident_memory_bytes", "Resident memory size in bytes.", strconv.FormatUint(st.GetRssBytes(), 10))
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escape(s string) string { return labelEscaper.Replace(s) }
