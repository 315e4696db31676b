package live

import (
	"context"
	"slices"
	"strconv"
	"time"

	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// scanOverlap is how far each flow scan reaches back before the previous one: the
// store stamps a whole batch with one receive time before applying it, so a flow can
// appear in the store with a time a little before the previous scan. What the previous
// scan already sent (same flow, same receive time) is skipped.
const scanOverlap = time.Second

// tick computes this interval's messages once and queues them for every client,
// each as soon as it is ready: the cheap ones (alerts, metrics, sensors, flows)
// first, then the scans of the store (top talkers, protocol shares). It runs only on
// the hub goroutine.
func (h *Hub) tick(ctx context.Context, now time.Time) {
	sensors, _ := h.deps.Query.ListSensors(ctx, &netwatchv1.ListSensorsRequest{})
	metrics, _ := h.deps.Query.GetMetrics(ctx, &netwatchv1.GetMetricsRequest{})
	st := h.deps.Store
	h.mu.Lock() // add reads the active alerts
	alerts := h.alerts.evaluate(now, metrics.GetMetrics(), sensors.GetSensors(), st.Len(), st.Config().MaxFlows)
	h.mu.Unlock()

	clients := h.snapshot()
	if len(clients) == 0 {
		h.lastScan, h.sent = 0, nil
		h.mu.Lock()
		clear(h.latest) // a client connecting later must not start from old state
		h.mu.Unlock()
		h.nextTop, h.nextProto = time.Time{}, time.Time{}
		return
	}
	fan := func(msg []byte) {
		for _, c := range clients {
			c.enqueue(msg)
		}
	}
	set := func(t string, msg []byte) {
		h.mu.Lock()
		h.latest[t] = msg
		h.mu.Unlock()
		fan(msg)
	}
	for _, m := range alerts {
		fan(m)
	}
	if m := metrics.GetMetrics(); m != nil {
		set(typeMetrics, envelope(typeMetrics, now, restjson.Marshal(m)))
	}
	if sensors != nil {
		set(typeSensors, envelope(typeSensors, now, restjson.Marshal(sensors)))
	}

	changed := h.changedFlows(now)
	enc := make([][]byte, len(changed)) // each flow encoded once, when a client needs it
	for _, c := range clients {
		if fq := c.filter.Load(); fq != nil && len(changed) > 0 {
			if msg := h.flowsMessage(now, changed, enc, fq.Match); msg != nil {
				c.enqueue(msg)
			}
		}
	}

	// Top talkers and protocol shares scan the store. Each is computed at most once a
	// push interval (and every ProtocolsEvery), and less often when a scan is slow: at
	// most a fifth (top talkers) or a tenth (protocols) of a core goes to them however
	// large the store (a million flows take about half a second for top talkers).
	if !now.Before(h.nextTop) {
		start := time.Now()
		if tt, err := h.deps.Query.ListTopTalkers(ctx, &netwatchv1.ListTopTalkersRequest{
			Limit: strconv.Itoa(h.cfg.TopTalkers), Duration: h.cfg.TopTalkersWindow,
		}); err == nil {
			set(typeTopTalkers, envelope(typeTopTalkers, now, restjson.Marshal(tt)))
		} else {
			h.deps.Log.Warn("live: top talkers", "err", err)
		}
		h.nextTop = now.Add(max(h.cfg.Interval, 5*time.Since(start)) - h.cfg.Interval/2)
	}
	if !now.Before(h.nextProto) {
		start := time.Now()
		set(typeProtocols, h.protocols(now))
		h.nextProto = now.Add(max(h.cfg.ProtocolsEvery, 10*time.Since(start)) - h.cfg.Interval/2)
	}
}

// changedFlows are the flows updated since the previous scan, most recent first.
func (h *Hub) changedFlows(now time.Time) []store.Flow {
	start := now.UnixNano()
	since := start - int64(h.cfg.Interval)
	if h.lastScan != 0 {
		since = h.lastScan - int64(scanOverlap)
	}
	var out []store.Flow
	sent := make(map[store.Key]int64, len(h.sent))
	h.deps.Store.Recent(since, func(f store.Flow) {
		if at, ok := h.sent[f.Key]; ok && at == f.ReceivedAt {
			sent[f.Key] = at
			return
		}
		sent[f.Key] = f.ReceivedAt
		out = append(out, f)
	})
	h.lastScan, h.sent = start, sent
	slices.SortFunc(out, func(a, b store.Flow) int {
		switch {
		case a.ReceivedAt > b.ReceivedAt:
			return -1
		case a.ReceivedAt < b.ReceivedAt:
			return 1
		}
		return 0
	})
	return out
}

// flowsMessage is the "flows" message of one subscription: at most MaxFlowsPerPush
// matching flows, the count of the others in "more"; nil when none match.
func (h *Hub) flowsMessage(now time.Time, changed []store.Flow, enc [][]byte, match func(*store.Flow) bool) []byte {
	b := []byte(`{"flows":[`)
	n, more := 0, 0
	for i := range changed {
		if !match(&changed[i]) {
			continue
		}
		if n == h.cfg.MaxFlowsPerPush {
			more++
			continue
		}
		if enc[i] == nil {
			enc[i] = restjson.AppendFlow(nil, new(query.FlowView(&changed[i])))
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, enc[i]...)
		n++
	}
	if n == 0 {
		return nil
	}
	b = strconv.AppendInt(append(b, `],"more":`...), int64(more), 10)
	return envelope(typeFlows, now, append(b, '}'))
}

// protoShare is one protocol's share of the traffic.
type protoShare struct {
	Protocol uint8  `json:"protocol"`
	Name     string `json:"name"`
	Bytes    uint64 `json:"bytes"`
	Packets  uint64 `json:"packets"`
	Flows    uint64 `json:"flows"`
}

// protocols sums the totals of the flows seen in the top-talker window by protocol
// (a flow that started before the window counts whole).
func (h *Hub) protocols(now time.Time) []byte {
	window, err := time.ParseDuration(h.cfg.TopTalkersWindow)
	if err != nil {
		window = 5 * time.Minute
	}
	from := now.Add(-window).UnixNano()
	var sums [256]protoShare
	h.deps.Store.Scan(func(f *store.Flow) bool { return f.LastSeen >= from }, func(f store.Flow) {
		s := &sums[f.Protocol]
		s.Bytes += f.SrcBytes + f.DstBytes
		s.Packets += f.SrcPackets + f.DstPackets
		s.Flows++
	})
	out := []protoShare{}
	for p := range sums {
		if sums[p].Flows > 0 {
			s := sums[p]
			s.Protocol, s.Name = uint8(p), flowmeta.ProtocolName(uint8(p))
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b protoShare) int {
		switch {
		case a.Bytes > b.Bytes:
			return -1
		case a.Bytes < b.Bytes:
			return 1
		}
		return int(a.Protocol) - int(b.Protocol)
	})
	return encodeJSON(typeProtocols, now, struct {
		Window    string       `json:"window"`
		Protocols []protoShare `json:"protocols"`
	}{h.cfg.TopTalkersWindow, out})
}
