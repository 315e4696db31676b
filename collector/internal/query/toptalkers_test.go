package query

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"netwatch.dev/collector/internal/enrich"
	"netwatch.dev/collector/internal/geoip"
	"netwatch.dev/collector/internal/geoip/geoiptest"
	"netwatch.dev/collector/internal/names"
	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// enriched is a service over four flows between hosts of two autonomous systems
// (and countries) and private ones, with GeoIP databases written for the test and
// a DNS name observed for 192.0.2.1.
func enriched(t *testing.T) (*Service, *clock) {
	t.Helper()
	dir := t.TempDir()
	asn, err := geoip.Open(geoip.ASN, geoiptest.WriteFile(t, dir, "asn.mmdb", geoiptest.ASNBytes(t, map[string]geoiptest.AS{
		"192.0.2.0/24":    {Number: 13335, Org: "Cloudflare, Inc."},
		"198.51.100.0/24": {Number: 64500}, // no organization
	})), nil)
	require.NoError(t, err)
	country, err := geoip.Open(geoip.Country, geoiptest.WriteFile(t, dir, "country.mmdb", geoiptest.CountryBytes(t, "", map[string]geoiptest.Place{
		"192.0.2.0/24": {Country: "US"}, "198.51.100.0/24": {Registered: "DE"},
	})), nil)
	require.NoError(t, err)
	clk := &clock{t0.Add(30 * time.Second)}
	dns := names.New(names.DefaultConfig(), clk.now)
	dns.Observe("s1", []*netwatchv1.DnsObservation{{Name: "www.example.com", Addr: []byte{192, 0, 2, 1}}})

	st := store.New(store.DefaultConfig())
	svc := New(st, "test", clk.now)
	svc.SetEnricher(&enrich.Tables{DNS: dns, ASN: asn, Country: country})
	now := clk.t
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	st.Apply("s1", []*netwatchv1.FlowDelta{
		delta("192.0.2.1", "198.51.100.1", 1, ago(2*time.Minute), ago(time.Minute), 800, 200, 10), // A: AS13335 US <-> AS64500 DE
		delta("192.0.2.1", "192.0.2.2", 2, ago(2*time.Minute), ago(time.Minute), 500, 0, 5),       // B: within AS13335
		delta("10.0.0.1", "198.51.100.1", 3, ago(2*time.Minute), ago(time.Minute), 300, 0, 3),     // C: unknown <-> AS64500
		delta("10.0.0.1", "10.0.0.2", 4, ago(2*time.Minute), ago(time.Minute), 200, 0, 2),         // D: unknown only
	}, now)
	return svc, clk
}

type groupRow struct {
	id, name    string
	bytes, pkts uint64
	flows, rank uint32
	pct         float64
	ports       []uint32
}

func groupRows(t *testing.T, svc *Service, by string) []groupRow {
	t.Helper()
	resp, err := svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{By: by})
	require.NoError(t, err)
	var out []groupRow
	for _, tt := range resp.GetTopTalkers() {
		r := groupRow{tt.GetIdentifier(), tt.GetDisplayName(), tt.GetTotalBytes(), tt.GetTotalPackets(), tt.GetFlowCount(), tt.GetRank(), tt.GetPercentageOfTotal(), nil}
		for _, f := range tt.GetFlows() {
			r.ports = append(r.ports, f.GetSrcPort())
		}
		out = append(out, r)
	}
	return out
}

// TestTopTalkersByASNAndCountry: a flow counts once for each distinct AS (or
// country) of its ends; hosts without one are "unknown".
func TestTopTalkersByASNAndCountry(t *testing.T) {
	svc, _ := enriched(t)
	// Window bytes: A 1000, B 500, C 300, D 200: 2000.
	assert.Equal(t, []groupRow{
		{"AS13335", "Cloudflare, Inc.", 1500, 15, 2, 1, 75, []uint32{1, 2}},
		{"AS64500", "AS64500", 1300, 13, 2, 2, 65, []uint32{1, 3}},
		{"unknown", "unknown", 500, 5, 2, 3, 25, []uint32{3, 4}},
	}, groupRows(t, svc, "asn"))
	assert.Equal(t, []groupRow{
		{"US", "US", 1500, 15, 2, 1, 75, []uint32{1, 2}},
		{"DE", "DE", 1300, 13, 2, 2, 65, []uint32{1, 3}},
		{"unknown", "unknown", 500, 5, 2, 3, 25, []uint32{3, 4}},
	}, groupRows(t, svc, "country"))

	resp, err := svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{By: "asn", Limit: "1"})
	require.NoError(t, err)
	require.Len(t, resp.GetTopTalkers(), 1)
	assert.Equal(t, "AS13335", resp.GetTopTalkers()[0].GetIdentifier())
}

// TestTopTalkersDisplayTheDNSName: a host's display name is its DNS name when one
// was observed, else its address; the identifier stays the address.
func TestTopTalkersDisplayTheDNSName(t *testing.T) {
	svc, _ := enriched(t)
	rows := groupRows(t, svc, "")
	display := map[string]string{}
	for _, r := range rows {
		display[r.id] = r.name
	}
	assert.Equal(t, map[string]string{
		"192.0.2.1": "www.example.com", "198.51.100.1": "198.51.100.1", "192.0.2.2": "192.0.2.2",
		"10.0.0.1": "10.0.0.1", "10.0.0.2": "10.0.0.2",
	}, display)
	assert.Equal(t, "192.0.2.1", rows[0].id)
}

// TestTopTalkersByGroupWithoutEnricher: no GeoIP: everything is unknown, by=asn
// and by=country still answer; display names are the addresses.
func TestTopTalkersByGroupWithoutEnricher(t *testing.T) {
	st := store.New(store.DefaultConfig())
	clk := &clock{t0.Add(30 * time.Second)}
	svc := New(st, "test", clk.now)
	st.Apply("s1", []*netwatchv1.FlowDelta{
		delta("192.0.2.1", "198.51.100.1", 1, clk.t.Add(-time.Minute), clk.t, 800, 200, 10),
		delta("10.0.0.1", "10.0.0.2", 2, clk.t.Add(-time.Minute), clk.t, 300, 0, 3),
	}, clk.t)
	for _, by := range []string{"asn", "country"} {
		assert.Equal(t, []groupRow{{"unknown", "unknown", 1300, 13, 2, 1, 100, []uint32{1, 2}}}, groupRows(t, svc, by), by)
	}
	svc.SetEnricher(&enrich.Tables{}) // an enricher that knows nothing
	assert.Equal(t, []groupRow{{"unknown", "unknown", 1300, 13, 2, 1, 100, []uint32{1, 2}}}, groupRows(t, svc, "asn"))
	for _, r := range groupRows(t, svc, "any") {
		assert.Equal(t, r.id, r.name)
	}
	_, err := svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{By: "as"})
	requireParamError(t, err, "by")
	_, err = svc.ListTopTalkers(context.Background(), &netwatchv1.ListTopTalkersRequest{By: "ASN"})
	requireParamError(t, err, "by")
}

// TestTopTalkersCacheIsPerBy: cached answers are kept apart by by.
func TestTopTalkersCacheIsPerBy(t *testing.T) {
	svc, _ := enriched(t)
	svc.CacheTopTalkers(time.Minute)
	first := func(by string) string {
		rows := groupRows(t, svc, by)
		require.NotEmpty(t, rows)
		return rows[0].id
	}
	assert.Equal(t, "192.0.2.1", first("any"))
	assert.Equal(t, "AS13335", first("asn"))
	assert.Equal(t, "US", first("country"))
	assert.Equal(t, "192.0.2.1", first(""))
}
