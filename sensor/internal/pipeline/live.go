package pipeline

import (
	"context"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/sensor/internal/capture"
	"netwatch.dev/sensor/internal/decode"
)

// liveHandler adapts a shard to the capture's per-worker Handler.
type liveHandler struct{ *shard }

func (h liveHandler) Frame(data []byte, wireLen int, ts int64, vlan uint16, vlanValid bool) {
	h.add(decode.LinkEthernet, data, ts, vlan, vlanValid)
}

func (h liveHandler) Tick(now int64) { h.maybeExport(now) }

// stopLive is Stop's end of a live capture, once the flows are flushed: the JSON
// lines are flushed and the collector gets until ctx ends to acknowledge them. Its
// error is the first of: the capture's, the JSON lines', the collector's
// (*UndeliveredError), an output's; the first two only when the capture ended by
// itself, as stopping it (ctx, Stop, a signal) causes them otherwise.
func (p *Pipeline) stopLive(ctx context.Context) error {
	runErr := p.runErr
	var flushErr error
	if p.out.jsonl != nil {
		flushErr = p.out.jsonl.Flush()
	}
	exportErr := p.stopExporter(ctx)
	st := p.out.stats()
	p.log.Info("capture stopped", "packets", st.GetPackets(), "kernel_packets", st.GetKernelPackets(),
		"kernel_drops", st.GetKernelDrops(), "queue_freezes", st.GetQueueFreezes())
	if !p.ended {
		runErr, flushErr = nil, nil
	}
	for _, err := range []error{runErr, flushErr, exportErr} {
		if err != nil {
			return err
		}
	}
	return p.out.firstErr()
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
