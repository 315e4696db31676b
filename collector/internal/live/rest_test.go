package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/api"
	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	"netwatch.dev/common/difftest"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// fakeClock is the one clock of a store, its query service, its REST API and its hub.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// sameFlow is one flow of TestSubscriptionsSelectWhatTheRESTQuerySelects.
type sameFlow struct {
	name, sensor string
	proto        uint32
	src, dst     string
	sport, dport uint32
	status       netwatchv1.FlowStatus
	first, last  time.Duration // before the query's now
}

func (f sameFlow) delta(now time.Time, firstShift time.Duration) *netwatchv1.FlowDelta {
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: f.proto, SrcAddr: netip.MustParseAddr(f.src).AsSlice(), SrcPort: f.sport,
			DstAddr: netip.MustParseAddr(f.dst).AsSlice(), DstPort: f.dport},
		SrcPackets: 2, SrcBytes: 200, DstPackets: 1, DstBytes: 100, Status: f.status,
		FirstSeen: timestamppb.New(now.Add(-f.first - firstShift)), LastSeen: timestamppb.New(now.Add(-f.last)),
	}
}

// filterHarness serves one store through the REST API and the live hub on loopback,
// all on one clock. The hub ticks only when a client connects (its interval is an
// hour), so the test decides what each push sees.
type filterHarness struct {
	t     *testing.T
	clk   *fakeClock
	store *store.Store
	base  string
}

func newFilterHarness(t *testing.T, start time.Time) *filterHarness {
	t.Helper()
	clk := &fakeClock{t: start}
	st := store.New(store.DefaultConfig())
	q := query.New(st, "test", clk.now)
	cfg := DefaultConfig()
	cfg.Interval, cfg.ProtocolsEvery = time.Hour, time.Hour
	hub, err := New(cfg, Deps{Query: q, Store: st, Now: clk.now})
	require.NoError(t, err)
	h, err := api.NewHandler(context.Background(), q, api.Options{Now: clk.now, Routes: map[string]http.Handler{"/api/v1/ws": hub}})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	hub.Start()
	t.Cleanup(func() {
		hub.Stop()
		srv.Close()
	})
	return &filterHarness{t: t, clk: clk, store: st, base: srv.URL}
}

func (h *filterHarness) dial() *websocket.Conn {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.base, "http")+"/api/v1/ws", nil)
	require.NoError(h.t, err)
	c.SetReadLimit(16 << 20)
	h.t.Cleanup(func() { c.CloseNow() })
	return c
}

// pushedUntil reads c until the "protocols" message of the push at 'at' (the last of
// a push) and returns the flow keys its "flows" messages carried.
func pushedUntil(t *testing.T, c *websocket.Conn, at time.Time) []string {
	t.Helper()
	keys := []string{}
	for {
		m, err := read(t, c, 5*time.Second)
		require.NoError(t, err, "waiting for the push at %v", at)
		switch {
		case m.Type == "flows":
			var d struct {
				Flows []struct {
					FlowKey string `json:"flowKey"`
				} `json:"flows"`
				More int `json:"more"`
			}
			require.NoError(t, json.Unmarshal(m.Data, &d))
			require.Zero(t, d.More)
			for _, f := range d.Flows {
				keys = append(keys, f.FlowKey)
			}
		case m.Type == "protocols" && m.TS.Equal(at):
			return keys
		}
	}
}

// restKeys are the flow keys GET /api/v1/flows answers for the filter.
func (h *filterHarness) restKeys(filter map[string]any) []string {
	h.t.Helper()
	v := url.Values{"limit": {"1000"}}
	for k, x := range filter {
		v.Set(k, fmt.Sprint(x))
	}
	resp, err := http.Get(h.base + "/api/v1/flows?" + v.Encode())
	require.NoError(h.t, err)
	defer resp.Body.Close()
	var body struct {
		Flows []struct {
			FlowKey string `json:"flowKey"`
		}
	}
	require.Equal(h.t, http.StatusOK, resp.StatusCode, "flows?%s", v.Encode())
	require.NoError(h.t, json.NewDecoder(resp.Body).Decode(&body))
	keys := []string{}
	for _, f := range body.Flows {
		keys = append(keys, f.FlowKey)
	}
	return keys
}

// A live subscription and GET /api/v1/flows with the same filter select the same
// flows: the same status, sensor, CIDR, port, protocol and time tests, and the same
// retention bound. Every flow has a twin received just over the retention before
// the push (and not expired yet) that every filter selecting the flow would select
// too, had the twin not been past retention; neither answer may hold a twin.
func TestSubscriptionsSelectWhatTheRESTQuerySelects(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tb := t0.Add(31 * time.Minute) // past the next protocol shares due
	retention := store.DefaultConfig().Retention
	t1 := tb.Add(retention + 10*time.Second) // the push and the query
	active, idle, closed := netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, netwatchv1.FlowStatus_FLOW_STATUS_IDLE, netwatchv1.FlowStatus_FLOW_STATUS_CLOSED
	flows := []sameFlow{
		{"a", "s1", 6, "10.0.0.1", "192.0.2.10", 40001, 443, active, 30 * time.Second, 2 * time.Second},
		{"b", "s1", 17, "10.0.0.2", "10.0.0.53", 40002, 53, idle, 30 * time.Second, 2 * time.Second},
		{"c", "s2", 6, "2001:db8::1", "2001:db8::2", 40003, 443, closed, 30 * time.Second, 2 * time.Second},
		{"d", "s2", 17, "192.0.2.7", "10.0.0.53", 40004, 53, active, 40 * time.Minute, 30 * time.Minute},
		{"e", "s1", 58, "fe80::1", "ff02::1", 0, 0, idle, 30 * time.Second, 2 * time.Second},
		{"f", "s2", 6, "10.1.2.3", "10.0.0.80", 40006, 80, active, 30 * time.Second, 2 * time.Second},
	}
	ts := func(d time.Duration) string { return t1.Add(-d).Format(time.RFC3339) }
	for _, tc := range []struct {
		name   string
		filter map[string]any
		want   string // the flows selected, by name
	}{
		{"no filter", map[string]any{}, "abcdef"},
		{"status", map[string]any{"status": "idle"}, "be"},
		{"sensor", map[string]any{"sensor": "s2"}, "cdf"},
		{"unknown sensor", map[string]any{"sensor": "s9"}, ""},
		{"src v4 CIDR", map[string]any{"src_ip": "10.0.0.0/8"}, "abf"},
		{"src v4 host", map[string]any{"src_ip": "10.0.0.2"}, "b"},
		{"dst v6 CIDR", map[string]any{"dst_ip": "2001:db8::/32"}, "c"},
		{"v6 prefix selects no v4", map[string]any{"src_ip": "::/0"}, "ce"},
		{"port either side", map[string]any{"port": "53"}, "bd"},
		{"port as a number", map[string]any{"port": 443}, "ac"},
		{"protocol name", map[string]any{"protocol": "tcp"}, "acf"},
		{"protocol number", map[string]any{"protocol": "58"}, "e"},
		{"time window", map[string]any{"time_start": ts(35 * time.Minute), "time_end": ts(25 * time.Minute)}, "d"},
		{"time_start only", map[string]any{"time_start": ts(10 * time.Minute)}, "abcef"},
		{"combined", map[string]any{"sensor": "s1", "protocol": "udp", "port": "53"}, "b"},
		{"q syntax", map[string]any{"q": "protocol:tcp port:443"}, "ac"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFilterHarness(t, t0)
			sub := h.dial()
			pushedUntil(t, sub, t0) // the push its arrival caused: the hub has scanned at t0
			send(t, sub, map[string]any{"type": "subscribe", "filter": tc.filter})
			until(t, sub, "subscribed")
			// A second subscription, to another filter, is served in the same push. Its
			// client arrives later (tb), so that the push it causes scans the store
			// again (and shares protocols again: the end of a push, which a later
			// client waits for).
			otherFilter := map[string]any{"status": "active"}
			h.clk.set(tb)
			other := h.dial()
			pushedUntil(t, other, tb)
			send(t, other, map[string]any{"type": "subscribe", "filter": otherFilter})
			until(t, other, "subscribed")

			// Then, at t1, each flow arrives fresh and its twin (first packet a
			// millisecond earlier: another flow, selected by the same filters)
			// arrives as received just after the hub's last scan, which is now
			// past retention. Expire has not run.
			h.clk.set(t1)
			want := []string{}
			for _, f := range flows {
				h.store.Apply(f.sensor, []*netwatchv1.FlowDelta{f.delta(t1, time.Millisecond)}, tb.Add(time.Second))
				h.store.Apply(f.sensor, []*netwatchv1.FlowDelta{f.delta(t1, 0)}, t1.Add(-time.Second))
				if strings.Contains(tc.want, f.name) {
					want = append(want, flowmeta.ID(f.sensor, uint8(f.proto), netip.MustParseAddr(f.src), uint16(f.sport),
						netip.MustParseAddr(f.dst), uint16(f.dport), t1.Add(-f.first).UnixNano()))
				}
			}
			require.Equal(t, 2*len(flows), h.store.Len(), "the twins are stored")

			h.dial() // a client arriving makes the hub push now, at t1
			pushed := pushedUntil(t, sub, t1)
			rest := h.restKeys(tc.filter)
			otherPushed, otherRest := pushedUntil(t, other, t1), h.restKeys(otherFilter)
			slices.Sort(otherPushed)
			slices.Sort(otherRest)
			require.Len(t, otherRest, 3, "active: a, d, f")
			if d := difftest.Diff(otherRest, otherPushed); d != "" {
				t.Errorf("the second subscription (-REST +pushed):\n%s", d)
			}
			slices.Sort(want)
			slices.Sort(pushed)
			slices.Sort(rest)
			if d := difftest.Diff(want, rest); d != "" {
				t.Errorf("GET /api/v1/flows (-want +got):\n%s", d)
			}
			if d := difftest.Diff(want, pushed); d != "" {
				t.Errorf("the subscription (-want +got):\n%s", d)
			}
		})
	}
}

// The hub's refusals are REST answers with the API's one error body: the same keys,
// the request's id, the clock's time.
func TestRefusalsHaveTheRESTErrorBody(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := newFilterHarness(t, at)
	get := func(path, id string) (int, []byte) {
		req, err := http.NewRequest(http.MethodGet, h.base+path, nil)
		require.NoError(t, err)
		req.Header.Set(api.RequestIDHeader, id)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
		var b json.RawMessage
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
		return resp.StatusCode, b
	}
	code, live := get("/api/v1/ws", "req-ws")
	require.Equal(t, http.StatusUpgradeRequired, code)
	require.JSONEq(t, `{"error":{"code":"UPGRADE_REQUIRED","message":"/api/v1/ws is a WebSocket: open it with new WebSocket(...)",`+
		`"details":{},"timestamp":"2026-03-01T12:00:00Z","requestId":"req-ws"}}`, string(live))

	// The same keys as a REST error's.
	code, rest := get("/api/v1/nope", "req-rest")
	require.Equal(t, http.StatusNotFound, code)
	keys := func(b []byte) []string {
		var m struct{ Error map[string]json.RawMessage }
		require.NoError(t, json.Unmarshal(b, &m))
		var out []string
		for k := range m.Error {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	difftest.Equal(t, keys(rest), keys(live))
}

// The periodic messages are the REST answers to the same questions at the same
// time: top talkers (10 hosts, 5 minutes), protocols (5 minutes) and sensors. The
// protocols message keeps the shape the dashboard reads.
func TestPeriodicMessagesAreTheRESTAnswers(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := newFilterHarness(t, at)
	var ds []*netwatchv1.FlowDelta
	for i := range 14 {
		f := sameFlow{sensor: "s1", proto: []uint32{6, 17, 58}[i%3], src: fmt.Sprintf("10.0.%d.1", i), dst: "10.9.0.1",
			sport: uint32(40000 + i), dport: 443, status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE, first: time.Minute, last: time.Second}
		d := f.delta(at, 0)
		d.SrcBytes = uint64(1000 * (i + 1))
		ds = append(ds, d)
	}
	h.store.Apply("s1", ds, at)

	c := h.dial()
	got := map[string]json.RawMessage{}
	for len(got) < 3 {
		m, err := read(t, c, 5*time.Second)
		require.NoError(t, err)
		switch m.Type {
		case "top_talkers", "protocols", "sensors":
			got[m.Type] = m.Data
		}
	}
	for typ, path := range map[string]string{
		"top_talkers": "/api/v1/top-talkers?limit=10&duration=5m",
		"protocols":   "/api/v1/protocols?duration=5m",
		"sensors":     "/api/v1/sensors",
	} {
		resp, err := http.Get(h.base + path)
		require.NoError(t, err)
		var rest json.RawMessage
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rest))
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %s", path, rest)
		require.JSONEq(t, string(rest), string(got[typ]), typ)
	}
	require.JSONEq(t, `{"window":"5m","protocols":[`+
		`{"protocol":17,"name":"udp","bytes":40500,"packets":15,"flows":5},`+
		`{"protocol":6,"name":"tcp","bytes":35500,"packets":15,"flows":5},`+
		`{"protocol":58,"name":"icmpv6","bytes":30400,"packets":12,"flows":4}]}`, string(got["protocols"]))
}
