package pipeline

import (
	"context"
	"fmt"
	"strings"

	"netwatch.dev/sensor/internal/export"
)

// startExporter starts the collector link, when there is one.
func (p *Pipeline) startExporter() {
	if p.exp == nil {
		return
	}
	p.exp.Start()
	p.out.exporter = p.exp
	p.log.Info("exporting", "collector", p.cfg.Export.Collector, "sensor_id", p.cfg.Export.SensorID, "boot_id", p.exp.BootID())
}

// stopExporter waits for the collector to acknowledge every batch, at most until ctx
// ends, then stops the exporter. What the collector does not have then (batches
// still unacknowledged, and those dropped earlier from a full spool) is an
// *UndeliveredError.
func (p *Pipeline) stopExporter(ctx context.Context) error {
	exp := p.exp
	if exp == nil || p.expStopped {
		return nil
	}
	p.expStopped = true
	err := exp.Stop(ctx)
	st := exp.Stats()
	p.log.Info("export stopped", "batches_acked", st.BatchesAcked, "batches_dropped", st.BatchesDropped, "batches_rejected", st.BatchesRejected, "spooled", st.SpoolBatches)
	u := &UndeliveredError{collector: p.cfg.Export.Collector, pending: exp.Pending(), dropped: st.Loss, cause: err}
	if u.pending.Batches == 0 && u.dropped.Batches == 0 {
		return nil
	}
	return u
}

// abortExporter stops the exporter at once (a start or a stop that failed before
// the wait for acknowledgements): its sender goroutine ends, what it holds is lost.
func (p *Pipeline) abortExporter() {
	if p.exp == nil || p.expStopped {
		return
	}
	p.expStopped = true
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.exp.Stop(ctx)
}

// UndeliveredError is what the collector did not get when the sensor stopped:
// batches it never acknowledged (the spool is in memory, so they end with the
// process) or batches dropped from a full spool.
type UndeliveredError struct {
	collector string
	// pending: never acknowledged (lost with the process: the spool is in
	// memory); dropped: dropped from a full spool while running (the collector
	// was told, in SpoolLoss, if a later batch reached it).
	pending, dropped export.Loss
	cause            error // why the wait for acknowledgements ended, if it did
}

func (u *UndeliveredError) Error() string {
	amount := func(l export.Loss) string {
		return fmt.Sprintf("%d batches (%d flow updates, %d packets, %d bytes)", l.Batches, l.Flows, l.Packets, l.Bytes)
	}
	var parts []string
	if u.pending.Batches > 0 {
		parts = append(parts, amount(u.pending)+" not acknowledged by collector "+u.collector+
			" when the sensor stopped; they are lost (the spool is in memory)")
	}
	if u.dropped.Batches > 0 {
		parts = append(parts, amount(u.dropped)+" dropped earlier from a full spool (--spool-size)")
	}
	return "undelivered data: " + strings.Join(parts, "; ")
}

func (u *UndeliveredError) Unwrap() error { return u.cause }
