package api

import (
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	netwatchv1 "netwatch.dev/proto/netwatch/v1"
	"netwatch.dev/proto/restjson"
)

// FlowStreamer streams every flow a ListFlowsRequest selects (query.Service).
type FlowStreamer interface {
	StreamFlows(req *netwatchv1.ListFlowsRequest, chunk int, fn func([]*netwatchv1.NetworkFlow) error) error
}

const (
	csvChunk = 1000
	// csvChunkWriteTimeout bounds the write of one chunk: a download may take long
	// as a whole, a client that stops reading may not.
	csvChunkWriteTimeout = 30 * time.Second
)

var flowFields = (&netwatchv1.NetworkFlow{}).ProtoReflect().Descriptor().Fields()

// csvFlows serves GET /api/v1/flows?format=csv: a download of every matching flow
// (limit and offset are validated but do not apply), in the requested order, with a
// header row of the JSON field names and each value spelled as in the JSON. Rows are
// written chunk by chunk as the store hands them out, with no store lock held.
func csvFlows(fs FlowStreamer, eh errorHandler, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := &netwatchv1.ListFlowsRequest{}
		if err := runtime.PopulateQueryParameters(req, r.URL.Query(), utilities.NewDoubleArray(nil)); err != nil {
			eh.handle(r.Context(), nil, nil, w, r, status.Error(codes.InvalidArgument, err.Error()))
			return
		}
		rc := http.NewResponseController(w)
		var (
			cw      *csv.Writer
			row     []string
			started bool
		)
		err := fs.StreamFlows(req, csvChunk, func(flows []*netwatchv1.NetworkFlow) error {
			if !started {
				started = true
				cw, row = startCSV(w, now())
			}
			_ = rc.SetWriteDeadline(time.Now().Add(csvChunkWriteTimeout))
			for _, f := range flows {
				m := f.ProtoReflect()
				for i := range flowFields.Len() {
					fd := flowFields.Get(i)
					row[i] = ""
					if fd.Kind() != protoreflect.MessageKind || m.Has(fd) {
						row[i] = csvCell(csvValue(fd, m.Get(fd)))
					}
				}
				if err := cw.Write(row); err != nil {
					return err
				}
			}
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
			return rc.Flush()
		})
		switch {
		case err != nil && !started:
			eh.handle(r.Context(), nil, nil, w, r, err)
		case err != nil:
			// The status is sent; the client sees a truncated download.
			if !errors.Is(err, http.ErrAbortHandler) {
				eh.log.Debug("csv download ended early", "request_id", r.Header.Get(RequestIDHeader), "err", err)
			}
		case !started:
			cw, _ = startCSV(w, now())
			cw.Flush()
		}
	})
}

// startCSV sends the headers and the header row.
func startCSV(w http.ResponseWriter, at time.Time) (*csv.Writer, []string) {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="netwatch-flows-`+at.UTC().Format("20060102T150405Z")+`.csv"`)
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	row := make([]string, flowFields.Len())
	for i := range flowFields.Len() {
		row[i] = flowFields.Get(i).JSONName()
	}
	_ = cw.Write(row)
	return cw, row
}

// csvCell defuses a cell a spreadsheet would run as a formula (the OWASP CSV
// injection rule): a cell that begins with = + - @, a tab or a carriage return
// and is not a number gets a leading apostrophe, which spreadsheets show as
// text and do not display. Every column goes through it; numbers, timestamps,
// IP addresses (an IPv6 address never begins with one of these) and the other
// ordinary values come out unchanged, so only hostile or odd text changes.
func csvCell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) || isNumber(s) {
		return s
	}
	return "'" + s
}

// isNumber reports whether s is a plain decimal number: an optional sign,
// digits with at most one decimal point, and an optional exponent ("-5", "+1.5",
// "-2e10"). Unlike strconv.ParseFloat it refuses "Inf", "NaN", hex and
// underscores, which a spreadsheet does not read as numbers.
func isNumber(s string) bool {
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
		if !digitsOnly(strings.TrimPrefix(strings.TrimPrefix(exp, "+"), "-"), false) {
			return false
		}
	}
	if mant != "" && (mant[0] == '+' || mant[0] == '-') {
		mant = mant[1:]
	}
	return digitsOnly(mant, true)
}

// digitsOnly reports whether s is one or more digits, with at most one decimal
// point among them when point.
func digitsOnly(s string, point bool) bool {
	digits := 0
	for i := range len(s) {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && point:
			point = false
		default:
			return false
		}
	}
	return digits > 0
}

// csvValue spells a set NetworkFlow field as the REST JSON does, without quotes
// (restjson.AppendTime's format for timestamps).
func csvValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.Uint32Kind, protoreflect.Uint64Kind, protoreflect.Fixed32Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	case protoreflect.Int32Kind, protoreflect.Int64Kind, protoreflect.Sint32Kind, protoreflect.Sint64Kind, protoreflect.Sfixed32Kind, protoreflect.Sfixed64Kind:
		return strconv.FormatInt(v.Int(), 10)
	case protoreflect.DoubleKind, protoreflect.FloatKind:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case protoreflect.EnumKind:
		return restjson.EnumString(fd.Enum(), v.Enum())
	case protoreflect.MessageKind:
		if ts, ok := v.Message().Interface().(*timestamppb.Timestamp); ok {
			return ts.AsTime().UTC().Format(time.RFC3339Nano)
		}
	}
	return ""
}
