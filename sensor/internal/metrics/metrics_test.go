package metrics

import (
	"io"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

func TestExposition(t *testing.T) {
	st := &netwatchv1.SensorStats{
		Packets: 10, KernelDrops: 3, FlowsActive: 2,
		DecodeErrors:    []*netwatchv1.CounterValue{{Name: "malformed_ip", Value: 1}, {Name: `we"ird`, Value: 0}},
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
		"netwatch_sensor_interface_up 1\n",
		"# TYPE process_cpu_seconds_total counter\n",
	} {
		assert.Contains(t, string(body), line)
	}
}
