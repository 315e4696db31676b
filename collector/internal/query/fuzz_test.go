package query

import (
	"context"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"netwatch.dev/collector/internal/store"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
)

// flowParams are the query parameters of GET /api/v1/flows (ListFlowsRequest).
var flowParams = []string{"src_ip", "dst_ip", "protocol", "port", "time_start", "time_end", "sensor", "status",
	"limit", "offset", "sort_by", "sort_order", "q", "format",
	"community_id", "application", "server_name", "host", "asn", "country"}

// flowRequest fills a ListFlowsRequest from a raw query string the way the REST
// gateway does (first value of each known name; unknown names are the API layer's
// business). A query string that does not parse is split by hand, so the fuzzer's
// bytes still reach the parser.
func flowRequest(raw string) *netwatchv1.ListFlowsRequest {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		vals = url.Values{}
		for _, kv := range strings.Split(raw, "&") {
			k, v, _ := strings.Cut(kv, "=")
			vals.Add(k, v)
		}
	}
	g := vals.Get
	return &netwatchv1.ListFlowsRequest{
		SrcIp: g("src_ip"), DstIp: g("dst_ip"), Protocol: g("protocol"), Port: g("port"),
		TimeStart: g("time_start"), TimeEnd: g("time_end"), Sensor: g("sensor"), Status: g("status"),
		Limit: g("limit"), Offset: g("offset"), SortBy: g("sort_by"), SortOrder: g("sort_order"),
		Q: g("q"), Format: g("format"),
		CommunityId: g("community_id"), Application: g("application"), ServerName: g("server_name"),
		Host: g("host"), Asn: g("asn"), Country: g("country"),
	}
}

// paramOf checks that err is an InvalidArgument status whose message starts with the
// parameter it names in its BadRequest detail, and returns that parameter.
func paramOf(t *testing.T, err error, known []string, input string) string {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("%q: error is not a gRPC status: %v", input, err)
	}
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("%q: code %v, want InvalidArgument: %v", input, st.Code(), err)
	}
	var field string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			field = br.GetFieldViolations()[0].GetField()
		}
	}
	found := false
	for _, k := range known {
		found = found || k == field
	}
	if !found {
		t.Fatalf("%q: error names parameter %q, not one of %v: %v", input, field, known, err)
	}
	if !strings.HasPrefix(st.Message(), field+": ") {
		t.Fatalf("%q: message %q does not start with the parameter %q", input, st.Message(), field)
	}
	return field
}

// fuzzStore is a small store with flows of both families, every status and times
// around t0, for the fuzzed queries to run against.
func fuzzStore() (*store.Store, func() time.Time) {
	st := store.New(store.DefaultConfig())
	var ds []*netwatchv1.FlowDelta
	for i, a := range []string{"10.0.0.1", "192.168.1.7", "2001:db8::1", "::ffff:10.0.0.9", "fe80::1"} {
		d := delta(a, "192.0.2.1", uint16(1000+i), t0.Add(time.Duration(i)*time.Second), t0.Add(time.Duration(2*i)*time.Second), uint64(i), uint64(2*i), uint64(i+1))
		d.Status = netwatchv1.FlowStatus(i % 4)
		ds = append(ds, d)
	}
	st.Apply("s1", ds, t0)
	st.Apply("s2", ds[:2], t0)
	return st, func() time.Time { return t0.Add(time.Minute) }
}

// FuzzParseFlowQuery feeds raw query strings to ParseFlowQuery and then to ListFlows
// over a small store: it must never panic; an error is InvalidArgument naming one of
// the endpoint's parameters; an accepted query is within its documented bounds.
func FuzzParseFlowQuery(f *testing.F) {
	for _, s := range []string{
		"", "src_ip=10.0.0.0/8&protocol=tcp&port=443", "dst_ip=2001:db8::/32&sort_by=bytes&sort_order=asc",
		"time_start=2026-11-25T12:00:00Z&time_end=2026-11-25T13:00", "limit=1000&offset=2147483647",
		"status=active&format=csv&sensor=s1", "q=src_ip:192.168.1.0/24+protocol:tcp+port:443",
		"q=port:1+port:2", "limit=-1", "port=%zz", "time_end=9999-12-31", "time_start=0001-01-01",
		"src_ip=::ffff:10.0.0.1", "protocol=256", "q=src_ip:fe80::1%25eth0",
		"community_id=1:LQU9qZlK%2BB5F3KDmev6m5PMibrg%3D&application=tls&server_name=Example.COM.",
		"host=a.example&asn=AS13335&country=us", "asn=4294967296", "country=U1", "q=asn:as0+host:x-.y",
	} {
		f.Add(s)
	}
	st, now := fuzzStore()
	svc := New(st, "fuzz", now)
	f.Fuzz(func(t *testing.T, raw string) {
		req := flowRequest(raw)
		fq, err := ParseFlowQuery(req)
		if err != nil {
			paramOf(t, err, flowParams, raw)
			if _, err2 := svc.ListFlows(context.Background(), req); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("%q: ListFlows error %v, ParseFlowQuery error %v", raw, err2, err)
			}
			return
		}
		switch {
		case fq.Limit < 1 || fq.Limit > maxLimit:
			t.Fatalf("%q: limit %d outside [1, %d]", raw, fq.Limit, maxLimit)
		case fq.Offset < 0:
			t.Fatalf("%q: offset %d", raw, fq.Offset)
		case fq.Port < -1 || fq.Port > 65535:
			t.Fatalf("%q: port %d", raw, fq.Port)
		case fq.Protocol < -1 || fq.Protocol > 255:
			t.Fatalf("%q: protocol %d", raw, fq.Protocol)
		case fq.Start != 0 && fq.End != 0 && fq.End < fq.Start:
			t.Fatalf("%q: time_end %d before time_start %d", raw, fq.End, fq.Start)
		}
		checkIdentity(t, raw, fq)
		for _, p := range []netip.Prefix{fq.Src, fq.Dst} {
			if p.IsValid() && p != p.Masked() {
				t.Fatalf("%q: prefix %v is not masked", raw, p)
			}
		}
		// Times keep their order: a later ISO time never becomes an earlier bound.
		checkTimeOrder(t, raw, req)
		resp, err := svc.ListFlows(context.Background(), req)
		if err != nil {
			t.Fatalf("%q: parsed, but ListFlows failed: %v", raw, err)
		}
		if n := len(resp.GetFlows()); n > fq.Limit || uint64(fq.Offset+n) > resp.GetPagination().GetTotalCount() && n > 0 {
			t.Fatalf("%q: page of %d flows, limit %d, offset %d, total %d", raw, n, fq.Limit, fq.Offset, resp.GetPagination().GetTotalCount())
		}
	})
}

// checkIdentity: the identity and host filters ParseFlowQuery keeps are in their
// canonical spelling (what the store and enricher compare with).
func checkIdentity(t *testing.T, raw string, fq *FlowQuery) {
	t.Helper()
	if v := fq.CommunityID; v != "" && (len(v) != 30 || !strings.HasPrefix(v, "1:")) {
		t.Fatalf("%q: community_id %q", raw, v)
	}
	for _, v := range []string{fq.Application, fq.ServerName, fq.Host} {
		if v != strings.ToLower(v) || strings.HasSuffix(v, ".") || strings.IndexFunc(v, unicode.IsSpace) >= 0 {
			t.Fatalf("%q: name or label %q not canonical", raw, v)
		}
	}
	if v := fq.Country; v != "" && (len(v) != 2 || v != strings.ToUpper(v)) {
		t.Fatalf("%q: country %q", raw, v)
	}
}

// checkTimeOrder: when time_start and time_end both parse, their order as times is
// the order of the bounds ParseFlowQuery keeps (no wrap-around of far dates).
func checkTimeOrder(t *testing.T, raw string, req *netwatchv1.ListFlowsRequest) {
	t.Helper()
	a, okA := isoTime(req.GetTimeStart())
	b, okB := isoTime(req.GetTimeEnd())
	if !okA || !okB {
		return
	}
	s, err1 := parseTime("time_start", req.GetTimeStart())
	e, err2 := parseTime("time_end", req.GetTimeEnd())
	if err1 != nil || err2 != nil {
		t.Fatalf("%q: %v %v", raw, err1, err2)
	}
	if a.Before(b) && s > e || a.After(b) && s < e {
		t.Fatalf("%q: times %v and %v became bounds %d and %d, out of order", raw, a, b, s, e)
	}
}

func isoTime(v string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// FuzzParseSearch feeds free text to the search syntax: it must never panic; an error
// is InvalidArgument naming q; an accepted search holds known fields with non-empty
// values free of white space, and printing it back parses to the same terms.
func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		"src_ip:192.168.1.0/24 protocol:tcp port:443", "dst_ip:2001:db8::/32", "status:closed sensor:edge-1",
		"time_start:2026-11-25T12:00:00Z time_end:2026-11-25T13:00:00Z", "port:", ":443", "color:red",
		"port:1 port:2", "src_ip:fe80::1%eth0", "sensor:\u00e9\u00e8", "\t\nport:80\u00a0", "sensor:\xff\xfe",
		"community_id:1:LQU9qZlK+B5F3KDmev6m5PMibrg= application:tls", "host:example.com asn:AS13335 country:de",
		"server_name:www.example.com", "asn:-1", "country:\u00c9u",
	} {
		f.Add(s)
	}
	known := searchFields
	f.Fuzz(func(t *testing.T, q string) {
		terms, err := ParseSearch(q)
		if err != nil {
			if p := paramOf(t, err, []string{"q"}, q); p != "q" {
				t.Fatalf("%q: error names %q, not q", q, p)
			}
		} else {
			var b strings.Builder
			for k, v := range terms {
				ok := false
				for _, n := range known {
					ok = ok || n == k
				}
				if !ok || v == "" || strings.IndexFunc(v, unicode.IsSpace) >= 0 {
					t.Fatalf("%q: term %q:%q", q, k, v)
				}
				b.WriteString(k + ":" + v + " ")
			}
			again, err := ParseSearch(b.String())
			if err != nil || len(again) != len(terms) {
				t.Fatalf("%q: printed back as %q: %v, %v", q, b.String(), again, err)
			}
			for k, v := range terms {
				if again[k] != v {
					t.Fatalf("%q: %s is %q, printed back %q", q, k, v, again[k])
				}
			}
		}
		// The whole flows query with this q: never a panic, errors name a parameter.
		if _, err := ParseFlowQuery(&netwatchv1.ListFlowsRequest{Q: q}); err != nil {
			paramOf(t, err, flowParams, q)
		}
	})
}

// TestFarDatesAreOpenBounds: dates the int64 nanosecond clock cannot hold (before
// 1678, after 2262) used to wrap around (found by FuzzParseFlowQuery:
// time_end=3000-01-01 became a date in 1831 and hid every flow); they bound nothing
// now, and neither does a date at or before the epoch (0 is "open" inside).
func TestFarDatesAreOpenBounds(t *testing.T) {
	st, now := fuzzStore()
	svc := New(st, "test", now)
	all, err := svc.ListFlows(context.Background(), &netwatchv1.ListFlowsRequest{})
	if err != nil || all.GetPagination().GetTotalCount() == 0 {
		t.Fatalf("unfiltered: %v, %v", all, err)
	}
	for _, tc := range []struct {
		start, end string
		want       uint64
	}{
		{"2026-01-01", "3000-01-01", all.GetPagination().GetTotalCount()},
		{"0001-01-01", "9999-12-31T23:59:59Z", all.GetPagination().GetTotalCount()},
		{"1000-01-01", "2026-11-25T12:00:10Z", all.GetPagination().GetTotalCount()},
		{"1970-01-01T00:00:00Z", "", all.GetPagination().GetTotalCount()},
		{"", "1970-01-01T00:00:00Z", 0},
		{"", "1600-01-01", 0},
		{"2300-01-01", "", 0},
	} {
		resp, err := svc.ListFlows(context.Background(), &netwatchv1.ListFlowsRequest{TimeStart: tc.start, TimeEnd: tc.end})
		if err != nil {
			t.Errorf("time_start=%s time_end=%s: %v", tc.start, tc.end, err)
			continue
		}
		if got := resp.GetPagination().GetTotalCount(); got != tc.want {
			t.Errorf("time_start=%s time_end=%s: %d flows, want %d", tc.start, tc.end, got, tc.want)
		}
	}
}
