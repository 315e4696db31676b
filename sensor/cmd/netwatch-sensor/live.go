package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"netwatch.dev/common/flagconfig"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/decode"
	"netwatch.dev/sensor/internal/output"
)

// liveHandler adapts a shard to the capture's per-worker Handler.
type liveHandler struct{ *shard }

func (h liveHandler) Frame(data []byte, wireLen int, ts int64, vlan uint16, vlanValid bool) {
	h.add(decode.LinkEthernet, data, ts, vlan, vlanValid)
}

func (h liveHandler) Tick(now int64) { h.maybeExport(now) }

// runLive captures on cfg.Interface until ctx ends, then flushes every flow.
func runLive(ctx context.Context, cfg config, stdout io.Writer, log *slog.Logger) error {
	out := newOutputs(cfg.Capture.Workers, cfg.Interface)
	if cfg.Output == "jsonl" {
		out.jsonl = output.NewJSONL(stdout, cfg.SensorID)
	}
	capt, err := capture.Open(cfg.Capture)
	if err != nil {
		return flagconfig.Under("Capture", err)
	}
	defer capt.Close()
	out.captured = func() captureCounters { return countersOf(capt.Stats()) }
	exp, err := startExporter(cfg, out, log)
	if err != nil {
		return err
	}
	attachExporter(ctx, exp)
	if cfg.MetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsListen, out, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	shards := make([]*shard, cfg.Capture.Workers)
	for i := range shards {
		if shards[i], err = newShard(i, cfg, out); err != nil {
			return err
		}
	}
	log.Info("capturing", "interface", cfg.Interface, "workers", cfg.Capture.Workers,
		"ring_bytes_per_worker", cfg.Capture.BlockSize*cfg.Capture.NumBlocks, "filter", cfg.Capture.Filter)
	out.start()
	err = capt.Run(ctx, func(worker int) capture.Handler { return liveHandler{shards[worker]} })
	// Run has returned: no worker touches its shard any more.
	for _, sh := range shards {
		sh.flush()
	}
	out.stop()
	if out.jsonl != nil {
		if ferr := out.jsonl.Flush(); ferr != nil && err == nil {
			err = ferr
		}
	}
	// SIGTERM: the open flows went out above with end reason sensor-stopped; give the
	// collector up to 5 s to acknowledge them.
	stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if xerr := stopExporter(stopCtx, exp, cfg.Collector, log); xerr != nil && err == nil {
		err = xerr
	}
	st := out.stats()
	log.Info("capture stopped", "packets", st.GetPackets(), "kernel_packets", st.GetKernelPackets(),
		"kernel_drops", st.GetKernelDrops(), "queue_freezes", st.GetQueueFreezes())
	var undelivered *undeliveredError
	if err != nil && (ctx.Err() == nil || errors.As(err, &undelivered)) {
		return err
	}
	return out.firstErr()
}

func countersOf(s capture.Stats) captureCounters {
	c := captureCounters{
		kernelPackets: s.Packets, kernelDrops: s.Drops, freezes: s.FreezeQueue,
		status: netwatchv1.InterfaceStatus_INTERFACE_STATUS_DOWN,
	}
	switch {
	case s.InterfaceErr != nil:
		c.status = netwatchv1.InterfaceStatus_INTERFACE_STATUS_ERROR
	case s.Up && s.Running:
		c.status = netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP
	}
	return c
}
