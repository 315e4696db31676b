package query

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

func hostDelta(proto uint32, src string, sport uint32, dst string, dport uint32, first, last time.Time, srcB, dstB, pkts uint64) *netwatchv1.FlowDelta {
	return &netwatchv1.FlowDelta{
		Key: &netwatchv1.FlowKey{Protocol: proto, SrcAddr: netip.MustParseAddr(src).AsSlice(), SrcPort: sport,
			DstAddr: netip.MustParseAddr(dst).AsSlice(), DstPort: dport},
		SrcPackets: pkts, SrcBytes: srcB, DstBytes: dstB,
		FirstSeen: timestamppb.New(first), LastSeen: timestamppb.New(last), Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
	}
}

// hostServer holds flows around hostA (10.0.0.1) at a clock 30 s past a minute.
func hostServer(t *testing.T) (*Service, netwatchv1.QueryServiceClient, string, time.Time) {
	t.Helper()
	now := t0.Add(30 * time.Second)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	st := store.New(store.DefaultConfig())
	st.Apply("s1", []*netwatchv1.FlowDelta{
		// hostA to hostB:443 twice (6000 and 1000 bytes), inside the window.
		hostDelta(6, "10.0.0.1", 40000, hostB.String(), 443, ago(3*time.Minute), ago(2*time.Minute), 1000, 5000, 10),
		hostDelta(6, "10.0.0.1", 40001, hostB.String(), 443, ago(time.Minute), ago(40*time.Second), 500, 500, 4),
		// hostD to hostA's ssh: hostA serves it (1000 bytes).
		hostDelta(6, hostD.String(), 50000, "10.0.0.1", 22, ago(2*time.Minute), ago(time.Minute), 300, 700, 6),
		// hostA to a resolver (200 bytes).
		hostDelta(17, "10.0.0.1", 5353, "8.8.8.8", 53, ago(30*time.Second), ago(20*time.Second), 100, 100, 2),
		// Outside the 5-minute window.
		hostDelta(6, "10.0.0.1", 40002, "1.1.1.1", 443, ago(20*time.Minute), ago(15*time.Minute), 9000, 9000, 20),
		// Not hostA's.
		hostDelta(6, "10.0.0.7", 1234, "10.0.0.8", 80, ago(time.Minute), ago(30*time.Second), 777, 777, 7),
	}, now)
	clk := &clock{now}
	svc := New(st, "test", clk.now)
	svc.SetEnricher(testEnricher())
	client, base := apiServers(t, svc, clk.now)
	return svc, client, base, now
}

// hostBody is GET /api/v1/hosts/{ip} as a client reads it.
type hostBody struct {
	IP          string `json:"ip"`
	Names       []string
	ASN         uint32 `json:"asn"`
	ASName      string `json:"asName"`
	Country     string
	TimeWindow  string    `json:"time_window"`
	GeneratedAt time.Time `json:"generated_at"`
	Bytes       uint64
	Packets     uint64
	FlowCount   uint64 `json:"flowCount"`
	FlowsInit   uint64 `json:"flowsInitiated"`
	Series      []struct {
		Timestamp      time.Time
		Bytes, Packets uint64
	}
	Peers []struct {
		IP                    string `json:"ip"`
		Name                  string
		ASN                   uint32 `json:"asn"`
		ASName                string `json:"asName"`
		Country               string
		Bytes, Packets, Flows uint64
	}
	Services []struct {
		Protocol     uint32
		ProtocolName string `json:"protocolName"`
		Port         uint32
		Application  string
		Bytes, Flows uint64
		Served       bool
	}
	Applications []struct {
		Application  string
		Bytes, Flows uint64
	}
}

// TestGetHostOverGRPCAndREST: a host's window totals, peers (with their names, AS
// and country), services (served or used) and applications, over gRPC and REST
// alike; the series adds up to the totals; the limit cuts every list.
func TestGetHostOverGRPCAndREST(t *testing.T) {
	_, client, base, now := hostServer(t)

	g, err := client.GetHost(context.Background(), &netwatchv1.GetHostRequest{Ip: "10.0.0.1"})
	require.NoError(t, err)
	code, b := getBody(t, base+"/api/v1/hosts/10.0.0.1")
	require.Equal(t, http.StatusOK, code, "%s", b)
	var r hostBody
	require.NoError(t, json.Unmarshal(b, &r))

	// The same answer both ways.
	assert.Equal(t, g.GetBytes(), r.Bytes)
	assert.Equal(t, len(g.GetPeers()), len(r.Peers))
	assert.Equal(t, g.GetGeneratedAt().AsTime(), r.GeneratedAt)

	assert.Equal(t, "10.0.0.1", r.IP)
	assert.Equal(t, []string{"laptop.lan", "old-name.lan"}, r.Names)
	assert.Equal(t, "5m", r.TimeWindow)
	assert.Equal(t, now, r.GeneratedAt)
	assert.Equal(t, uint64(6000+1000+1000+200), r.Bytes)
	assert.Equal(t, uint64(10+4+6+2), r.Packets)
	assert.Equal(t, uint64(4), r.FlowCount)
	assert.Equal(t, uint64(3), r.FlowsInit)

	// One point per minute bucket from the widened start to now, adding up to the totals.
	require.Len(t, r.Series, 6)
	var sb, sp uint64
	for i, p := range r.Series {
		assert.Equal(t, t0.Add(time.Duration(i-5)*time.Minute), p.Timestamp, "point %d", i)
		sb, sp = sb+p.Bytes, sp+p.Packets
	}
	assert.Equal(t, [2]uint64{r.Bytes, r.Packets}, [2]uint64{sb, sp})
	assert.Len(t, g.GetSeries(), 6)

	type peer struct {
		IP, Name, ASName, Country string
		ASN                       uint32
		Bytes, Packets, Flows     uint64
	}
	var peers []peer
	for _, p := range r.Peers {
		peers = append(peers, peer{p.IP, p.Name, p.ASName, p.Country, p.ASN, p.Bytes, p.Packets, p.Flows})
	}
	assert.Equal(t, []peer{
		{hostB.String(), "www.example.com", "EDGECAST", "US", 15133, 7000, 14, 2},
		{hostD.String(), "cdn.example.net", "CLOUDFLARENET", "DE", 13335, 1000, 6, 1},
		{"8.8.8.8", "", "", "", 0, 200, 2, 1},
	}, peers)

	type service struct {
		Protocol     uint32
		Name         string
		Port         uint32
		App          string
		Bytes, Flows uint64
		Served       bool
	}
	var services []service
	for _, s := range r.Services {
		services = append(services, service{s.Protocol, s.ProtocolName, s.Port, s.Application, s.Bytes, s.Flows, s.Served})
	}
	assert.Equal(t, []service{
		{6, "tcp", 443, "", 7000, 2, false},
		{6, "tcp", 22, "", 1000, 1, true},
		{17, "udp", 53, "", 200, 1, false},
	}, services)
	require.Len(t, r.Applications, 1, "%s", b)
	assert.Equal(t, UnknownApplication, r.Applications[0].Application, "flows without a label")
	assert.Equal(t, [2]uint64{8200, 4}, [2]uint64{r.Applications[0].Bytes, r.Applications[0].Flows})

	// limit cuts each list; the totals stay; a longer window takes in the old flow.
	code, b = getBody(t, base+"/api/v1/hosts/10.0.0.1?limit=1&duration=30m")
	require.Equal(t, http.StatusOK, code, "%s", b)
	r = hostBody{}
	require.NoError(t, json.Unmarshal(b, &r))
	assert.Equal(t, uint64(8200+18000), r.Bytes)
	assert.Equal(t, "30m", r.TimeWindow)
	require.Len(t, r.Peers, 1)
	assert.Equal(t, "1.1.1.1", r.Peers[0].IP)
	assert.Len(t, r.Services, 1)
	assert.Len(t, r.Applications, 1)
	assert.Len(t, r.Series, 31)

	// The responder's view: hostB served 443 to hostA, which is its peer.
	g, err = client.GetHost(context.Background(), &netwatchv1.GetHostRequest{Ip: hostB.String()})
	require.NoError(t, err)
	assert.Equal(t, []string{"www.example.com"}, g.GetNames())
	assert.Equal(t, []any{uint32(15133), "EDGECAST", "US"}, []any{g.GetAsn(), g.GetAsName(), g.GetCountry()})
	assert.Equal(t, uint64(0), g.GetFlowsInitiated())
	require.Len(t, g.GetServices(), 1)
	assert.True(t, g.GetServices()[0].GetServed())
	assert.Equal(t, "laptop.lan", g.GetPeers()[0].GetName())
}

// TestGetHostOfASilentAddress: an address with no traffic in the window is 200 with
// zero totals, a series of zero buckets and empty lists, not 404; an IPv4-mapped
// IPv6 address is its IPv4 address.
func TestGetHostOfASilentAddress(t *testing.T) {
	_, client, base, _ := hostServer(t)
	code, b := getBody(t, base+"/api/v1/hosts/192.0.2.99")
	require.Equal(t, http.StatusOK, code, "%s", b)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	for _, k := range []string{"names", "peers", "services", "applications"} {
		assert.Equal(t, []any{}, raw[k], "%s is an empty list, not null", k)
	}
	for _, k := range []string{"bytes", "packets", "flowCount", "flowsInitiated", "asn"} {
		assert.Equal(t, 0.0, raw[k], k)
	}
	series := raw["series"].([]any)
	require.Len(t, series, 6)
	for _, p := range series {
		assert.Equal(t, 0.0, p.(map[string]any)["bytes"])
	}

	g, err := client.GetHost(context.Background(), &netwatchv1.GetHostRequest{Ip: "::ffff:10.0.0.1"})
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.1", g.GetIp())
	assert.Equal(t, uint64(8200), g.GetBytes())
}

// TestGetHostBadParametersNameThemselves: a bad ip, duration or limit is
// InvalidArgument naming it over gRPC and a 400 naming it over REST; so is a
// parameter the endpoint does not take.
func TestGetHostBadParametersNameThemselves(t *testing.T) {
	_, client, base, _ := hostServer(t)
	for _, tc := range []struct {
		name, ip, duration, limit, param string
	}{
		{"ip not an address", "not-an-ip", "", "", "ip"},
		{"ip a prefix", "10.0.0.0_8", "", "", "ip"},
		{"ip with a zone", "fe80::1%eth0", "", "", "ip"},
		{"ip of five octets", "10.0.0.0.1", "", "", "ip"},
		{"duration too short", "10.0.0.1", "30s", "", "duration"},
		{"duration too long", "10.0.0.1", "61m", "", "duration"},
		{"duration not a duration", "10.0.0.1", "5", "", "duration"},
		{"limit zero", "10.0.0.1", "", "0", "limit"},
		{"limit above 50", "10.0.0.1", "", "51", "limit"},
		{"limit not a number", "10.0.0.1", "", "ten", "limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.GetHost(context.Background(), &netwatchv1.GetHostRequest{Ip: tc.ip, Duration: tc.duration, Limit: tc.limit})
			requireParamError(t, err, tc.param)
			q := url.Values{}
			if tc.duration != "" {
				q.Set("duration", tc.duration)
			}
			if tc.limit != "" {
				q.Set("limit", tc.limit)
			}
			code, b := getBody(t, base+"/api/v1/hosts/"+url.PathEscape(tc.ip)+"?"+q.Encode())
			require.Equal(t, http.StatusBadRequest, code, "%s", b)
			var e restError
			require.NoError(t, json.Unmarshal(b, &e))
			assert.Equal(t, map[string]string{"parameter": tc.param}, e.Error.Details)
			assert.True(t, strings.HasPrefix(e.Error.Message, tc.param+": "), e.Error.Message)
		})
	}
	for _, p := range []string{"colour=red", "ip=10.0.0.2", "limit=1&limit=2"} {
		code, b := getBody(t, base+"/api/v1/hosts/10.0.0.1?"+p)
		require.Equal(t, http.StatusBadRequest, code, "%s: %s", p, b)
		var e restError
		require.NoError(t, json.Unmarshal(b, &e))
		assert.Equal(t, strings.SplitN(p, "=", 2)[0], e.Error.Details["parameter"], p)
	}
}

// TestSummarizeRanksAndLabels: services are keyed by protocol, responder port and
// side, each with the label most of its flows had; applications rank by bytes, the
// unlabelled flows as "unknown"; ties fall back to the keys.
func TestSummarizeRanksAndLabels(t *testing.T) {
	flow := func(src, dst netip.Addr, dport uint16, app string) store.Flow {
		return store.Flow{Key: store.Key{Protocol: 6, Src: src, Dst: dst, SrcPort: 40000, DstPort: dport}, Application: app}
	}
	flows := []store.HostFlow{
		{Flow: flow(hostA, hostB, 443, "tls"), Bytes: 100, Packets: 1, Initiated: true},
		{Flow: flow(hostA, hostB, 443, "tls"), Bytes: 100, Packets: 1, Initiated: true},
		{Flow: flow(hostA, hostB, 443, "http"), Bytes: 500, Packets: 1, Initiated: true}, // more bytes, fewer flows
		{Flow: flow(hostA, hostC, 443, ""), Bytes: 50, Packets: 1, Initiated: true},
		{Flow: flow(hostD, hostA, 443, "quic"), Bytes: 800, Packets: 1},                // hostA serves 443 too: another service
		{Flow: flow(hostD, hostA, 8080, ""), Bytes: 10, Packets: 1},                    // no label at all
		{Flow: flow(hostA, hostD, 25, "smtp"), Bytes: 10, Packets: 1, Initiated: true}, // ties 8080 on traffic
	}
	resp := &netwatchv1.GetHostResponse{}
	summarize(resp, nil, 10, func(fn func(store.HostFlow)) {
		for _, f := range flows {
			fn(f)
		}
	})
	type svc struct {
		port         uint32
		app          string
		bytes, flows uint64
		served       bool
	}
	var got []svc
	for _, s := range resp.GetServices() {
		got = append(got, svc{s.GetPort(), s.GetApplication(), s.GetBytes(), s.GetFlows(), s.GetServed()})
	}
	assert.Equal(t, []svc{
		{443, "quic", 800, 1, true},
		{443, "tls", 750, 4, false},
		{25, "smtp", 10, 1, false},
		{8080, "", 10, 1, true},
	}, got)
	var apps []string
	for _, a := range resp.GetApplications() {
		apps = append(apps, a.GetApplication())
	}
	assert.Equal(t, []string{"quic", "http", "tls", "unknown", "smtp"}, apps, "unknown 60 bytes, smtp 10")
	assert.Equal(t, uint64(7), resp.GetFlowCount())
	assert.Equal(t, uint64(5), resp.GetFlowsInitiated())
	assert.Equal(t, "", resp.GetPeers()[0].GetName(), "no enricher: no names")
	assert.Equal(t, hostD.String(), resp.GetPeers()[0].GetIp())
}
