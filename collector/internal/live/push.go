package live

import (
	"slices"
	"strconv"
	"time"

	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
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
func (h *Hub) tick(now time.Time) {
	q, st := h.deps.Query, h.deps.Store
	sensors := q.Sensors()
	metrics := q.Metrics()
	h.mu.Lock() // add reads the active alerts
	alerts := h.alerts.evaluate(now, metrics, sensors, st.Len(), st.Config().MaxFlows)
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
	set(typeMetrics, envelope(typeMetrics, now, restjson.Marshal(metrics)))
	set(typeSensors, envelope(typeSensors, now, restjson.Marshal(&netwatchv1.ListSensorsResponse{Sensors: sensors})))

	// Each subscription's filter is the store filter of a flow query at now (the
	// retention bound included; host, asn and country through the query service's
	// enricher), tested by the store as it walks the recent flows.
	var subs []*client
	var filters []store.Filter
	retention, enricher := st.Config().Retention, q.Enricher()
	for _, c := range clients {
		if fq := c.filter.Load(); fq != nil {
			subs = append(subs, c)
			filters = append(filters, fq.Filter(now, retention, enricher))
		}
	}
	changed, hits := h.changedFlows(now, filters)
	enc := make([][]byte, len(changed)) // each flow encoded once, when a client needs it
	for j, c := range subs {
		if len(changed) == 0 {
			break
		}
		match := func(i int) bool { return hits[i*len(subs)+j] }
		if msg := h.flowsMessage(now, changed, enc, match); msg != nil {
			c.enqueue(msg)
		}
	}

	// Top talkers and protocol shares scan the store. Each is computed at most once a
	// push interval (and every ProtocolsEvery), and less often when a scan is slow: at
	// most a fifth (top talkers) or a tenth (protocols) of a core goes to them however
	// large the store (a million flows take about half a second for top talkers).
	if !now.Before(h.nextTop) {
		start := time.Now()
		tt := q.TopTalkers(h.cfg.TopTalkers, h.cfg.TopTalkersWindow, query.SideAny)
		set(typeTopTalkers, envelope(typeTopTalkers, now, restjson.Marshal(tt)))
		h.nextTop = now.Add(max(h.cfg.Interval, 5*time.Since(start)) - h.cfg.Interval/2)
	}
	if !now.Before(h.nextProto) {
		start := time.Now()
		ps := q.Protocols(h.cfg.TopTalkersWindow)
		set(typeProtocols, envelope(typeProtocols, now, restjson.Marshal(ps)))
		h.nextProto = now.Add(max(h.cfg.ProtocolsEvery, 10*time.Since(start)) - h.cfg.Interval/2)
	}
}

// changedFlows are the flows updated since the previous scan, most recent first, and
// which of filters select each: hits[i*len(filters)+j] for flow i and filter j.
func (h *Hub) changedFlows(now time.Time, filters []store.Filter) (flows []store.Flow, hits []bool) {
	start := now.UnixNano()
	since := start - int64(h.cfg.Interval)
	if h.lastScan != 0 {
		since = h.lastScan - int64(scanOverlap)
	}
	type changed struct {
		f   store.Flow
		row int // its hits start at row*len(filters)
	}
	var out []changed
	var rows []bool
	sent := make(map[store.Key]int64, len(h.sent))
	h.deps.Store.RecentMatching(since, filters, func(f store.Flow, m []bool) {
		if at, ok := h.sent[f.Key]; ok && at == f.ReceivedAt {
			sent[f.Key] = at
			return
		}
		sent[f.Key] = f.ReceivedAt
		out = append(out, changed{f, len(out)})
		rows = append(rows, m...)
	})
	h.lastScan, h.sent = start, sent
	slices.SortFunc(out, func(a, b changed) int {
		switch {
		case a.f.ReceivedAt > b.f.ReceivedAt:
			return -1
		case a.f.ReceivedAt < b.f.ReceivedAt:
			return 1
		}
		return 0
	})
	flows = make([]store.Flow, len(out))
	hits = make([]bool, 0, len(rows))
	k := len(filters)
	for i := range out {
		flows[i] = out[i].f
		hits = append(hits, rows[out[i].row*k:(out[i].row+1)*k]...)
	}
	return flows, hits
}

// flowsMessage is the "flows" message of one subscription: at most MaxFlowsPerPush
// matching flows (match(i) for changed[i]), the count of the others in "more"; nil
// when none match.
func (h *Hub) flowsMessage(now time.Time, changed []store.Flow, enc [][]byte, match func(i int) bool) []byte {
	b := []byte(`{"flows":[`)
	n, more := 0, 0
	for i := range changed {
		if !match(i) {
			continue
		}
		if n == h.cfg.MaxFlowsPerPush {
			more++
			continue
		}
		if enc[i] == nil {
			enc[i] = restjson.AppendFlow(nil, new(h.deps.Query.View(&changed[i])))
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
