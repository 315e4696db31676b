package app

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/query"
	"netwatch.dev/common/oracle"
	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// loadOracle starts a collector holding the flows of every shared capture (one
// sensor per capture), received now.
func loadOracle(t *testing.T, mutate func(*Config)) (*Collector, []oracle.Stored) {
	t.Helper()
	flows, err := oracle.LoadStored()
	require.NoError(t, err)
	c := startCollector(t, mutate)
	now := time.Now()
	for sensor, deltas := range oracle.BySensor(flows) {
		c.store.Apply(sensor, deltas, now)
	}
	require.Equal(t, len(flows), c.store.Len())
	return c, flows
}

func flowKey(f *oracle.Stored) string {
	return flowmeta.ID(f.Sensor, f.Protocol, f.Src, f.SrcPort, f.Dst, f.DstPort, f.FirstSeen.UnixNano())
}

// get fetches url and decodes the JSON body with numbers kept as json.Number.
func get(t *testing.T, rawURL string, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	return fetchJSON(t, rawURL, header, true)
}

// allPages reads every page of a flows query (limit 1000) and checks the
// pagination of each.
func allPages(t *testing.T, base, query string) []map[string]any {
	t.Helper()
	var all []map[string]any
	for offset := 0; ; offset += 1000 {
		code, body, _ := get(t, fmt.Sprintf("%s/api/v1/flows?%s&limit=1000&offset=%d", base, query, offset), nil)
		require.Equal(t, http.StatusOK, code, "%s: %v", query, body)
		page := body["pagination"].(map[string]any)
		total, _ := page["total_count"].(json.Number).Int64()
		flows := body["flows"].([]any)
		for _, f := range flows {
			all = append(all, f.(map[string]any))
		}
		require.Equal(t, int64(offset+len(flows)) < total, page["has_more"], "%s offset %d", query, offset)
		if !page["has_more"].(bool) {
			require.Equal(t, int(total), len(all), query)
			return all
		}
	}
}

func TestFlowQuerySemanticsOverTheSharedCaptures(t *testing.T) {
	c, flows := loadOracle(t, nil)
	base := "http://" + c.HTTPAddr()
	tls2 := func(f *oracle.Stored) bool { return f.Sensor == "pcapplusplus-tls2" }
	winStart, winEnd := time.Unix(1609829750, 0).UTC(), time.Unix(1609829800, 0).UTC()
	inWindow := func(f *oracle.Stored) bool { return !f.LastSeen.Before(winStart) && !f.FirstSeen.After(winEnd) }
	prefix := func(s string) func(netip.Addr) bool {
		p := netip.MustParsePrefix(s)
		return func(a netip.Addr) bool { return p.Contains(a) }
	}
	in10 := prefix("10.0.0.0/8")
	inLinkLocal6 := prefix("fe80::/10")
	inMulticast6 := prefix("ff00::/8")
	for _, tc := range []struct {
		name, query string
		want        func(*oracle.Stored) bool
		empty       bool // the case selects no flow on purpose
	}{
		{"everything", "", func(*oracle.Stored) bool { return true }, false},
		{"src v4 CIDR", "src_ip=10.0.0.0/8", func(f *oracle.Stored) bool { return in10(f.Src) }, false},
		{"src v4 host", "src_ip=10.0.0.1", func(f *oracle.Stored) bool { return f.Src == netip.MustParseAddr("10.0.0.1") }, false},
		{"dst v4 CIDR", "dst_ip=10.0.0.0/8", func(f *oracle.Stored) bool { return in10(f.Dst) }, false},
		{"src v6 CIDR", "src_ip=fe80::/10", func(f *oracle.Stored) bool { return inLinkLocal6(f.Src) }, false},
		{"dst v6 CIDR", "dst_ip=ff00::/8", func(f *oracle.Stored) bool { return inMulticast6(f.Dst) }, false},
		{"v6 CIDR selects no v4", "src_ip=::/0", func(f *oracle.Stored) bool { return f.Src.Is6() }, false},
		{"v4 /0", "dst_ip=0.0.0.0/0", func(f *oracle.Stored) bool { return f.Dst.Is4() }, false},
		{"protocol name tcp", "protocol=tcp", func(f *oracle.Stored) bool { return f.Protocol == 6 }, false},
		{"protocol name udp", "protocol=udp", func(f *oracle.Stored) bool { return f.Protocol == 17 }, false},
		{"protocol name icmpv6", "protocol=icmpv6", func(f *oracle.Stored) bool { return f.Protocol == 58 }, false},
		{"protocol name gre", "protocol=gre", func(f *oracle.Stored) bool { return f.Protocol == 47 }, false},
		{"protocol number", "protocol=41", func(f *oracle.Stored) bool { return f.Protocol == 41 }, false},
		{"port either side", "port=443", func(f *oracle.Stored) bool { return f.SrcPort == 443 || f.DstPort == 443 }, false},
		{"port 53", "port=53", func(f *oracle.Stored) bool { return f.SrcPort == 53 || f.DstPort == 53 }, false},
		{"sensor", "sensor=pcapplusplus-tls2", tls2, false},
		{"unknown sensor", "sensor=nope", func(*oracle.Stored) bool { return false }, true},
		{"status", "status=idle", func(f *oracle.Stored) bool { return f.Status == netwatchv1.FlowStatus_FLOW_STATUS_IDLE }, false},
		{"time_start only", "time_start=2021-01-05T06:56:40Z", func(f *oracle.Stored) bool { return !f.LastSeen.Before(winEnd) }, false},
		{"time_end only", "time_end=2000-01-01T00:00:00Z", func(f *oracle.Stored) bool { return !f.FirstSeen.After(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) }, false},
		{"time window", "time_start=2021-01-05T06:55:50Z&time_end=2021-01-05T06:56:40Z", inWindow, false},
		{"combined src+protocol+port", "src_ip=10.0.0.0/8&protocol=tcp&port=443", func(f *oracle.Stored) bool {
			return in10(f.Src) && f.Protocol == 6 && (f.SrcPort == 443 || f.DstPort == 443)
		}, false},
		{"combined sensor+status+window", "sensor=pcapplusplus-tls2&status=active&time_start=2021-01-05T06:55:50Z&time_end=2021-01-05T06:56:40Z", func(f *oracle.Stored) bool {
			return tls2(f) && f.Status == netwatchv1.FlowStatus_FLOW_STATUS_ACTIVE && inWindow(f)
		}, false},
		{"q syntax", "q=" + url.QueryEscape("src_ip:10.0.0.0/8 protocol:tcp port:443"), func(f *oracle.Stored) bool {
			return in10(f.Src) && f.Protocol == 6 && (f.SrcPort == 443 || f.DstPort == 443)
		}, false},
		{"q and a parameter", "q=protocol:udp&port=53", func(f *oracle.Stored) bool { return f.Protocol == 17 && (f.SrcPort == 53 || f.DstPort == 53) }, false},
		{"nothing matches", "src_ip=203.0.113.0/24&protocol=tcp", func(f *oracle.Stored) bool { return prefix("203.0.113.0/24")(f.Src) && f.Protocol == 6 }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for i := range flows {
				if tc.want(&flows[i]) {
					want = append(want, flowKey(&flows[i]))
				}
			}
			require.Equal(t, tc.empty, len(want) == 0, "the case's data: %d flows", len(want))
			var got []string
			for _, f := range allPages(t, base, tc.query) {
				got = append(got, f["flowKey"].(string))
			}
			assert.ElementsMatch(t, want, got)
		})
	}
}

func TestFlowSortOrdersAndPaginationEdges(t *testing.T) {
	c, flows := loadOracle(t, nil)
	base := "http://" + c.HTTPAddr()
	num := func(v any) int64 { n, _ := v.(json.Number).Int64(); return n }
	ts := func(v any) int64 { tm, _ := time.Parse(time.RFC3339Nano, v.(string)); return tm.UnixNano() }
	keys := map[string]func(map[string]any) int64{
		"bytes":      func(f map[string]any) int64 { return num(f["bytes"]) },
		"packets":    func(f map[string]any) int64 { return num(f["packets"]) },
		"duration":   func(f map[string]any) int64 { return ts(f["lastSeen"]) - ts(f["firstSeen"]) },
		"first_seen": func(f map[string]any) int64 { return ts(f["firstSeen"]) },
		"last_seen":  func(f map[string]any) int64 { return ts(f["lastSeen"]) },
	}
	for by, key := range keys {
		for _, order := range []string{"asc", "desc"} {
			got := allPages(t, base, "protocol=udp&sort_by="+by+"&sort_order="+order)
			vals := make([]int64, len(got))
			for i, f := range got {
				vals[i] = key(f)
			}
			if order == "desc" {
				slices.Reverse(vals)
			}
			assert.True(t, slices.IsSorted(vals), "%s %s", by, order)
		}
	}
	// Default order: last_seen desc.
	def := allPages(t, base, "protocol=udp")
	explicit := allPages(t, base, "protocol=udp&sort_by=last_seen&sort_order=desc")
	assert.Equal(t, def, explicit)
	// Pages laid end to end are the whole answer, without overlap.
	var paged []any
	for off := 0; off < 600; off += 7 {
		_, body, _ := get(t, fmt.Sprintf("%s/api/v1/flows?protocol=udp&sort_by=bytes&limit=7&offset=%d", base, off), nil)
		paged = append(paged, body["flows"].([]any)...)
	}
	require.Len(t, paged, len(def))
	whole := allPages(t, base, "protocol=udp&sort_by=bytes")
	for i := range whole {
		assert.Equal(t, whole[i]["flowKey"], paged[i].(map[string]any)["flowKey"], "row %d", i)
	}

	total := len(flows)
	for _, tc := range []struct {
		offset, limit, rows int
		hasMore             bool
	}{
		{0, 1, 1, true},
		{total - 1, 10, 1, false},
		{total - 10, 10, 10, false},
		{total - 11, 10, 10, true},
		{total, 10, 0, false},
		{total + 500, 1000, 0, false},
	} {
		code, body, _ := get(t, fmt.Sprintf("%s/api/v1/flows?offset=%d&limit=%d", base, tc.offset, tc.limit), nil)
		require.Equal(t, http.StatusOK, code)
		assert.Len(t, body["flows"], tc.rows, "offset %d limit %d", tc.offset, tc.limit)
		assert.NotNil(t, body["flows"], "an empty list, not null")
		page := body["pagination"].(map[string]any)
		assert.Equal(t, tc.hasMore, page["has_more"], "offset %d limit %d", tc.offset, tc.limit)
		assert.Equal(t, json.Number(strconv.Itoa(total)), page["total_count"])
		assert.Equal(t, json.Number(strconv.Itoa(tc.offset)), page["offset"])
		assert.Equal(t, json.Number(strconv.Itoa(tc.limit)), page["limit"])
	}
}

// csvDownload fetches a CSV download and returns its header row and rows.
func csvDownload(t *testing.T, rawURL string) ([]string, [][]string, http.Header) {
	t.Helper()
	resp, err := http.Get(rawURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	rows, err := csv.NewReader(resp.Body).ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, rows, "a header row at least")
	return rows[0], rows[1:], resp.Header
}

func TestCSVEqualsJSONRowForRow(t *testing.T) {
	c, flows := loadOracle(t, nil)
	base := "http://" + c.HTTPAddr()
	for _, query := range []string{
		"sort_by=bytes&sort_order=desc",
		"protocol=tcp&sort_by=first_seen&sort_order=asc",
		"src_ip=fe80::/10",
		"q=" + url.QueryEscape("protocol:udp port:53"),
		"limit=5&offset=3", // pagination is validated but a download is every row
		"sensor=nope",      // a header row and nothing else
	} {
		header, rows, hdr := csvDownload(t, base+"/api/v1/flows?format=csv&"+query)
		assert.Equal(t, "text/csv; charset=utf-8", hdr.Get("Content-Type"))
		assert.Regexp(t, `^attachment; filename="netwatch-flows-\d{8}T\d{6}Z\.csv"$`, hdr.Get("Content-Disposition"))
		q := query
		if strings.HasPrefix(q, "limit") {
			q = ""
		}
		want := allPages(t, base, q)
		require.Len(t, rows, len(want), query)
		if query == "" || strings.HasPrefix(query, "limit") {
			require.Len(t, rows, len(flows))
		}
		for i, row := range rows {
			require.Len(t, row, len(header))
			for j, name := range header {
				v, ok := want[i][name]
				require.True(t, ok, "CSV column %q is a JSON field", name)
				var s string
				switch v := v.(type) {
				case nil:
				case string:
					s = v
				case json.Number:
					s = v.String()
				case bool:
					s = strconv.FormatBool(v)
				default:
					t.Fatalf("field %s: unexpected %T", name, v)
				}
				require.Equal(t, s, row[j], "%s: row %d column %s", query, i, name)
			}
		}
		if len(want) > 0 {
			assert.Len(t, header, len(want[0]), "every JSON field is a column")
		}
	}
	// Errors are the JSON API's, named the same way.
	code, body, _ := get(t, base+"/api/v1/flows?format=csv&src_ip=10.0.0.300", nil)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, map[string]any{"parameter": "src_ip"}, body["error"].(map[string]any)["details"])
	code, body, _ = get(t, base+"/api/v1/flows?format=xml", nil)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Equal(t, map[string]any{"parameter": "format"}, body["error"].(map[string]any)["details"])
}

func TestUnknownAndRepeatedParametersAre400(t *testing.T) {
	c := startCollector(t, nil)
	base := "http://" + c.HTTPAddr()
	for _, tc := range []struct{ path, param string }{
		{"/api/v1/flows?src=10.0.0.1", "src"},
		{"/api/v1/flows?srcIp=10.0.0.1", "srcIp"},
		{"/api/v1/flows?limit=1&limit=2", "limit"},
		{"/api/v1/top-talkers?window=5m", "window"},
		{"/api/v1/metrics?sensor_id=x", "sensor_id"},
		{"/api/v1/metrics/history?step=5s", "step"},
		{"/api/v1/health?verbose=1", "verbose"},
		{"/api/v1/sensors?all=true", "all"},
		{"/api/v1/openapi.json?v=2", "v"},
		{"/api/v1/top-talkers?by=both", "by"},
		{"/api/v1/metrics/history?duration=2h", "duration"},
		{"/api/v1/protocols?duration=2h", "duration"},
		{"/api/v1/protocols?window=5m", "window"},
	} {
		code, body, _ := get(t, base+tc.path, nil)
		assert.Equal(t, http.StatusBadRequest, code, tc.path)
		e := body["error"].(map[string]any)
		assert.Equal(t, "INVALID_ARGUMENT", e["code"], tc.path)
		assert.Equal(t, map[string]any{"parameter": tc.param}, e["details"], tc.path)
	}
}

func TestEveryDocumentedParameterIsAccepted(t *testing.T) {
	c := startCollector(t, nil)
	base := "http://" + c.HTTPAddr()
	c.query.History().RecordSensor(time.Now(), "s1", queryPoint())
	resp, err := http.Get(base + "/api/v1/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var doc struct {
		Paths map[string]map[string]struct {
			Parameters []struct{ Name, In string }
		}
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&doc))
	// A valid value for each parameter, by path ("" for any path).
	sample := map[string]string{
		"src_ip": "10.0.0.0/8", "dst_ip": "2001:db8::/32", "protocol": "tcp", "port": "443",
		"time_start": "2026-01-01T00:00:00Z", "time_end": "2026-01-02T00:00:00Z", "status": "active",
		"limit": "5", "offset": "0", "sort_by": "bytes", "sort_order": "asc", "q": "protocol:tcp",
		"format": "json", "interval": "5s", "by": "src", "sensor": "s1",
		"/api/v1/top-talkers duration": "15m", "/api/v1/metrics/history duration": "15m", "/api/v1/protocols duration": "15m",
		"community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "application": "tls", "server_name": "example.com",
		"host": "example.com", "asn": "AS13335", "country": "US", "/api/v1/hosts/{ip} duration": "15m",
	}
	require.NotEmpty(t, doc.Paths)
	checked := 0
	for tmpl, ops := range doc.Paths {
		op, ok := ops["get"]
		require.True(t, ok, "%s has a GET", tmpl)
		path := strings.ReplaceAll(tmpl, "{ip}", "10.0.0.1") // the path parameters
		code, body, _ := get(t, base+path, nil)
		assert.Equal(t, http.StatusOK, code, "%s without parameters: %v", path, body)
		all := url.Values{}
		for _, p := range op.Parameters {
			if p.In == "path" {
				require.Contains(t, tmpl, "{"+p.Name+"}")
				continue
			}
			require.Equal(t, "query", p.In, "%s %s", path, p.Name)
			v, ok := sample[tmpl+" "+p.Name]
			if !ok {
				v, ok = sample[p.Name]
			}
			require.True(t, ok, "no sample value for documented parameter %s of %s: add one", p.Name, path)
			code, body, _ := get(t, base+path+"?"+p.Name+"="+url.QueryEscape(v), nil)
			assert.Equal(t, http.StatusOK, code, "%s?%s=%s: %v", path, p.Name, v, body)
			all.Set(p.Name, v)
			checked++
		}
		code, body, _ = get(t, base+path+"?"+all.Encode(), nil)
		assert.Equal(t, http.StatusOK, code, "%s with every parameter: %v", path, body)
		code, _, _ = get(t, base+path+"?undocumented=1", nil)
		assert.Equal(t, http.StatusBadRequest, code, "%s?undocumented=1", path)
	}
	assert.GreaterOrEqual(t, checked, 20)
}

func queryPoint() query.MetricsPoint {
	return query.MetricsPoint{CPU: 1.5, Memory: 1 << 20, ActiveFlows: 3, PacketsPerSecond: 10, BytesPerSecond: 1000}
}

// TestCSVSensorIDFormulaFromIngest: a sensor whose id is a spreadsheet formula
// streams a flow through the real Ingest stream; the CSV download sends its id
// with a leading apostrophe (the JSON keeps it as it is), so a spreadsheet shows
// the text and does not run it. A collector that refuses such an id at the hello
// (INVALID_ARGUMENT) keeps it out of the CSV just as well.
func TestCSVSensorIDFormulaFromIngest(t *testing.T) {
	c := startCollector(t, nil)
	base := "http://" + c.HTTPAddr()
	const id = "=1+2"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := openSensor(ctx, dialGRPC(t, c.GRPCAddr()), id, "")
	if status.Code(err) == codes.InvalidArgument {
		assert.Contains(t, err.Error(), "sensor", "the refusal names the sensor id")
		return
	}
	require.NoError(t, err)
	sendOneFlow(t, stream, 1, "10.0.0.1", "10.0.0.2", 1, 60)

	header, rows, _ := csvDownload(t, base+"/api/v1/flows?format=csv")
	require.Len(t, rows, 1)
	got := map[string]string{}
	for i, name := range header {
		got[name] = rows[0][i]
	}
	assert.Equal(t, "'"+id, got["sensorId"])
	assert.Equal(t, "10.0.0.1", got["srcIP"])
	assert.Equal(t, "tcp", got["protocolName"])
	_, body, _ := get(t, base+"/api/v1/flows", nil)
	assert.Equal(t, id, body["flows"].([]any)[0].(map[string]any)["sensorId"], "the JSON is not escaped")
}
