package query

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"netwatch.dev/collector/internal/api"
	"netwatch.dev/collector/internal/enrich"
	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

const cid = "1:LQU9qZlK+B5F3KDmev6m5PMibrg="

// fakeEnricher knows the hosts it holds; names are the latest first.
type fakeEnricher map[netip.Addr]struct {
	host  enrich.Host
	names []string
}

func (f fakeEnricher) Lookup(a netip.Addr) enrich.Host { return f[a].host }
func (f fakeEnricher) Names(a netip.Addr) []string     { return f[a].names }
func (f fakeEnricher) NameMatcher(suffix string) func(netip.Addr) bool {
	return func(a netip.Addr) bool {
		n := f[a].host.Name
		return n == suffix || strings.HasSuffix(n, "."+suffix)
	}
}

var (
	hostA = netip.MustParseAddr("10.0.0.1")       // a laptop with a name only
	hostB = netip.MustParseAddr("93.184.216.34")  // a server with everything
	hostC = netip.MustParseAddr("2001:db8::53")   // unknown
	hostD = netip.MustParseAddr("104.16.132.229") // a name, AS and country
)

func testEnricher() fakeEnricher {
	e := fakeEnricher{}
	e[hostA] = struct {
		host  enrich.Host
		names []string
	}{enrich.Host{Name: "laptop.lan"}, []string{"laptop.lan", "old-name.lan"}}
	e[hostB] = struct {
		host  enrich.Host
		names []string
	}{enrich.Host{Name: "www.example.com", ASN: 15133, ASName: "EDGECAST", Country: "US"}, []string{"www.example.com"}}
	e[hostD] = struct {
		host  enrich.Host
		names []string
	}{enrich.Host{Name: "cdn.example.net", ASN: 13335, ASName: "CLOUDFLARENET", Country: "DE"}, []string{"cdn.example.net"}}
	return e
}

// TestIdentityParametersParse: each new filter, as a parameter and as a q term, is
// kept in its canonical spelling; a parameter overrides the same q term.
func TestIdentityParametersParse(t *testing.T) {
	type want struct {
		communityID, application, serverName, host, country string
		asn                                                 uint32
		hasASN                                              bool
	}
	for _, tc := range []struct {
		name string
		req  *netwatchv1.ListFlowsRequest
		want want
	}{
		{"none", &netwatchv1.ListFlowsRequest{}, want{}},
		{"community id as sent", &netwatchv1.ListFlowsRequest{CommunityId: cid}, want{communityID: cid}},
		{"known application, case folded", &netwatchv1.ListFlowsRequest{Application: "TLS"}, want{application: "tls"}},
		{"well-formed unknown application", &netwatchv1.ListFlowsRequest{Application: "my-app.v2_x"}, want{application: "my-app.v2_x"}},
		{"server name folded, root dot dropped", &netwatchv1.ListFlowsRequest{ServerName: "WWW.Example.COM."}, want{serverName: "www.example.com"}},
		{"host with service labels", &netwatchv1.ListFlowsRequest{Host: "_sip._tcp.Example.com"}, want{host: "_sip._tcp.example.com"}},
		{"single-label host", &netwatchv1.ListFlowsRequest{Host: "lan"}, want{host: "lan"}},
		{"asn plain", &netwatchv1.ListFlowsRequest{Asn: "13335"}, want{asn: 13335, hasASN: true}},
		{"asn with AS prefix", &netwatchv1.ListFlowsRequest{Asn: "AS13335"}, want{asn: 13335, hasASN: true}},
		{"asn with lower-case prefix", &netwatchv1.ListFlowsRequest{Asn: "as64512"}, want{asn: 64512, hasASN: true}},
		{"asn zero", &netwatchv1.ListFlowsRequest{Asn: "0"}, want{asn: 0, hasASN: true}},
		{"asn largest", &netwatchv1.ListFlowsRequest{Asn: "AS4294967295"}, want{asn: 4294967295, hasASN: true}},
		{"country upper-cased", &netwatchv1.ListFlowsRequest{Country: "de"}, want{country: "DE"}},
		{"all as q terms", &netwatchv1.ListFlowsRequest{
			Q: "community_id:" + cid + " application:dns server_name:Example.org host:lan asn:As1 country:fr",
		}, want{communityID: cid, application: "dns", serverName: "example.org", host: "lan", asn: 1, hasASN: true, country: "FR"}},
		{"parameter overrides q term", &netwatchv1.ListFlowsRequest{Q: "country:fr asn:1", Country: "de", Asn: "2"},
			want{country: "DE", asn: 2, hasASN: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fq, err := ParseFlowQuery(tc.req)
			require.NoError(t, err)
			assert.Equal(t, tc.want, want{fq.CommunityID, fq.Application, fq.ServerName, fq.Host, fq.Country, fq.ASN, fq.HasASN})
		})
	}
}

// badIdentity are invalid values of each new filter parameter.
var badIdentity = []struct {
	name, param, value string
}{
	{"community id of another version", "community_id", "2:LQU9qZlK+B5F3KDmev6m5PMibrg="},
	{"community id too short", "community_id", "1:LQU9qZlK+B5F3KDmev6m5PMibrg"},
	{"community id not base64", "community_id", "1:LQU9qZlK+B5F3KDmev6m5PMib!g="},
	{"community id without version", "community_id", "LQU9qZlK+B5F3KDmev6m5PMibrg="},
	{"application with a bang", "application", "tls!"},
	{"application too long", "application", strings.Repeat("a", 33)},
	{"application with a space", "application", "t ls"},
	{"server name with an empty label", "server_name", "a..example"},
	{"server name label starting with a hyphen", "server_name", "-bad.example"},
	{"server name label too long", "server_name", strings.Repeat("a", 64) + ".com"},
	{"server name too long", "server_name", strings.Repeat("abcdefghi.", 26)},
	{"server name not ASCII", "server_name", "ünï.example"},
	{"host with a slash", "host", "host/evil"},
	{"host only a dot", "host", "."},
	{"host with a space", "host", "a b"},
	{"asn prefix only", "asn", "AS"},
	{"asn above 32 bits", "asn", "4294967296"},
	{"asn negative", "asn", "-1"},
	{"asn signed after prefix", "asn", "AS+5"},
	{"asn with trailing text", "asn", "13335x"},
	{"asn spelled ASN", "asn", "ASN13335"},
	{"asn with a space", "asn", " 13335"},
	{"country of three letters", "country", "USA"},
	{"country of one letter", "country", "U"},
	{"country with a digit", "country", "U1"},
	{"country not ASCII", "country", "ÉU"},
}

func identityRequest(param, v string) *netwatchv1.ListFlowsRequest {
	req := &netwatchv1.ListFlowsRequest{}
	switch param {
	case "community_id":
		req.CommunityId = v
	case "application":
		req.Application = v
	case "server_name":
		req.ServerName = v
	case "host":
		req.Host = v
	case "asn":
		req.Asn = v
	case "country":
		req.Country = v
	}
	return req
}

// TestBadIdentityParametersNameThemselves: as a parameter and as a q term, a bad
// value is InvalidArgument naming the parameter (gRPC), never accepted.
func TestBadIdentityParametersNameThemselves(t *testing.T) {
	svc := New(store.New(store.DefaultConfig()), "test", time.Now)
	for _, tc := range badIdentity {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.ListFlows(context.Background(), identityRequest(tc.param, tc.value))
			requireParamError(t, err, tc.param, "%s=%q", tc.param, tc.value)
			if !strings.ContainsAny(tc.value, " ") {
				_, err = ParseFlowQuery(&netwatchv1.ListFlowsRequest{Q: tc.param + ":" + tc.value})
				requireParamError(t, err, tc.param, "q=%s:%q", tc.param, tc.value)
			}
		})
	}
	_, err := ParseSearch("colour:red")
	requireParamError(t, err, "q")
	assert.ErrorContains(t, err, "community_id, application, server_name, host, asn, country", "the error lists the new fields")
}

// TestFilterAsksTheEnricher: the identity filters go to the store as they are, and
// host, asn and country become one predicate each on addresses, answered by the
// enricher; without an enricher they match no address.
func TestFilterAsksTheEnricher(t *testing.T) {
	addrs := []netip.Addr{hostA, hostB, hostC, hostD}
	truth := func(f store.Filter) [][]bool {
		var out [][]bool
		for _, p := range f.Hosts {
			var row []bool
			for _, a := range addrs {
				row = append(row, p(a))
			}
			out = append(out, row)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		req      *netwatchv1.ListFlowsRequest
		enricher enrich.Enricher
		want     [][]bool // per predicate, for hostA, hostB, hostC, hostD
	}{
		{"no host filter", &netwatchv1.ListFlowsRequest{Application: "tls"}, testEnricher(), nil},
		{"host suffix on a label boundary", &netwatchv1.ListFlowsRequest{Host: "example.com"}, testEnricher(),
			[][]bool{{false, true, false, false}}},
		{"host exact", &netwatchv1.ListFlowsRequest{Host: "laptop.lan"}, testEnricher(), [][]bool{{true, false, false, false}}},
		{"host not mid-label", &netwatchv1.ListFlowsRequest{Host: "ample.com"}, testEnricher(), [][]bool{{false, false, false, false}}},
		{"asn", &netwatchv1.ListFlowsRequest{Asn: "AS13335"}, testEnricher(), [][]bool{{false, false, false, true}}},
		{"asn zero is no known AS", &netwatchv1.ListFlowsRequest{Asn: "0"}, testEnricher(), [][]bool{{true, false, true, false}}},
		{"country", &netwatchv1.ListFlowsRequest{Country: "us"}, testEnricher(), [][]bool{{false, true, false, false}}},
		{"all three, one predicate each", &netwatchv1.ListFlowsRequest{Host: "example.net", Asn: "13335", Country: "DE"}, testEnricher(),
			[][]bool{{false, false, false, true}, {false, false, false, true}, {false, false, false, true}}},
		{"no enricher: nothing matches", &netwatchv1.ListFlowsRequest{Host: "example.com", Country: "US"}, nil,
			[][]bool{{false, false, false, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fq, err := ParseFlowQuery(tc.req)
			require.NoError(t, err)
			f := fq.Filter(t0, time.Hour, tc.enricher)
			assert.Equal(t, tc.want, truth(f))
			assert.Equal(t, fq.Application, f.Application)
		})
	}
	fq, err := ParseFlowQuery(&netwatchv1.ListFlowsRequest{CommunityId: cid, Application: "QUIC", ServerName: "Example.com"})
	require.NoError(t, err)
	f := fq.Filter(t0, time.Hour, nil)
	assert.Equal(t, [3]string{cid, "quic", "example.com"}, [3]string{f.CommunityID, f.Application, f.ServerName})
	assert.Empty(t, f.Hosts)
}

// TestFlowViewCarriesIdentityAndEnrichment: the stored flow's community id, server
// name and application, and what the enricher knows of each end, are in the view
// and the NetworkFlow; without an enricher the names are empty.
func TestFlowViewCarriesIdentityAndEnrichment(t *testing.T) {
	f := store.Flow{Key: store.Key{SensorID: "s1", Protocol: 6, Src: hostA, Dst: hostB, SrcPort: 50000, DstPort: 443, FirstSeen: t0.UnixNano()},
		LastSeen: t0.UnixNano(), CommunityID: cid, ServerName: "www.example.com", Application: "tls"}
	svc := New(store.New(store.DefaultConfig()), "test", time.Now)
	m := svc.NetworkFlow(&f)
	assert.Equal(t, [3]string{cid, "www.example.com", "tls"}, [3]string{m.GetCommunityId(), m.GetServerName(), m.GetApplication()})
	assert.Empty(t, m.GetSrcName()+m.GetDstName()+m.GetDstAsName()+m.GetDstCountry())
	assert.Zero(t, m.GetDstAsn())

	svc.SetEnricher(testEnricher())
	m = svc.NetworkFlow(&f)
	assert.Equal(t, "laptop.lan", m.GetSrcName())
	assert.Equal(t, []any{uint32(0), "", ""}, []any{m.GetSrcAsn(), m.GetSrcAsName(), m.GetSrcCountry()})
	assert.Equal(t, []any{"www.example.com", uint32(15133), "EDGECAST", "US"}, []any{m.GetDstName(), m.GetDstAsn(), m.GetDstAsName(), m.GetDstCountry()})
	assert.Equal(t, cid, m.GetCommunityId())

	svc.SetEnricher(nil)
	assert.Empty(t, svc.NetworkFlow(&f).GetDstName(), "a nil enricher is no enricher")
}

// apiServers serves svc over real gRPC on loopback and over the REST handler.
func apiServers(t *testing.T, svc *Service, now func() time.Time) (netwatchv1.QueryServiceClient, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	netwatchv1.RegisterQueryServiceServer(gs, svc)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	h, err := api.NewHandler(context.Background(), svc, api.Options{Now: now})
	require.NoError(t, err)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return netwatchv1.NewQueryServiceClient(conn), srv.URL
}

func getBody(t *testing.T, u string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b json.RawMessage
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		rows, err := csv.NewReader(resp.Body).ReadAll()
		require.NoError(t, err)
		b, _ = json.Marshal(rows)
		return resp.StatusCode, b
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&b))
	return resp.StatusCode, b
}

// TestListFlowsEnrichedOverGRPCRESTAndCSV: the names, AS and country of each end
// are in ListFlows over gRPC, in the REST JSON and in the CSV download's columns.
func TestListFlowsEnrichedOverGRPCRESTAndCSV(t *testing.T) {
	st := store.New(store.DefaultConfig())
	clk := &clock{t0}
	st.Apply("s1", []*netwatchv1.FlowDelta{
		delta(hostA.String(), hostB.String(), 50000, t0.Add(-time.Minute), t0.Add(-30*time.Second), 100, 200, 3),
	}, t0)
	svc := New(st, "test", clk.now)
	svc.SetEnricher(testEnricher())
	client, base := apiServers(t, svc, clk.now)

	resp, err := client.ListFlows(context.Background(), &netwatchv1.ListFlowsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetFlows(), 1)
	f := resp.GetFlows()[0]
	assert.Equal(t, []any{"laptop.lan", "www.example.com", uint32(15133), "EDGECAST", "US"},
		[]any{f.GetSrcName(), f.GetDstName(), f.GetDstAsn(), f.GetDstAsName(), f.GetDstCountry()})

	code, b := getBody(t, base+"/api/v1/flows")
	require.Equal(t, http.StatusOK, code, "%s", b)
	var page struct{ Flows []map[string]any }
	require.NoError(t, json.Unmarshal(b, &page))
	require.Len(t, page.Flows, 1)
	for k, v := range map[string]any{
		"srcName": "laptop.lan", "dstName": "www.example.com", "srcAsn": 0.0, "srcAsName": "", "srcCountry": "",
		"dstAsn": 15133.0, "dstAsName": "EDGECAST", "dstCountry": "US", "communityId": "", "serverName": "", "application": "",
	} {
		assert.Equal(t, v, page.Flows[0][k], k)
	}

	code, b = getBody(t, base+"/api/v1/flows?format=csv")
	require.Equal(t, http.StatusOK, code, "%s", b)
	var rows [][]string
	require.NoError(t, json.Unmarshal(b, &rows))
	require.Len(t, rows, 2)
	n := len(rows[0])
	assert.Equal(t, []string{"communityId", "serverName", "application", "srcName", "dstName", "srcAsn", "srcAsName",
		"srcCountry", "dstAsn", "dstAsName", "dstCountry"}, rows[0][n-11:], "the new columns, last, in order")
	assert.Equal(t, []string{"", "", "", "laptop.lan", "www.example.com", "0", "", "", "15133", "EDGECAST", "US"}, rows[1][n-11:])
}

type restError struct {
	Error struct {
		Code    string
		Message string
		Details map[string]string
	}
}

// TestBadIdentityParametersAre400NamingThem: over REST (JSON and CSV), each bad new
// parameter, and each bad new q term, is a 400 whose details name it.
func TestBadIdentityParametersAre400NamingThem(t *testing.T) {
	svc := New(store.New(store.DefaultConfig()), "test", time.Now)
	_, base := apiServers(t, svc, time.Now)
	for _, tc := range badIdentity {
		t.Run(tc.name, func(t *testing.T) {
			for _, query := range []string{
				tc.param + "=" + url.QueryEscape(tc.value),
				tc.param + "=" + url.QueryEscape(tc.value) + "&format=csv",
				"q=" + url.QueryEscape(tc.param+":"+tc.value),
			} {
				if strings.HasPrefix(query, "q=") && strings.Contains(tc.value, " ") {
					continue // a space splits q terms
				}
				code, b := getBody(t, base+"/api/v1/flows?"+query)
				require.Equal(t, http.StatusBadRequest, code, "%s: %s", query, b)
				var e restError
				require.NoError(t, json.Unmarshal(b, &e))
				assert.Equal(t, map[string]string{"parameter": tc.param}, e.Error.Details, query)
				assert.Equal(t, "INVALID_ARGUMENT", e.Error.Code, query)
				assert.True(t, strings.HasPrefix(e.Error.Message, tc.param+": "), "%s: %s", query, e.Error.Message)
			}
		})
	}
}
