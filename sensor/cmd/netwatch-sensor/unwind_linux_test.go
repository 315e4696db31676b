package main

import (
	"testing"

	"netwatch.dev/sensor/internal/testnet"
)

// TestLiveStartFailureStopsTheExporter: a live capture (opened before the exporter
// starts) with a metrics address in use.
func TestLiveStartFailureStopsTheExporter(t *testing.T) {
	tn := testnet.New(t)
	startFailsAfterTheExporter(t, "--interface", tn.Host, "--sensor-id", "unwind-live")
}
