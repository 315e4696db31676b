package pipeline

import (
	"context"
	"errors"

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
// lines are flushed and the collector gets until ctx ends to acknowledge them.
func (p *Pipeline) stopLive(ctx context.Context) error {
	err := p.runErr
	if p.out.jsonl != nil {
		if ferr := p.out.jsonl.Flush(); ferr != nil && err == nil {
			err = ferr
		}
	}
	if xerr := p.stopExporter(ctx); xerr != nil && err == nil {
		err = xerr
	}
	st := p.out.stats()
	p.log.Info("capture stopped", "packets", st.GetPackets(), "kernel_packets", st.GetKernelPackets(),
		"kernel_drops", st.GetKernelDrops(), "queue_freezes", st.GetQueueFreezes())
	var undelivered *UndeliveredError
	if err != nil && (p.ended || errors.As(err, &undelivered)) {
		return err
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
