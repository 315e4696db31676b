package query

import (
	"fmt"
	"math"
	"net/netip"
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
		switch field {
		case "src_ip", "dst_ip", "protocol", "port", "time_start", "time_end", "sensor", "status":
		default:
			return nil, paramError("q", "unknown field %q (use src_ip, dst_ip, protocol, port, time_start, time_end, sensor, status)", field)
		}
		if _, dup := out[field]; dup {
			return nil, paramError("q", "field %q given twice", field)
		}
		out[field] = value
	}
	return out, nil
}
