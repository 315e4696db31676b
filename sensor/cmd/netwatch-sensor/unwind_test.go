package main

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/common/testproc"
)

// startFailsAfterTheExporter runs the sensor with args, a collector and a metrics
// address that another socket holds: binding it is the step after starting the
// exporter. The run fails naming the address, and no sender of the collector link
// is left running.
func startFailsAfterTheExporter(t *testing.T, args ...string) {
	t.Helper()
	require.Empty(t, testproc.Goroutines(exporterRun), "no exporter before the run")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	addr := busy.Addr().String()
	code, _, errOut := runSensor(t, append(args, "--collector", testproc.FreeAddr(t), "--metrics-listen", addr)...)
	assert.Equal(t, exitFailure, code, errOut)
	assert.Contains(t, errOut, "netwatch-sensor: metrics-listen "+addr+": ")
	assert.Empty(t, testproc.Goroutines(exporterRun), "the run returned with its exporter still running")
}

// TestReadStartFailureStopsTheExporter: --read with a metrics address in use.
func TestReadStartFailureStopsTheExporter(t *testing.T) {
	startFailsAfterTheExporter(t, "--read", filepath.Join(pcapDir, "pcapplusplus-DnsPackets.pcap"), "--sensor-id", "unwind")
}

// exporterRun is the collector link's sender goroutine.
const exporterRun = "netwatch.dev/sensor/internal/export.(*Exporter).run"
