package app

import (
	"bufio"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"netwatch.dev/collector/internal/geoip/geoiptest"
	"netwatch.dev/common/promtext/promcheck"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// geoFiles writes an ASN and a country database for 192.0.2.0/24 (AS13335, US)
// and 198.51.100.0/24 (AS64500, DE).
func geoFiles(t *testing.T, dir, org string) (asn, country string) {
	t.Helper()
	asn = geoiptest.WriteFile(t, dir, "asn.mmdb", geoiptest.ASNBytes(t, map[string]geoiptest.AS{
		"192.0.2.0/24": {Number: 13335, Org: org}, "198.51.100.0/24": {Number: 64500, Org: "Example Net"},
	}))
	country = geoiptest.WriteFile(t, dir, "country.mmdb", geoiptest.CountryBytes(t, "", map[string]geoiptest.Place{
		"192.0.2.0/24": {Country: "US"}, "198.51.100.0/24": {Country: "DE"},
	}))
	return asn, country
}

// TestEnrichmentFromASensorsBatches: a sensor's batch over gRPC brings flows and
// DNS observations; the top talkers answer with the host's DNS name and, by=asn
// and by=country, with the autonomous systems and countries of the GeoIP files
// the collector was given (REST and gRPC). The counters are on /metrics.
func TestEnrichmentFromASensorsBatches(t *testing.T) {
	dir := t.TempDir()
	asnFile, countryFile := geoFiles(t, dir, "Cloudflare, Inc.")
	c := startCollector(t, func(cfg *Config) { cfg.GeoIP = GeoIPFiles{ASNDB: asnFile, CountryDB: countryFile} })

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := dialGRPC(t, c.GRPCAddr())
	stream, err := openSensor(ctx, conn, "s1", "")
	require.NoError(t, err)
	now := time.Now()
	require.NoError(t, stream.Send(&netwatchv1.IngestRequest{Message: &netwatchv1.IngestRequest_Batch{Batch: &netwatchv1.FlowBatch{
		Sequence: 1, CreatedAt: timestamppb.New(now), Deltas: []*netwatchv1.FlowDelta{{
			Key: &netwatchv1.FlowKey{Protocol: 6, SrcAddr: netip.MustParseAddr("10.0.0.5").AsSlice(), SrcPort: 40000,
				DstAddr: netip.MustParseAddr("192.0.2.1").AsSlice(), DstPort: 443},
			SrcPackets: 10, SrcBytes: 1000, DstPackets: 10, DstBytes: 9000,
			FirstSeen: timestamppb.New(now.Add(-time.Second)), LastSeen: timestamppb.New(now),
			SrcTcpFlags: 0x02, Status: netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE,
		}},
		Dns: []*netwatchv1.DnsObservation{{Name: "www.example.com", Canonical: "www.example.com.cdn.cloudflare.net",
			Addr: netip.MustParseAddr("192.0.2.1").AsSlice(), Ttl: 300, Seen: timestamppb.New(now)}},
	}}}))
	resp, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, uint64(1), resp.GetAck().GetSequence())

	base := "http://" + c.HTTPAddr()
	talkers := func(by string) [][2]string {
		code, body, _ := getJSON(t, base+"/api/v1/top-talkers?by="+by, nil)
		require.Equal(t, http.StatusOK, code, "%v", body)
		var out [][2]string
		for _, tt := range body["top_talkers"].([]any) {
			m := tt.(map[string]any)
			out = append(out, [2]string{m["identifier"].(string), m["displayName"].(string)})
		}
		return out
	}
	assert.Equal(t, [][2]string{{"10.0.0.5", "10.0.0.5"}, {"192.0.2.1", "www.example.com"}}, talkers("any"))
	assert.Equal(t, [][2]string{{"AS13335", "Cloudflare, Inc."}, {"unknown", "unknown"}}, talkers("asn"))
	assert.Equal(t, [][2]string{{"US", "US"}, {"unknown", "unknown"}}, talkers("country"))
	code, body, _ := getJSON(t, base+"/api/v1/top-talkers?by=region", nil)
	assert.Equal(t, http.StatusBadRequest, code)
	b, _ := json.Marshal(body)
	assert.Contains(t, string(b), "by")

	g, err := netwatchv1.NewQueryServiceClient(conn).ListTopTalkers(ctx, &netwatchv1.ListTopTalkersRequest{By: "asn"})
	require.NoError(t, err)
	require.NotEmpty(t, g.GetTopTalkers())
	assert.Equal(t, "AS13335", g.GetTopTalkers()[0].GetIdentifier())
	assert.Equal(t, "Cloudflare, Inc.", g.GetTopTalkers()[0].GetDisplayName())

	text := metricsText(t, base, "")
	for _, want := range []string{
		"netwatch_collector_dns_observations_total 1\n", "netwatch_collector_dns_observations_ignored_total 0\n",
		"netwatch_collector_dns_names 1\n", "netwatch_collector_dns_names_max 1000000\n",
		"netwatch_collector_dns_names_evicted_total 0\n", "netwatch_collector_geoip_reloads_total 0\n",
		"netwatch_collector_geoip_reload_errors_total 0\n",
	} {
		assert.Contains(t, text, want)
	}

	// The file replaced: ReloadGeoIP (SIGHUP) puts it in force; a bad one is refused.
	assert.Equal(t, []string{"www.example.com", "www.example.com.cdn.cloudflare.net"}, c.enrich.Names(netip.MustParseAddr("192.0.2.1")))
	geoFiles(t, dir, "Renamed Net")
	reloaded, unchanged, errs := c.ReloadGeoIP()
	// The poller may have been first: then nothing is left to reload.
	assert.Empty(t, errs)
	assert.Len(t, append(reloaded, unchanged...), 2)
	assert.Equal(t, "Renamed Net", c.enrich.Lookup(netip.MustParseAddr("192.0.2.1")).ASName)
	require.NoError(t, os.WriteFile(asnFile, []byte("not a database"), 0o644))
	_, unchanged, errs = c.ReloadGeoIP()
	assert.Equal(t, []string{"geoip country database"}, unchanged)
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), "asn database")
	assert.Equal(t, "Renamed Net", c.enrich.Lookup(netip.MustParseAddr("192.0.2.1")).ASName)
	// 1, or 2 if the poller tried the bad file first.
	assert.Regexp(t, `\nnetwatch_collector_geoip_reload_errors_total [12]\n`, metricsText(t, base, ""))
}

// TestEnrichmentConfig: the GeoIP files are loaded by New (a missing or bad one
// fails naming its field); --dns-names-max 0 turns the name table off and its
// bounds are checked.
func TestEnrichmentConfig(t *testing.T) {
	dir := t.TempDir()
	asnFile, countryFile := geoFiles(t, dir, "Example")
	junk := filepath.Join(dir, "junk.mmdb")
	require.NoError(t, os.WriteFile(junk, []byte("junk"), 0o644))
	for _, tc := range []struct {
		geo  GeoIPFiles
		want string
	}{
		{GeoIPFiles{ASNDB: filepath.Join(dir, "missing.mmdb")}, "GeoIP.ASNDB: "},
		{GeoIPFiles{CountryDB: junk}, "GeoIP.CountryDB: " + junk + ": not a MaxMind DB file"},
		{GeoIPFiles{ASNDB: countryFile}, "GeoIP.ASNDB: " + countryFile + ` is a "GeoLite2-Country" database, not an ASN one`},
		{GeoIPFiles{ASNDB: asnFile, CountryDB: asnFile}, "GeoIP.CountryDB: "},
	} {
		cfg := DefaultConfig()
		cfg.GRPCListen, cfg.HTTPListen, cfg.Ingest.DataDir = "127.0.0.1:0", "127.0.0.1:0", ""
		cfg.GeoIP = tc.geo
		_, err := New(cfg, slog.New(slog.DiscardHandler))
		require.Error(t, err, tc.want)
		assert.Contains(t, err.Error(), tc.want)
	}
	for _, n := range []int{-1, 15, 100_000_001} {
		cfg := DefaultConfig()
		cfg.DNSNamesMax = n
		err := cfg.Check()
		require.Error(t, err, n)
		assert.Contains(t, err.Error(), "DNSNamesMax: ")
	}

	c := startCollector(t, func(cfg *Config) { cfg.DNSNamesMax = 0 })
	assert.Nil(t, c.names)
	assert.Empty(t, c.enrich.Lookup(netip.MustParseAddr("192.0.2.1")))
	promcheck.Lint(t, func(w *bufio.Writer) { w.WriteString(metricsText(t, "http://"+c.HTTPAddr(), "")) })
}
