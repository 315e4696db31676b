package live

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/enrich"
	"netwatch.dev/collector/internal/query"
	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// registry is a sensor registry the test changes.
type registry struct {
	mu      sync.Mutex
	sensors []*netwatchv1.Sensor
}

func (r *registry) Sensors() []*netwatchv1.Sensor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*netwatchv1.Sensor(nil), r.sensors...)
}

func (r *registry) set(s ...*netwatchv1.Sensor) {
	r.mu.Lock()
	r.sensors = s
	r.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	hub   *Hub
	store *store.Store
	reg   *registry
	srv   *httptest.Server
	url   string
}

// newFixture serves a hub on loopback. tweak adjusts the config; smallBuffers makes
// the server's socket send buffer tiny so a client that stops reading blocks its
// writer at once.
func newFixture(t *testing.T, tweak func(*Config), smallBuffers bool) *fixture {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Interval = 20 * time.Millisecond
	cfg.ProtocolsEvery = 20 * time.Millisecond
	cfg.IdleTimeout = 5 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	st := store.New(store.DefaultConfig())
	q := query.New(st, "test", time.Now)
	reg := &registry{}
	q.SetSensors(reg)
	h, err := New(cfg, Deps{Query: q, Store: st})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	// As in the collector: the stream must outlive the server's request timeouts.
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 400*time.Millisecond, 400*time.Millisecond
	if smallBuffers {
		srv.Listener = smallBufferListener{srv.Listener}
	}
	srv.Start()
	h.Start()
	t.Cleanup(func() {
		h.Stop()
		srv.Close()
	})
	return &fixture{t: t, hub: h, store: st, reg: reg, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/api/v1/ws"}
}

type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func (f *fixture) dial(opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, f.url, opts)
	if err == nil {
		c.SetReadLimit(16 << 20)
		f.t.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

type msg struct {
	Type string          `json:"type"`
	TS   time.Time       `json:"ts"`
	Data json.RawMessage `json:"data"`
}

func read(t *testing.T, c *websocket.Conn, timeout time.Duration) (msg, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.Read(ctx)
	if err != nil {
		return msg{}, err
	}
	var m msg
	require.NoError(t, json.Unmarshal(b, &m), "message %s", b)
	return m, nil
}

// until reads messages until one of type typ arrives.
func until(t *testing.T, c *websocket.Conn, typ string) msg {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		m, err := read(t, c, time.Until(deadline))
		require.NoError(t, err, "waiting for %q", typ)
		if m.Type == typ {
			return m
		}
	}
	t.Fatalf("no %q message within 5s", typ)
	return msg{}
}

func send(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	require.NoError(t, c.Write(context.Background(), websocket.MessageText, b))
}

var firstSeen = time.Now().Add(-time.Second)

func delta(proto uint32, src, dst string, sport, dport uint32, bytes uint64) *netwatchv1.FlowDelta {
	now := time.Now()
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: proto, SrcAddr: netip.MustParseAddr(src).AsSlice(), SrcPort: sport,
			DstAddr: netip.MustParseAddr(dst).AsSlice(), DstPort: dport},
		SrcPackets: 1, SrcBytes: bytes, FirstSeen: timestamppb.New(firstSeen), LastSeen: timestamppb.New(now),
		Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
	}
}

func TestDefaultConfigChecks(t *testing.T) {
	require.NoError(t, DefaultConfig().Check())
	bad := DefaultConfig()
	bad.MaxClients = 0
	require.ErrorContains(t, bad.Check(), "MaxClients: ")
}

func TestHelloThenPeriodicMessages(t *testing.T) {
	f := newFixture(t, nil, false)
	c, _, err := f.dial(&websocket.DialOptions{Subprotocols: []string{Subprotocol}})
	require.NoError(t, err)
	require.Equal(t, Subprotocol, c.Subprotocol())
	m, err := read(t, c, 5*time.Second)
	require.NoError(t, err)
	require.Equal(t, "hello", m.Type)
	for _, typ := range []string{"metrics", "top_talkers", "sensors", "protocols"} {
		m := until(t, c, typ)
		require.False(t, m.TS.IsZero(), typ)
		require.NotEmpty(t, m.Data, typ)
	}
}

func TestSubscriptionFilterIsHonoured(t *testing.T) {
	f := newFixture(t, nil, false)
	c, _, err := f.dial(nil)
	require.NoError(t, err)
	send(t, c, map[string]any{"type": "subscribe", "filter": map[string]any{"protocol": "udp", "src_ip": "10.0.0.0/8", "port": 53}})
	until(t, c, "subscribed")

	f.store.Apply("s1", []*netwatchv1.FlowDelta{
		delta(6, "10.0.0.1", "10.0.0.2", 1000, 53, 100),   // tcp: filtered out
		delta(17, "10.0.0.1", "10.0.0.2", 1001, 53, 200),  // matches
		delta(17, "192.0.2.1", "10.0.0.2", 1002, 53, 300), // outside src_ip
		delta(17, "10.0.0.3", "10.0.0.2", 1003, 54, 400),  // other port
	}, time.Now())
	m := until(t, c, "flows")
	var data struct {
		Flows []struct {
			SrcIP    string `json:"srcIP"`
			Protocol string `json:"protocolName"`
			SrcPort  int    `json:"srcPort"`
			Bytes    uint64 `json:"bytes"`
		} `json:"flows"`
		More int `json:"more"`
	}
	require.NoError(t, json.Unmarshal(m.Data, &data))
	require.Len(t, data.Flows, 1, "%s", m.Data)
	require.Equal(t, "udp", data.Flows[0].Protocol)
	require.Equal(t, 1001, data.Flows[0].SrcPort)
	require.Equal(t, uint64(200), data.Flows[0].Bytes)

	// The same flow, updated again, is pushed again; flows not updated are not.
	f.store.Apply("s1", []*netwatchv1.FlowDelta{delta(17, "10.0.0.1", "10.0.0.2", 1001, 53, 50)}, time.Now())
	m = until(t, c, "flows")
	require.NoError(t, json.Unmarshal(m.Data, &data))
	require.Len(t, data.Flows, 1)
	require.Equal(t, uint64(250), data.Flows[0].Bytes)
	// Nothing else changes: no more flows messages.
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		m, err := read(t, c, time.Until(deadline))
		if err != nil {
			break
		}
		require.NotEqual(t, "flows", m.Type, "unchanged flows pushed again: %s", m.Data)
	}
}

func TestBadFilterNamesTheField(t *testing.T) {
	f := newFixture(t, nil, false)
	c, _, err := f.dial(nil)
	require.NoError(t, err)
	for _, tc := range []struct {
		filter map[string]any
		field  string
	}{
		{map[string]any{"src_ip": "not-an-ip"}, "src_ip"},
		{map[string]any{"protocol": "bogus"}, "protocol"},
		{map[string]any{"port": 70000}, "port"},
		{map[string]any{"colour": "red"}, "colour"},
		{map[string]any{"q": "nope:1"}, "q"},
		{map[string]any{"status": true}, "status"},
		{map[string]any{"community_id": "1:short"}, "community_id"},
		{map[string]any{"application": "tls!"}, "application"},
		{map[string]any{"server_name": "a..example"}, "server_name"},
		{map[string]any{"host": "host/evil"}, "host"},
		{map[string]any{"asn": "AS4294967296"}, "asn"},
		{map[string]any{"asn": -1}, "asn"},
		{map[string]any{"country": "USA"}, "country"},
		{map[string]any{"q": "country:U1"}, "country"},
	} {
		send(t, c, map[string]any{"type": "subscribe", "filter": tc.filter})
		m := until(t, c, "error")
		var e struct{ Code, Field, Message string }
		require.NoError(t, json.Unmarshal(m.Data, &e))
		require.Equal(t, tc.field, e.Field, "%v: %s", tc.filter, m.Data)
		require.Equal(t, "INVALID_ARGUMENT", e.Code)
		require.Contains(t, e.Message, tc.field)
	}
}

func TestSlowClientGetsLostAndDoesNotDelayAFastOne(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Interval = 5 * time.Millisecond
		c.ProtocolsEvery = 5 * time.Millisecond
		c.QueueLength = 8
	}, true)
	// Big top-talker messages fill the socket buffers quickly.
	var ds []*netwatchv1.FlowDelta
	for i := range 200 {
		ds = append(ds, delta(6, netip.AddrFrom4([4]byte{10, 1, byte(i), 1}).String(), "10.2.0.1", uint32(1000+i), 443, uint64(1000+i)))
	}
	f.store.Apply("s1", ds, time.Now())

	slowDialer := &net.Dialer{}
	slow, _, err := f.dial(&websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := slowDialer.DialContext(ctx, network, addr)
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(4096)
			}
			return c, err
		},
	}}})
	require.NoError(t, err)
	fast, _, err := f.dial(nil)
	require.NoError(t, err)

	// The slow client reads nothing for a while; the fast one keeps receiving.
	start := time.Now()
	var fastMetrics int
	for time.Since(start) < 700*time.Millisecond {
		m, err := read(t, fast, 5*time.Second)
		require.NoError(t, err)
		if m.Type == "metrics" {
			fastMetrics++
		}
	}
	// 700ms at 5ms: up to 140 pushes (fewer on a loaded machine); a hub held up by the
	// slow client's full socket would stop after the first few.
	require.Greater(t, fastMetrics, 15, "the fast client was held up")

	// Now the slow client reads: after what was in flight it learns what it lost.
	var lost uint64
	deadline := time.Now().Add(5 * time.Second)
	for lost == 0 && time.Now().Before(deadline) {
		m, err := read(t, slow, time.Until(deadline))
		require.NoError(t, err)
		if m.Type == "lost" {
			var d struct{ Count uint64 }
			require.NoError(t, json.Unmarshal(m.Data, &d))
			lost = d.Count
		}
	}
	require.Greater(t, lost, uint64(0), "no lost message")
}

func TestIdleClientIsClosed(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.IdleTimeout = 300 * time.Millisecond }, false)
	idle, _, err := f.dial(nil) // never reads: never answers a ping
	require.NoError(t, err)
	active, _, err := f.dial(nil)
	require.NoError(t, err)
	// The active client reads (and so answers pings) for longer than the idle timeout
	// and the server's read and write timeouts.
	stop := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(stop) {
		_, err := read(t, active, time.Second)
		require.NoError(t, err, "the reading client was closed")
	}
	require.Equal(t, 1, f.hub.Clients(), "the idle client is still connected")
	// The idle client, reading now, finds the connection closed by the server.
	var closeErr error
	for closeErr == nil {
		_, closeErr = read(t, idle, 2*time.Second)
	}
	require.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(closeErr), "%v", closeErr)
}

func TestOriginIsChecked(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.AllowedOrigins = []string{"*.ops.example"} }, false)
	_, resp, err := f.dial(&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"http://evil.example"}}})
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)

	_, _, err = f.dial(&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://wall.ops.example"}}})
	require.NoError(t, err, "an allowed origin")
	_, _, err = f.dial(&websocket.DialOptions{HTTPHeader: http.Header{"Origin": {f.srv.URL}}})
	require.NoError(t, err, "the same origin")
}

func TestTokenIsRequired(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Token = "s3cret" }, false)
	_, resp, err := f.dial(nil)
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, resp, err = f.dial(&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer wrong"}}})
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	_, resp, err = f.dial(&websocket.DialOptions{Subprotocols: []string{Subprotocol, TokenSubprotocolPrefix + base64.RawURLEncoding.EncodeToString([]byte("wrong"))}})
	require.Error(t, err)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	_, _, err = f.dial(&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer s3cret"}}})
	require.NoError(t, err, "bearer header")
	c, _, err := f.dial(&websocket.DialOptions{Subprotocols: []string{Subprotocol, TokenSubprotocolPrefix + base64.RawURLEncoding.EncodeToString([]byte("s3cret"))}})
	require.NoError(t, err, "token subprotocol (browsers)")
	require.Equal(t, Subprotocol, c.Subprotocol(), "the token is never echoed back")
}

func TestPlainHTTPIsRefused(t *testing.T) {
	f := newFixture(t, nil, false)
	resp, err := http.Get(f.srv.URL + "/api/v1/ws")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUpgradeRequired, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	resp, err = http.Post(f.srv.URL+"/api/v1/ws", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

func TestClientCap(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxClients = 2 }, false)
	a, _, err := f.dial(nil)
	require.NoError(t, err)
	_, _, err = f.dial(nil)
	require.NoError(t, err)
	_, resp, err := f.dial(nil)
	require.Error(t, err)
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	// A slot frees when a client leaves.
	a.Close(websocket.StatusNormalClosure, "")
	require.Eventually(t, func() bool { return f.hub.Clients() < 2 }, 5*time.Second, 10*time.Millisecond)
	_, _, err = f.dial(nil)
	require.NoError(t, err)
}

func TestAlertsArePushedOnTransitions(t *testing.T) {
	f := newFixture(t, nil, false)
	sensor := &netwatchv1.Sensor{SensorId: "s1", Interface: "eth0", Connected: true,
		Metrics: &netwatchv1.SystemMetrics{InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP}}
	f.reg.set(sensor)
	c, _, err := f.dial(nil)
	require.NoError(t, err)
	until(t, c, "sensors")

	type alert struct{ ID, Kind, State, Severity, Sensor, Message string }
	next := func() alert {
		m := until(t, c, "alert")
		var a alert
		require.NoError(t, json.Unmarshal(m.Data, &a))
		return a
	}
	f.reg.set(&netwatchv1.Sensor{SensorId: "s1", Interface: "eth0", Connected: false,
		Metrics: &netwatchv1.SystemMetrics{InterfaceStatus: netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP}})
	a := next()
	require.Equal(t, alert{ID: "sensor_disconnected/s1", Kind: "sensor_disconnected", State: "raised", Severity: "critical", Sensor: "s1", Message: "sensor s1 is disconnected"}, a)

	// A new client is told of the active alert at once.
	c2, _, err := f.dial(nil)
	require.NoError(t, err)
	require.Equal(t, "raised", func() string {
		m := until(t, c2, "alert")
		var a alert
		require.NoError(t, json.Unmarshal(m.Data, &a))
		return a.State
	}())

	f.reg.set(sensor)
	a = next()
	require.Equal(t, "cleared", a.State)
	require.Equal(t, "sensor_disconnected/s1", a.ID)
}

func TestAlertConditions(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	cfg := DefaultAlertConfig()
	cfg.BandwidthBits = 8000
	a := newAlertState(cfg)
	decode := func(msgs [][]byte) []string {
		var out []string
		for _, b := range msgs {
			var m struct{ Data Alert }
			require.NoError(t, json.Unmarshal(b, &m))
			out = append(out, m.Data.State+" "+m.Data.ID)
		}
		return out
	}
	up := netwatchv1.InterfaceStatus_INTERFACE_STATUS_UP
	s := func(connected, stale bool, cpu float64, iface netwatchv1.InterfaceStatus, drops uint64) []*netwatchv1.Sensor {
		return []*netwatchv1.Sensor{{SensorId: "s1", Connected: connected, Stale: stale, KernelDrops: drops,
			Metrics: &netwatchv1.SystemMetrics{CpuUsage: cpu, InterfaceStatus: iface}}}
	}
	m := func(bps uint64) *netwatchv1.SystemMetrics { return &netwatchv1.SystemMetrics{BytesPerSecond: bps} }

	for i, step := range []struct {
		m        *netwatchv1.SystemMetrics
		sensors  []*netwatchv1.Sensor
		storeLen int
		want     []string
	}{
		{m(10), s(true, false, 10, up, 0), 10, nil},
		{m(2000), s(true, false, 10, up, 0), 10, []string{"raised high_bandwidth"}},
		{m(950), s(true, false, 10, up, 0), 10, nil}, // 7600 bit/s: above 90 %, stays
		{m(100), s(true, false, 90, up, 0), 10, []string{"cleared high_bandwidth", "raised sensor_cpu/s1"}},
		{m(100), s(true, true, 10, netwatchv1.InterfaceStatus_INTERFACE_STATUS_DOWN, 5), 95, []string{
			"raised store_near_cap", "raised sensor_stale/s1", "raised interface_down/s1", "cleared sensor_cpu/s1", "raised sensor_drops/s1"}},
		{m(100), s(true, false, 10, up, 5), 10, []string{"cleared store_near_cap", "cleared sensor_stale/s1", "cleared interface_down/s1"}},
		{m(100), nil, 10, []string{"cleared sensor_drops/s1"}}, // the sensor left the registry
	} {
		got := decode(a.evaluate(now.Add(time.Duration(i)*time.Second), step.m, step.sensors, step.storeLen, 100))
		require.Equal(t, step.want, got, "step %d", i)
	}

	// Drops clear after DropsQuiet without growth.
	a = newAlertState(cfg)
	require.Equal(t, []string{"raised sensor_drops/s1"}, decode(a.evaluate(now, nil, s(true, false, 0, up, 3), 0, 100)))
	require.Empty(t, decode(a.evaluate(now.Add(30*time.Second), nil, s(true, false, 0, up, 3), 0, 100)))
	require.Equal(t, []string{"cleared sensor_drops/s1"}, decode(a.evaluate(now.Add(61*time.Second), nil, s(true, false, 0, up, 3), 0, 100)))

	// Spool loss raises it too, and the message names what lostFlows counts:
	// flow updates (one per flow per dropped batch), not distinct flows.
	a = newAlertState(cfg)
	lossy := []*netwatchv1.Sensor{{SensorId: "s1", Connected: true, LostFlows: 4, LostPackets: 9, Metrics: &netwatchv1.SystemMetrics{InterfaceStatus: up}}}
	msgs := a.evaluate(now, nil, lossy, 0, 100)
	require.Len(t, msgs, 1)
	var raised struct{ Data Alert }
	require.NoError(t, json.Unmarshal(msgs[0], &raised))
	require.Equal(t, "sensor s1 is dropping: 0 kernel drops, 9 packets and 4 flow updates lost; the data is incomplete", raised.Data.Message)
}

func TestStopClosesClients(t *testing.T) {
	f := newFixture(t, nil, false)
	c, _, err := f.dial(nil)
	require.NoError(t, err)
	until(t, c, "metrics")
	f.hub.Stop()
	var rerr error
	for rerr == nil {
		_, rerr = read(t, c, 2*time.Second)
	}
	require.True(t, websocket.CloseStatus(rerr) == websocket.StatusGoingAway || errors.Is(rerr, net.ErrClosed), "%v", rerr)
}

// fakeEnricher names the addresses it holds.
type fakeEnricher map[netip.Addr]enrich.Host

func (f fakeEnricher) Lookup(a netip.Addr) enrich.Host { return f[a] }
func (f fakeEnricher) Names(a netip.Addr) []string {
	if n := f[a].Name; n != "" {
		return []string{n}
	}
	return nil
}
func (f fakeEnricher) NameMatcher(suffix string) func(netip.Addr) bool {
	return func(a netip.Addr) bool { n := f[a].Name; return n == suffix || strings.HasSuffix(n, "."+suffix) }
}

// TestFlowsMessageCarriesEnrichment: a subscription's flows carry the names, AS and
// country of each end (the query service's enricher), in the REST flow view, and a
// subscription filter takes the new fields.
func TestFlowsMessageCarriesEnrichment(t *testing.T) {
	f := newFixture(t, nil, false)
	f.hub.deps.Query.SetEnricher(fakeEnricher{
		netip.MustParseAddr("10.0.0.1"): {Name: "laptop.lan"},
		netip.MustParseAddr("10.0.0.2"): {Name: "dns.example.com", ASN: 13335, ASName: "CLOUDFLARENET", Country: "US"},
	})
	c, _, err := f.dial(nil)
	require.NoError(t, err)
	send(t, c, map[string]any{"type": "subscribe", "filter": map[string]any{"protocol": "udp", "application": "DNS", "asn": "as13335", "country": "us", "host": "example.com"}})
	m := until(t, c, "subscribed")
	require.Contains(t, string(m.Data), `"asn":"as13335"`, "the filter as sent")
	d := delta(17, "10.0.0.1", "10.0.0.2", 1001, 53, 200)
	d.Application = "dns"
	f.store.Apply("s1", []*netwatchv1.FlowDelta{d}, time.Now())
	m = until(t, c, "flows")
	var data struct{ Flows []map[string]any }
	require.NoError(t, json.Unmarshal(m.Data, &data))
	require.Len(t, data.Flows, 1, "%s", m.Data)
	for k, v := range map[string]any{
		"srcName": "laptop.lan", "srcAsn": 0.0, "srcCountry": "", "dstName": "dns.example.com", "dstAsn": 13335.0,
		"dstAsName": "CLOUDFLARENET", "dstCountry": "US", "communityId": "", "serverName": "",
	} {
		require.Equal(t, v, data.Flows[0][k], k)
	}
}
