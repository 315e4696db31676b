package main

import (
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"netwatch.dev/common/testproc"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// exporterGoroutines are the stacks of the goroutines running the collector link's
// sender (export.Exporter.run) now.
func exporterGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "netwatch.dev/sensor/internal/export.(*Exporter).run(") {
			found = append(found, g)
		}
	}
	return found
}

// startFailsAfterTheExporter runs the sensor with args, a collector and a metrics
// address that another socket holds: binding it is the step after starting the
// exporter. The run fails naming the address, and no sender of the collector link
// is left running.
func startFailsAfterTheExporter(t *testing.T, args ...string) {
	t.Helper()
	require.Empty(t, exporterGoroutines(), "no exporter before the run")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	addr := busy.Addr().String()
	code, _, errOut := runSensor(t, append(args, "--collector", testproc.FreeAddr(t), "--metrics-listen", addr)...)
	assert.Equal(t, exitFailure, code, errOut)
	assert.Contains(t, errOut, "netwatch-sensor: metrics-listen "+addr+": ")
	assert.Empty(t, exporterGoroutines(), "the run returned with its exporter still running")
}

// TestReadStartFailureStopsTheExporter: --read with a metrics address in use.
func TestReadStartFailureStopsTheExporter(t *testing.T) {
	startFailsAfterTheExporter(t, "--read", filepath.Join(pcapDir, "pcapplusplus-DnsPackets.pcap"), "--sensor-id", "unwind")
}
