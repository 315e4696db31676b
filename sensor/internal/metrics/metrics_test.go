package metrics

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/promtext/promcheck"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

func TestExposition(t *testing.T) {
	st := &netwatchv1.SensorStats{
		Packets: 10, KernelDrops: 3, FlowsActive: 2,
		DecodeErrors:    []*netwatchv1.CounterValue{{Name: "malformed_ip", Value: 1}, {Name: `we"ird`, Value: 0}},
		Inspect:         []*netwatchv1.CounterValue{{Name: "dns_observations_dropped", Value: 7}},
		InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP,
	}
	srv := httptest.NewServer(Handler(func() *netwatchv1.SensorStats { return st }))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Contains(t, resp.Header.Get("Content-Type"), "version=0.0.4")
	for _, line := range []string{
		"netwatch_sensor_packets_total 10\n",
		"netwatch_sensor_kernel_drops_total 3\n",
		"netwatch_sensor_kernel_packets_total 0\n",
		"netwatch_sensor_flows_active 2\n",
		`netwatch_sensor_decode_errors_total{kind="malformed_ip"} 1` + "\n",
		`netwatch_sensor_decode_errors_total{kind="we\"ird"} 0` + "\n",
		`netwatch_sensor_inspect_events_total{kind="dns_observations_dropped"} 7` + "\n",
		"netwatch_sensor_interface_up 1\n",
		"# TYPE process_cpu_seconds_total counter\n",
	} {
		assert.Contains(t, string(body), line)
	}
}

// full has every series non-zero, and a label value that needs escaping.
var full = &netwatchv1.SensorStats{
	Packets: 10, Bytes: 1500, KernelPackets: 12, KernelDrops: 3, QueueFreezes: 1,
	DecodeErrors: []*netwatchv1.CounterValue{{Name: "malformed_ip", Value: 1}, {Name: "we\"ird\\\n", Value: 0}},
	NonIp:        []*netwatchv1.CounterValue{{Name: "arp", Value: 4}},
	Inspect:      []*netwatchv1.CounterValue{{Name: "dns_observations_dropped", Value: 7}, {Name: "tls_malformed", Value: 0}},
	FlowsActive:  2, FlowsEvicted: 5, RssBytes: 1 << 20,
	InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP,
}

// cpuLine is the one line whose value is the test process's own.
var cpuLine = regexp.MustCompile(`(?m)^process_cpu_seconds_total [0-9]+\.[0-9]{2}$`)

// TestExpositionIsExact: the whole text, byte for byte (the CPU time is this
// process's: only its form is checked).
func TestExpositionIsExact(t *testing.T) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	Write(bw, full)
	require.NoError(t, bw.Flush())
	require.Regexp(t, cpuLine, buf.String())
	got := cpuLine.ReplaceAllString(buf.String(), "process_cpu_seconds_total CPU")
	want, err := os.ReadFile("testdata/metrics.txt")
	require.NoError(t, err)
	assert.Equal(t, string(want), got)
}

// TestPromtoolAcceptsTheExposition: Prometheus's own checker finds nothing wrong
// with the text (syntax, and its lint rules for names, types and help).
func TestPromtoolAcceptsTheExposition(t *testing.T) {
	promcheck.Lint(t, func(w *bufio.Writer) { Write(w, full) })
}
