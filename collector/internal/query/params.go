package query

import (
	"encoding/base64"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"netwatch.dev/proto/flowmeta"
	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// paramError is an InvalidArgument status naming the parameter, so the REST error
// body can say which one was wrong.
func paramError(param, format string, args ...any) error {
	return paramStatus(codes.InvalidArgument, param, format, args...)
}

// paramStatus is a status of code naming the parameter it is about.
func paramStatus(code codes.Code, param, format string, args ...any) error {
	st := status.New(code, param+": "+fmt.Sprintf(format, args...))
	if withDetails, err := st.WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: param, Description: fmt.Sprintf(format, args...)}},
	}); err == nil {
		st = withDetails
	}
	return st.Err()
}

// Sort orders.
const (
	SortBytes     = "bytes"
	SortPackets   = "packets"
	SortDuration  = "duration"
	SortFirstSeen = "first_seen"
	SortLastSeen  = "last_seen"
)

// FlowQuery is a validated ListFlowsRequest: filters compiled once, then applied per flow.
type FlowQuery struct {
	Src, Dst      netip.Prefix // invalid prefix: no filter
	Protocol      int          // -1: any
	Port          int          // -1: any
	Start, End    int64        // unix nanos; 0: open
	Sensor        string
	Status        netwatchv1.FlowStatus
	Limit, Offset int
	SortBy        string
	Desc          bool
	CSV           bool
	// Flow identity: "" does not filter. Application is a label (flowmeta.App),
	// ServerName a lower-case DNS name matched exactly or as a label-boundary suffix.
	CommunityID, Application, ServerName string
	// Host filters, each held by at least one end of a flow through the enricher:
	// Host a lower-case DNS name (exact or label-boundary suffix), ASN an autonomous
	// system when HasASN (0: the addresses with no known AS), Country an upper-case
	// ISO 3166-1 alpha-2 code. "" / !HasASN do not filter.
	Host    string
	ASN     uint32
	HasASN  bool
	Country string
}

// searchFields are the fields of the search syntax (and of the ListFlows filter
// parameters), in the order error messages list them.
var searchFields = []string{
	"src_ip", "dst_ip", "protocol", "port", "time_start", "time_end", "sensor", "status",
	"community_id", "application", "server_name", "host", "asn", "country",
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

// ParseFlowQuery validates every parameter of req; an error names the parameter.
// Terms of the free-text q are read first; a parameter given directly overrides the
// same term in q.
func ParseFlowQuery(req *netwatchv1.ListFlowsRequest) (*FlowQuery, error) {
	params := map[string]string{}
	if q := strings.TrimSpace(req.GetQ()); q != "" {
		terms, err := ParseSearch(q)
		if err != nil {
			return nil, err
		}
		for k, v := range terms {
			params[k] = v
		}
	}
	for k, v := range map[string]string{
		"src_ip": req.GetSrcIp(), "dst_ip": req.GetDstIp(), "protocol": req.GetProtocol(),
		"port": req.GetPort(), "time_start": req.GetTimeStart(), "time_end": req.GetTimeEnd(),
		"sensor": req.GetSensor(), "status": req.GetStatus(),
		"community_id": req.GetCommunityId(), "application": req.GetApplication(), "server_name": req.GetServerName(),
		"host": req.GetHost(), "asn": req.GetAsn(), "country": req.GetCountry(),
	} {
		if v != "" {
			params[k] = v
		}
	}
	fq := &FlowQuery{Protocol: -1, Port: -1, Limit: defaultLimit, SortBy: SortLastSeen, Desc: true}
	var err error
	if fq.Src, err = parsePrefix("src_ip", params["src_ip"]); err != nil {
		return nil, err
	}
	if fq.Dst, err = parsePrefix("dst_ip", params["dst_ip"]); err != nil {
		return nil, err
	}
	if v := params["protocol"]; v != "" {
		if fq.Protocol, err = ParseProtocol(v); err != nil {
			return nil, err
		}
	}
	if v := params["port"]; v != "" {
		if fq.Port, err = parseInt("port", v, 0, 65535); err != nil {
			return nil, err
		}
	}
	if fq.Start, err = parseTime("time_start", params["time_start"]); err != nil {
		return nil, err
	}
	if fq.End, err = parseTime("time_end", params["time_end"]); err != nil {
		return nil, err
	}
	if fq.Start != 0 && fq.End != 0 && fq.End < fq.Start {
		return nil, paramError("time_end", "must not be before time_start")
	}
	fq.Sensor = params["sensor"]
	if v := params["status"]; v != "" {
		n, ok := restjson.EnumValue(netwatchv1.FlowStatus(0).Descriptor(), v)
		if !ok {
			return nil, paramError("status", "%q is not one of active, idle, closed", v)
		}
		fq.Status = netwatchv1.FlowStatus(n)
	}
	if err := fq.parseIdentity(params); err != nil {
		return nil, err
	}
	if v := req.GetLimit(); v != "" {
		if fq.Limit, err = parseInt("limit", v, 1, maxLimit); err != nil {
			return nil, err
		}
	}
	if v := req.GetOffset(); v != "" {
		if fq.Offset, err = parseInt("offset", v, 0, 1<<31-1); err != nil {
			return nil, err
		}
	}
	switch v := req.GetSortBy(); v {
	case "":
	case SortBytes, SortPackets, SortDuration, SortFirstSeen, SortLastSeen:
		fq.SortBy = v
	default:
		return nil, paramError("sort_by", "%q is not one of bytes, packets, duration, first_seen, last_seen", v)
	}
	switch v := req.GetSortOrder(); v {
	case "", "desc":
	case "asc":
		fq.Desc = false
	default:
		return nil, paramError("sort_order", "%q is not one of asc, desc", v)
	}
	switch v := req.GetFormat(); v {
	case "", "json":
	case "csv":
		fq.CSV = true
	default:
		return nil, paramError("format", "%q is not one of json, csv", v)
	}
	return fq, nil
}

func parseInt(param, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, paramError(param, "%q is not a number", v)
	}
	if n < lo || n > hi {
		return 0, paramError(param, "%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

func parsePrefix(param, v string) (netip.Prefix, error) {
	if v == "" {
		return netip.Prefix{}, nil
	}
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return netip.Prefix{}, paramError(param, "%q is not an IP address or CIDR prefix", v)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Prefix{}, paramError(param, "%q is not an IP address or CIDR prefix", v)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseTime(param, v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			// UnixNano wraps outside the years 1678-2262 (time_end=3000-01-01 became a
			// date in 1831), and 0 means "open": clamp to [1 ns after the epoch, the
			// last representable instant]. No flow is older than the epoch, so the
			// clamped bound keeps the same flows.
			switch {
			case !t.After(time.Unix(0, 0)):
				return 1, nil
			case t.After(time.Unix(0, math.MaxInt64)):
				return math.MaxInt64, nil
			}
			return t.UnixNano(), nil
		}
	}
	return 0, paramError(param, "%q is not an ISO 8601 time (e.g. 2026-01-02T15:04:05Z)", v)
}

// ParseProtocol accepts a protocol number (0-255) or a name such as tcp, udp, icmpv6.
func ParseProtocol(v string) (int, error) {
	if n, ok := flowmeta.ProtocolNumber(v); ok {
		return int(n), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 255 {
		return 0, paramError("protocol", "%q is not a protocol number (0-255) or name (tcp, udp, icmp, icmpv6, sctp, gre...)", v)
	}
	return n, nil
}

// ParseSearch parses the flow search syntax (the dashboard's search box, ?q=): space-separated field:value terms, e.g.
// "src_ip:192.168.1.0/24 protocol:tcp port:443". Unknown fields are errors naming q.
func ParseSearch(q string) (map[string]string, error) {
	out := map[string]string{}
	for _, term := range strings.Fields(q) {
		field, value, ok := strings.Cut(term, ":")
		if !ok || value == "" {
			return nil, paramError("q", "term %q is not field:value", term)
		}
		if !slices.Contains(searchFields, field) {
			return nil, paramError("q", "unknown field %q (use %s)", field, strings.Join(searchFields, ", "))
		}
		if _, dup := out[field]; dup {
			return nil, paramError("q", "field %q given twice", field)
		}
		out[field] = value
	}
	return out, nil
}

// parseIdentity reads the flow identity and host filters of params.
func (fq *FlowQuery) parseIdentity(params map[string]string) error {
	var err error
	if v := params["community_id"]; v != "" {
		if fq.CommunityID, err = ParseCommunityID(v); err != nil {
			return err
		}
	}
	if v := params["application"]; v != "" {
		if fq.Application, err = ParseApplication(v); err != nil {
			return err
		}
	}
	if v := params["server_name"]; v != "" {
		if fq.ServerName, err = ParseDNSName("server_name", v); err != nil {
			return err
		}
	}
	if v := params["host"]; v != "" {
		if fq.Host, err = ParseDNSName("host", v); err != nil {
			return err
		}
	}
	if v := params["asn"]; v != "" {
		if fq.ASN, err = ParseASN("asn", v); err != nil {
			return err
		}
		fq.HasASN = true
	}
	if v := params["country"]; v != "" {
		if fq.Country, err = ParseCountry("country", v); err != nil {
			return err
		}
	}
	return nil
}

// ParseCommunityID accepts a Community ID v1: "1:" and the 28 base64 characters of
// a SHA-1 digest.
func ParseCommunityID(v string) (string, error) {
	rest, ok := strings.CutPrefix(v, "1:")
	if ok && len(rest) == 28 {
		if d, err := base64.StdEncoding.Strict().DecodeString(rest); err == nil && len(d) == 20 {
			return v, nil
		}
	}
	return "", paramError("community_id", "%q is not a Community ID v1 (\"1:\" and 28 base64 characters)", v)
}

// ParseApplication accepts an application label: a known one (tls, http, dns...) or
// 1 to 32 of a-z 0-9 . _ - (labels a newer sensor may send); upper case is folded.
func ParseApplication(v string) (string, error) {
	l := strings.ToLower(v)
	if _, ok := flowmeta.ParseApp(l); ok {
		return l, nil
	}
	if len(l) >= 1 && len(l) <= 32 && strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789._-") == "" {
		return l, nil
	}
	return "", paramError("application", "%q is not an application label (tls, http, dns, ssh, quic, ntp...: 1 to 32 of a-z 0-9 . _ -)", v)
}

// ParseDNSName accepts a DNS name (a suffix filter): labels of 1 to 63 letters,
// digits, '-' or '_', not beginning or ending with '-', at most 253 characters; a
// trailing dot is dropped and upper case folded.
func ParseDNSName(param, v string) (string, error) {
	n := strings.ToLower(strings.TrimSuffix(v, "."))
	ok := len(n) >= 1 && len(n) <= 253
	for label := range strings.SplitSeq(n, ".") {
		if !ok {
			break
		}
		ok = len(label) >= 1 && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-' &&
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-_") == ""
	}
	if !ok {
		return "", paramError(param, "%q is not a DNS name (e.g. example.com)", v)
	}
	return n, nil
}

// ParseASN accepts an autonomous system number, 13335 or AS13335 (any case), from 0
// to 4294967295.
func ParseASN(param, v string) (uint32, error) {
	digits := v
	if len(v) > 2 && strings.EqualFold(v[:2], "as") {
		digits = v[2:]
	}
	if digits != "" && strings.Trim(digits, "0123456789") == "" {
		if n, err := strconv.ParseUint(digits, 10, 32); err == nil {
			return uint32(n), nil
		}
	}
	return 0, paramError(param, "%q is not an AS number (13335 or AS13335, 0 to 4294967295)", v)
}

// ParseCountry accepts an ISO 3166-1 alpha-2 code (two letters, any case) and
// returns it upper case.
func ParseCountry(param, v string) (string, error) {
	if len(v) == 2 && isLetter(v[0]) && isLetter(v[1]) {
		return strings.ToUpper(v), nil
	}
	return "", paramError(param, "%q is not a two-letter country code (e.g. US)", v)
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
